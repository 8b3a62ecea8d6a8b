"""Declaring audited tables in one thread never breaks a write in another: the write path
(the context listener) reads what is declared while a lazily imported module, a tenant's
MetaData or an in-process autogenerate declares more."""

from __future__ import annotations

import threading

import sqlalchemy as sa

from sqlalchemy_postgresql_audit.declare.declaration import declare_metadata, declared_tables


def test_reading_the_declared_tables_while_another_thread_declares_never_fails() -> None:
    kept: list[sa.MetaData] = []
    done = threading.Event()

    def declare() -> None:
        try:
            for number in range(400):
                metadata = sa.MetaData()
                kept.append(metadata)
                sa.Table(
                    f"declared_{number}",
                    metadata,
                    sa.Column("id", sa.Integer, primary_key=True),
                    info={"audit.options": {"enabled": True}},
                )
                declare_metadata(metadata)
        finally:
            done.set()

    failures: list[RuntimeError] = []
    reads = 0
    declaring = threading.Thread(target=declare)
    declaring.start()
    while not done.is_set():
        reads += 1
        try:
            declared_tables()
        except RuntimeError as error:  # "Set changed size during iteration"
            failures.append(error)
    declaring.join()
    assert reads > 100 and failures == []
    names = {table.name for table in declared_tables()}
    assert {f"declared_{number}" for number in range(400)} <= names
