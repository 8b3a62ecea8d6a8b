"""The context table taken out of its publication by hand, or the publication's INSERTs switched
off: every write's request context (``audit_context``) would be lost from the trail, silently
(and with the joins table out of it, the tables joining CDC).
The runtime check refuses CDC writes, ``check`` and ``cdc status`` report it (exit 1), and
installing again puts it back (design 2)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from alembic_env import make_project
from cdc_decoder_setup import drop_slot_named
from cli_run import run, url_text
from sqlalchemy_postgresql_audit import (
    AuditConfigurationError,
    audit_context,
    install_audit_triggers,
)
from sqlalchemy_postgresql_audit.cdc import Consumer, create_slot

_MODELS = """
import sqlalchemy as sa

metadata = sa.MetaData(naming_convention={{"audit.slot": {slot!r}}})
account = sa.Table(
    "account",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    info={{"audit.options": {{
        "enabled": True,
        "mode": "cdc",
        "session_settings": [sa.Column("username", sa.Text)],
    }}}},
)
"""

#: The change made by hand, and what the reports name.
_CHANGES = {
    "dropped": (
        "ALTER PUBLICATION audit_cdc_context DROP TABLE audit_cdc_context",
        "audit_cdc_context is not in the context publication 'audit_cdc_context'",
    ),
    "joins dropped": (
        "ALTER PUBLICATION audit_cdc_context DROP TABLE audit_cdc_context_joins",
        "audit_cdc_context_joins is not in the context publication 'audit_cdc_context'",
    ),
    "filtered": (
        "ALTER PUBLICATION audit_cdc_context DROP TABLE audit_cdc_context; "
        "ALTER PUBLICATION audit_cdc_context ADD TABLE audit_cdc_context WHERE (id < 0)",
        "audit_cdc_context is not in the context publication 'audit_cdc_context' (or only "
        "with a row filter or column list)",
    ),
    "narrowed": (
        "ALTER PUBLICATION audit_cdc_context SET (publish = 'update')",
        "the context publication 'audit_cdc_context' has publish insert off",
    ),
}


def _metadata(slot: str) -> sa.MetaData:
    scope: dict[str, object] = {}
    exec(_MODELS.format(slot=slot), scope)  # the models the CLI imports, in this process
    metadata = scope["metadata"]
    assert isinstance(metadata, sa.MetaData)
    return metadata


@pytest.fixture
def models(logical_database_url: URL, tmp_path: Path) -> Iterator[tuple[sa.Engine, sa.Table]]:
    """``account`` (CDC) installed, its models in ``tmp_path/ctx_models.py`` for the CLI."""
    slot = f"cdc_{uuid.uuid4().hex[:12]}"
    (tmp_path / "ctx_models.py").write_text(_MODELS.format(slot=slot))
    account = _metadata(slot).tables["account"]
    engine = sa.create_engine(logical_database_url)
    account.metadata.create_all(engine)
    yield engine, account
    drop_slot_named(engine, slot)
    engine.dispose()


def _write(url: URL, account: sa.Table, key: int, user: str) -> None:
    """A write with context on a new engine: the runtime check looks at the database again."""
    engine = sa.create_engine(url)
    try:
        with audit_context(username=user), engine.begin() as connection:
            connection.execute(account.insert().values(id=key))
    finally:
        engine.dispose()


def _reports(url: str, tmp_path: Path) -> list[tuple[int, str]]:
    """``check`` and ``cdc status``: exit code and output (whitespace folded)."""
    found = [
        run("check", "ctx_models:metadata", "--url", url, path=tmp_path),
        run("cdc", "status", "ctx_models:metadata", "--source", url, path=tmp_path),
    ]
    return [(done.returncode, " ".join((done.stdout + done.stderr).split())) for done in found]


@pytest.mark.parametrize("change", sorted(_CHANGES))
def test_context_publication_changed_by_hand_is_refused_reported_and_put_back(
    models: tuple[sa.Engine, sa.Table], tmp_path: Path, change: str
) -> None:
    engine, account = models
    url = url_text(engine.url)
    statement, reason = _CHANGES[change]
    assert [code for code, _ in _reports(url, tmp_path)] == [0, 0]
    with engine.begin() as connection:
        connection.exec_driver_sql(statement)

    with pytest.raises(
        AuditConfigurationError, match=rf"account.*{re.escape(reason)}.*install again"
    ):
        _write(engine.url, account, 1, "lost")
    for code, output in _reports(url, tmp_path):
        assert code == 1, output
        assert reason in output

    if change == "dropped":
        made = run("install", "ctx_models:metadata", "--url", url, path=tmp_path)
        assert made.returncode == 0, made.stdout + made.stderr
    else:
        install_audit_triggers(account.metadata, engine)
    assert [code for code, _ in _reports(url, tmp_path)] == [0, 0]
    _write(engine.url, account, 2, "kept")
    Consumer(engine, None, metadata=account.metadata).run_once()
    with engine.connect() as connection:
        trail = connection.exec_driver_sql(
            "SELECT id, audit_username FROM account_audit ORDER BY audit_id"
        ).all()
    assert trail == [(2, "kept")]


@pytest.mark.parametrize("change", ["dropped", "narrowed"])
def test_alembic_puts_the_context_publication_back(
    tmp_path: Path, logical_database_url: URL, change: str
) -> None:
    slot = f"cdc_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(logical_database_url)
    project = make_project(tmp_path, engine.url)
    try:
        create_slot(engine, _metadata(slot))
        project.revision(_metadata(slot), "cdc")
        project.upgrade(_metadata(slot))
        project.check(_metadata(slot))
        with engine.begin() as connection:
            connection.exec_driver_sql(_CHANGES[change][0])
        assert "op.publish_audit_table(" in project.revision(_metadata(slot), "drift")
        project.upgrade(_metadata(slot))
        project.check(_metadata(slot))
        _write(engine.url, _metadata(slot).tables["account"], 1, "kept")
    finally:
        drop_slot_named(engine, slot)
        engine.dispose()
