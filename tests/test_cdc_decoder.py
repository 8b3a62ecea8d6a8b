"""The change-data-capture decoder on a real server: the audit rows it writes from the WAL,
exactly once, in commit order, with context, old rows and schema changes."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from cdc_decoder_setup import decoder, drop_slot, published, set_context
from sqlalchemy_postgresql_audit import AUDIT_TABLE_KEY, record_baseline
from sqlalchemy_postgresql_audit.cdc.decoder import Decoder, DecoderError, UndeclaredTable
from sqlalchemy_postgresql_audit.errors import AuditError

#: Old rows from the WAL, or rebuilt from the trail.
IDENTITIES = pytest.mark.parametrize("identity", ["FULL", "DEFAULT"])


@pytest.fixture
def engine(logical_database_url: sa.URL) -> Any:
    engine = sa.create_engine(logical_database_url)
    yield engine
    engine.dispose()


def declare(**options: Any) -> sa.Table:
    return sa.Table(
        "parcel",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("place", sa.Text),
        sa.Column("weight", sa.Numeric),
        info={
            "audit.options": {
                "enabled": True,
                "mode": "cdc",
                "session_settings": [sa.Column("username", sa.Text)],
                **options,
            }
        },
    )


def trail(engine: sa.Engine, table: sa.Table, *columns: str) -> list[tuple[Any, ...]]:
    audit = table.info[AUDIT_TABLE_KEY]
    names = columns or ("audit_operation", "id", "place")
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(*(audit.c[n] for n in names)).order_by(audit.c.audit_id)
        )
        return [tuple(r) for r in rows]


@IDENTITIES
def test_every_operation_is_recorded_in_commit_order(engine: sa.Engine, identity: str) -> None:
    table = declare()
    with published(engine, table.metadata, identity):
        with engine.begin() as connection:
            connection.execute(table.insert(), [{"id": 1, "place": "a"}, {"id": 2, "place": "b"}])
        with engine.begin() as connection:
            connection.execute(table.update().where(table.c.id == 1).values(place="a2"))
            connection.execute(table.delete().where(table.c.id == 2))
        with engine.begin() as connection:
            connection.exec_driver_sql("TRUNCATE parcel")
        assert decoder(engine, table.metadata).run_once() == 5
        assert trail(engine, table) == [
            ("I", 1, "a"),
            ("I", 2, "b"),
            ("U", 1, "a2"),
            ("D", 2, "b"),
            ("T", None, None),
        ]
        # Nothing new: nothing written again.
        assert decoder(engine, table.metadata).run_once() == 0
        assert len(trail(engine, table)) == 5


def test_context_applies_per_transaction_and_the_time_is_the_commit_time(
    engine: sa.Engine,
) -> None:
    table = declare(capture=["transaction_id"])
    with published(engine, table.metadata):
        expected = []
        for number, user in enumerate(["alice", "alice", "bob", None], start=1):
            with engine.begin() as connection:
                if user:
                    set_context(connection, username=user)
                connection.execute(table.insert().values(id=number, place="x"))
                connection.execute(table.update().where(table.c.id == number).values(place="y"))
                xid = connection.execute(sa.text("SELECT pg_current_xact_id()::text")).scalar()
                before = connection.execute(sa.select(sa.func.clock_timestamp())).scalar()
            expected += [(user, int(xid or 0))] * 2
            with engine.connect() as connection:
                after = connection.execute(sa.select(sa.func.clock_timestamp())).scalar()
            assert decoder(engine, table.metadata).run_once() == 2
            stamps = {r[0] for r in trail(engine, table, "audit_operation_timestamp")[-2:]}
            assert len(stamps) == 1  # one commit, one time
            assert before is not None and after is not None
            assert before < stamps.pop() < after
        recorded = trail(engine, table, "audit_username", "audit_transaction_id")
        assert recorded == expected


def test_rolled_back_work_leaves_nothing(engine: sa.Engine) -> None:
    table = declare()
    with published(engine, table.metadata):
        with engine.connect() as connection:
            connection.execute(table.insert().values(id=1, place="gone"))
            connection.rollback()
        with engine.begin() as connection:
            connection.execute(table.insert().values(id=2, place="kept"))
            savepoint = connection.begin_nested()
            connection.execute(table.insert().values(id=3, place="rolled back"))
            savepoint.rollback()
        decoder(engine, table.metadata).run_once()
        assert trail(engine, table) == [("I", 2, "kept")]


def test_upsert_copy_and_merge(engine: sa.Engine, server_version: int) -> None:
    table = declare()
    with published(engine, table.metadata):
        with engine.begin() as connection:
            connection.exec_driver_sql("INSERT INTO parcel (id, place) VALUES (1, 'a')")
            connection.exec_driver_sql(
                "INSERT INTO parcel (id, place) VALUES (1, 'b'), (2, 'c') "
                "ON CONFLICT (id) DO UPDATE SET place = EXCLUDED.place"
            )
        raw = engine.raw_connection()
        try:
            import io

            raw.cursor().copy_expert(
                "COPY parcel (id, place) FROM STDIN", io.StringIO("3\ttab\\there\n4\t\\N\n")
            )
            raw.commit()
        finally:
            raw.close()
        if server_version >= 150000:
            with engine.begin() as connection:
                connection.exec_driver_sql(
                    "MERGE INTO parcel p USING (VALUES (1, 'm'), (2, NULL), (5, 'new')) AS s(id, place)"
                    " ON p.id = s.id"
                    " WHEN MATCHED AND s.place IS NULL THEN DELETE"
                    " WHEN MATCHED THEN UPDATE SET place = s.place"
                    " WHEN NOT MATCHED THEN INSERT (id, place) VALUES (s.id, s.place)"
                )
        decoder(engine, table.metadata).run_once()
        recorded = trail(engine, table)
        assert recorded[:5] == [
            ("I", 1, "a"),
            ("U", 1, "b"),
            ("I", 2, "c"),
            ("I", 3, "tab\there"),
            ("I", 4, None),
        ]
        if server_version >= 150000:
            assert sorted(recorded[5:]) == [("D", 2, "c"), ("I", 5, "new"), ("U", 1, "m")]


@IDENTITIES
def test_a_key_change_writes_k_under_the_old_key_and_a_swap_does_not(
    engine: sa.Engine, identity: str
) -> None:
    table = declare()
    with published(engine, table.metadata, identity):
        with engine.begin() as connection:
            connection.execute(table.insert(), [{"id": 1, "place": "a"}, {"id": 2, "place": "b"}])
        with engine.begin() as connection:
            connection.execute(table.update().where(table.c.id == 1).values(id=10))
        with engine.begin() as connection:  # a swap through a free key, one row per statement
            connection.execute(table.update().where(table.c.id == 10).values(id=0))
            connection.execute(table.update().where(table.c.id == 2).values(id=10))
            connection.execute(table.update().where(table.c.id == 0).values(id=2))
        decoder(engine, table.metadata).run_once()
        assert trail(engine, table) == [
            ("I", 1, "a"),
            ("I", 2, "b"),
            ("K", 1, "a"),
            ("U", 10, "a"),
            # Each statement leaves its old key empty, so each writes K, as the trigger does
            # (a swap in one statement, under a deferrable key, writes none: test_cdc_key_moves).
            ("K", 10, "a"),
            ("U", 0, "a"),
            ("K", 2, "b"),
            ("U", 10, "b"),
            ("K", 0, "a"),
            ("U", 2, "a"),
        ]


@IDENTITIES
def test_unchanged_toasted_values_and_deleted_rows_keep_their_values(
    engine: sa.Engine, identity: str
) -> None:
    table = declare()
    big = "".join(str(i) for i in range(40_000))  # TOASTed out of line
    with published(engine, table.metadata, identity):
        with engine.begin() as connection:
            connection.execute(table.insert().values(id=1, place=big, weight=1))
        with engine.begin() as connection:
            connection.execute(table.update().where(table.c.id == 1).values(weight=2))
        with engine.begin() as connection:
            connection.execute(table.delete())
        decoder(engine, table.metadata).run_once()
        recorded = trail(engine, table, "audit_operation", "place", "weight")
        assert [(op, place == big, weight) for op, place, weight in recorded] == [
            ("I", True, 1),
            ("U", True, 2),
            ("D", True, 2),
        ]


@IDENTITIES
def test_changed_columns_and_skip_unchanged(engine: sa.Engine, identity: str) -> None:
    table = declare(capture=["changed_columns"], skip_unchanged=True)
    with published(engine, table.metadata, identity):
        with engine.begin() as connection:
            connection.execute(table.insert().values(id=1, place="a", weight=1))
            connection.execute(table.update().values(weight=2))
            connection.execute(table.update().values(weight=2))  # no change: skipped
            connection.execute(table.update().values(place='say "hi"', weight=3))
        decoder(engine, table.metadata).run_once()
        assert trail(engine, table, "audit_operation", "audit_changed_columns") == [
            ("I", None),
            ("U", ["weight"]),
            ("U", ["place", "weight"]),
        ]


@IDENTITIES
def test_a_transaction_larger_than_the_decoding_memory_and_than_a_batch(
    engine: sa.Engine, logical_database_url: sa.URL, identity: str
) -> None:
    table = declare()
    with published(engine, table.metadata, identity):
        with engine.begin() as connection:
            name = engine.dialect.identifier_preparer.quote(logical_database_url.database or "")
            connection.exec_driver_sql(
                f"ALTER DATABASE {name} SET logical_decoding_work_mem = '64kB'"
            )
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO parcel (id, place) SELECT i, repeat('x', 50) FROM generate_series(1, 5000) i"
            )
            connection.exec_driver_sql("UPDATE parcel SET place = 'y' WHERE id <= 1000")
        with engine.begin() as connection:
            connection.execute(table.insert().values(id=0, place="after"))
        engine.dispose()  # new sessions read the database's setting
        assert decoder(engine, table.metadata, batch_changes=700).run_once() == 6001
        recorded = trail(engine, table)
        assert [r[1] for r in recorded[:5000]] == list(range(1, 5001))
        assert recorded[5000:6000] == [("U", i, "y") for i in range(1, 1001)]
        assert recorded[6000] == ("I", 0, "after")


@IDENTITIES
def test_a_column_added_while_running_is_followed(engine: sa.Engine, identity: str) -> None:
    table = declare()
    with published(engine, table.metadata, identity):
        with engine.begin() as connection:
            connection.execute(table.insert().values(id=1, place="before"))
        running = decoder(engine, table.metadata)
        assert running.run_once() == 1
        with engine.begin() as connection:
            connection.execute(table.insert().values(id=2, place="still before"))
            connection.exec_driver_sql("ALTER TABLE parcel ADD COLUMN colour text")
            connection.exec_driver_sql("ALTER TABLE parcel_audit ADD COLUMN colour text")
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO parcel (id, place, colour) VALUES (3, 'x', 'red')"
            )
            connection.exec_driver_sql("UPDATE parcel SET colour = 'blue' WHERE id = 1")
        assert running.run_once() == 3
        assert trail(engine, table) == [
            ("I", 1, "before"),
            ("I", 2, "still before"),
            ("I", 3, "x"),
            ("U", 1, "before"),
        ]
        with engine.connect() as connection:
            colours = connection.exec_driver_sql(
                "SELECT colour FROM parcel_audit ORDER BY audit_id"
            ).scalars()
            assert list(colours) == [None, None, "red", "blue"]


def test_a_table_without_the_old_row_in_the_wal_is_refused_by_name(engine: sa.Engine) -> None:
    table = declare()
    with published(engine, table.metadata):
        with engine.begin() as connection:
            connection.exec_driver_sql("ALTER TABLE parcel REPLICA IDENTITY NOTHING")
            connection.execute(table.insert().values(id=1, place="a"))
        with pytest.raises(DecoderError, match=r"public\.parcel has REPLICA IDENTITY NOTHING"):
            decoder(engine, table.metadata).run_once()
        assert trail(engine, table) == []


def rows_older_than_the_trail(engine: sa.Engine, table: sa.Table) -> None:
    """Rows written before the table's changes were captured: no version in the trail."""
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(table.insert(), [{"id": 1, "place": "old"}, {"id": 2, "place": "x"}])
    drop_slot(engine, table.metadata)  # installing again makes a slot that starts after them


def test_without_a_baseline_an_old_row_is_an_error_naming_the_key(engine: sa.Engine) -> None:
    table = declare()
    rows_older_than_the_trail(engine, table)
    with published(engine, table.metadata, "DEFAULT"):
        with engine.begin() as connection:
            connection.execute(table.update().where(table.c.id == 2).values(place="new"))
        with pytest.raises(DecoderError, match=r"public\.parcel: key \(2\) has no version"):
            decoder(engine, table.metadata).run_once()
        assert trail(engine, table) == []


def test_with_a_baseline_old_rows_come_from_the_trail(engine: sa.Engine) -> None:
    table = declare()
    rows_older_than_the_trail(engine, table)
    with published(engine, table.metadata, "DEFAULT"):
        with engine.begin() as connection:
            record_baseline(connection, table)
        with engine.begin() as connection:
            connection.execute(table.update().where(table.c.id == 2).values(id=3))
            connection.execute(table.delete().where(table.c.id == 1))
        decoder(engine, table.metadata).run_once()
        assert trail(engine, table) == [
            ("B", 1, "old"),
            ("B", 2, "x"),
            ("K", 2, "x"),
            ("U", 3, "x"),
            ("D", 1, "old"),
        ]


@IDENTITIES
def test_values_copy_must_escape_survive_every_path(engine: sa.Engine, identity: str) -> None:
    table = declare()
    awkward = "back\\slash\nnew\tline\r\\N"
    with published(engine, table.metadata, identity):
        with engine.begin() as connection:
            connection.execute(table.insert().values(id=1, place=awkward, weight=1))
        with engine.begin() as connection:
            connection.execute(table.update().values(weight=2))
            connection.execute(table.update().values(id=2))
            connection.execute(table.delete())
        decoder(engine, table.metadata).run_once()
        assert trail(engine, table) == [
            ("I", 1, awkward),
            ("U", 1, awkward),
            ("K", 1, awkward),
            ("U", 2, awkward),
            ("D", 2, awkward),
        ]


def test_psycopg_3_reads_and_writes_as_psycopg2_does(logical_database_url: sa.URL) -> None:
    engine = sa.create_engine(logical_database_url.set(drivername="postgresql+psycopg"))
    table = declare()
    with published(engine, table.metadata, "DEFAULT"):
        with engine.begin() as connection:
            connection.execute(
                table.insert(), [{"id": 1, "place": "a\tb"}, {"id": 2, "place": None}]
            )
            connection.execute(table.delete().where(table.c.id == 1))
        assert decoder(engine, table.metadata).run_once() == 3
        assert trail(engine, table) == [("I", 1, "a\tb"), ("I", 2, None), ("D", 1, "a\tb")]
    engine.dispose()


@IDENTITIES
def test_truncate_rows_records_the_rows_the_trail_holds(engine: sa.Engine, identity: str) -> None:
    table = declare(truncate_rows=True)
    with published(engine, table.metadata, identity):
        with engine.begin() as connection:
            connection.execute(table.insert(), [{"id": i, "place": f"p{i}"} for i in (3, 1, 2)])
            connection.execute(table.delete().where(table.c.id == 2))
        with engine.begin() as connection:
            connection.execute(table.update().where(table.c.id == 3).values(place="q\t3"))
            connection.exec_driver_sql("TRUNCATE parcel")
            connection.execute(table.insert().values(id=1, place="again"))
            connection.execute(table.update().values(place="again2"))
        assert decoder(engine, table.metadata).run_once() == 9  # audit rows: two T
        assert trail(engine, table) == [
            ("I", 3, "p3"),
            ("I", 1, "p1"),
            ("I", 2, "p2"),
            ("D", 2, "p2"),
            ("U", 3, "q\t3"),
            ("T", 1, "p1"),
            ("T", 3, "q\t3"),
            ("I", 1, "again"),
            ("U", 1, "again2"),
        ]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"slot": ""}, "slot and publication must be named"),
        ({"batch_changes": 0}, "batch_changes must be a positive int, got 0"),
    ],
)
def test_bad_arguments_are_refused_at_the_call(
    engine: sa.Engine, options: dict[str, Any], message: str
) -> None:
    arguments: dict[str, Any] = {"slot": "s", "publication": "p", **options}
    with pytest.raises(AuditError, match=message):
        Decoder(engine, engine, declare().metadata, **arguments)


def test_context_changed_inside_a_transaction_applies_from_there_on(engine: sa.Engine) -> None:
    metadata = sa.MetaData()
    table = sa.Table(
        "parcel",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        info={
            "audit.options": {
                "enabled": True,
                "mode": "cdc",
                "session_settings": [sa.Column("username", sa.Text), sa.Column("request", sa.Text)],
            }
        },
    )
    with published(engine, metadata):
        with engine.begin() as connection:
            set_context(connection, username="carol", request="r1")
            connection.execute(table.insert().values(id=1))
            set_context(connection, request="r2")  # username stays
            connection.execute(table.insert().values(id=2))
            set_context(connection, username="")  # reset: NULL, as in trigger mode
            connection.execute(table.insert().values(id=3))
        decoder(engine, metadata).run_once()
        assert trail(engine, table, "id", "audit_username", "audit_request") == [
            (1, "carol", "r1"),
            (2, "carol", "r2"),
            (3, None, "r2"),
        ]


@IDENTITIES
def test_tables_are_matched_by_schema_qualified_name_and_quoted(
    engine: sa.Engine, identity: str
) -> None:
    metadata = sa.MetaData()
    table = sa.Table(
        "order line",
        metadata,
        sa.Column("Id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("note", sa.Text),
        schema="Shop",
        info={"audit.options": {"enabled": True, "mode": "cdc"}},
    )
    with engine.begin() as connection:
        connection.exec_driver_sql('CREATE SCHEMA "Shop"')
        connection.exec_driver_sql('CREATE TABLE public."order line" ("Id" int PRIMARY KEY)')
    with published(engine, metadata, identity):
        with engine.begin() as connection:
            connection.exec_driver_sql('INSERT INTO public."order line" VALUES (7)')  # not audited
            connection.execute(table.insert().values(Id=1, note="n"))
            connection.execute(table.update().values(Id=2))
            connection.execute(table.delete())
        assert decoder(engine, metadata).run_once() == 4  # audit rows: a K and a U
        audit = metadata.tables["Shop.order line_audit"]
        with engine.connect() as connection:
            rows = connection.execute(
                sa.select(audit.c.audit_operation, audit.c.Id, audit.c.note).order_by(
                    audit.c.audit_id
                )
            ).all()
        assert [tuple(r) for r in rows] == [
            ("I", 1, "n"),
            ("K", 1, "n"),
            ("U", 2, "n"),
            ("D", 2, "n"),
        ]


def test_a_partitioned_table_published_as_its_root(engine: sa.Engine) -> None:
    metadata = sa.MetaData()
    table = sa.Table(
        "reading",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("value", sa.Text),
        postgresql_partition_by="RANGE (id)",
        info={"audit.options": {"enabled": True, "mode": "cdc"}},
    )
    metadata.create_all(engine)
    with engine.begin() as connection:
        for low in (0, 100):
            connection.exec_driver_sql(
                f"CREATE TABLE reading_{low} PARTITION OF reading FOR VALUES FROM ({low}) TO ({low + 100})"
            )
    with published(engine, metadata, "DEFAULT"):
        with engine.begin() as connection:
            connection.execute(table.insert(), [{"id": 1, "value": "a"}, {"id": 101, "value": "b"}])
            connection.execute(table.update().where(table.c.id == 1).values(id=150))  # moves
            connection.execute(table.delete().where(table.c.id == 101))
        decoder(engine, metadata).run_once()
        assert trail(engine, table, "audit_operation", "id", "value") == [
            ("I", 1, "a"),
            ("I", 101, "b"),
            # Moving between partitions is a DELETE and an INSERT in the WAL.
            ("D", 1, "a"),
            ("I", 150, "a"),
            ("D", 101, "b"),
        ]


def test_a_published_table_the_metadata_does_not_audit_stops_the_decoder(
    engine: sa.Engine,
) -> None:
    table = declare()
    with published(engine, table.metadata):
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE stray (id int PRIMARY KEY)")
            connection.exec_driver_sql("ALTER PUBLICATION audit_cdc ADD TABLE stray")
        with engine.begin() as connection:
            connection.execute(table.insert().values(id=1))
            connection.exec_driver_sql("INSERT INTO stray VALUES (1)")
        stray = r"table public\.stray is in publication\(s\) 'audit_cdc' but "  # it alone
        with pytest.raises(UndeclaredTable, match=stray) as stopped:
            decoder(engine, table.metadata).run_once()
        # both causes, each with its fix: models older than the migration, or another
        # metadata sharing the publication
        assert "restart the consumer with models that declare it" in str(stopped.value)
        assert "another metadata in this database shares the publication" in str(stopped.value)
        assert "'audit.publication' and 'audit.slot'" in str(stopped.value)
        assert trail(engine, table) == []


def test_the_decoder_keeps_its_slot_restart_point_close_behind(
    engine: sa.Engine, server_version: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every peek decodes again from the slot's restart point: left where the server's own
    running-transactions records put it (every 15 s), each batch re-reads up to 15 s of WAL.
    The decoder logs one (PostgreSQL 16+) once the point is more than a threshold behind."""
    if server_version < 160000:
        pytest.skip("pg_log_standby_snapshot() is PostgreSQL 16+")
    import sqlalchemy_postgresql_audit.cdc.decoder as module

    monkeypatch.setattr(module, "RESTART_LAG_BYTES", 100_000)
    table = declare()
    with published(engine, table.metadata):
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO parcel (id, place) SELECT i, repeat('x', 200) "
                "FROM generate_series(1, 5000) i"
            )
        running = decoder(engine, table.metadata)
        assert running.run_once() == 5000
        with engine.begin() as connection:  # a writer's commit flushes the record logged
            connection.execute(table.insert().values(id=0, place="later"))
        assert running.run_once() == 1  # and the advance passes it
        with engine.connect() as connection:
            behind = connection.exec_driver_sql(
                "SELECT pg_wal_lsn_diff(confirmed_flush_lsn, restart_lsn) "
                "FROM pg_replication_slots WHERE slot_name = 'audit_cdc'"
            ).scalar()
        assert behind is not None and behind < 100_000


def test_a_lost_slot_stops_the_decoder_and_status_says_how_to_recover(
    engine: sa.Engine,
) -> None:
    """A slot invalidated for holding more WAL than ``max_slot_wal_keep_size`` allows: the
    decoder refuses to go on, and ``cdc status`` reports it, both with the way to recover."""
    from sqlalchemy_postgresql_audit.cdc import CdcError, Consumer
    from sqlalchemy_postgresql_audit.cdc.status import cdc_status

    table = declare()
    with published(engine, table.metadata):
        admin = engine.execution_options(isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.exec_driver_sql("ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'")
            connection.exec_driver_sql("SELECT pg_reload_conf()")
            try:
                for i in range(4):
                    with engine.begin() as writer:
                        writer.execute(table.insert().values(id=i, place="x" * 1000))
                    connection.exec_driver_sql("SELECT pg_switch_wal()")
                    connection.exec_driver_sql("CHECKPOINT")
            finally:
                connection.exec_driver_sql("ALTER SYSTEM RESET max_slot_wal_keep_size")
                connection.exec_driver_sql("SELECT pg_reload_conf()")
        with pytest.raises(CdcError, match="invalidated") as raised:
            Consumer(engine, metadata=table.metadata).run_once()
        assert "pg_drop_replication_slot" in str(raised.value)
        assert "record_baseline" in str(raised.value)
        assert 'deleting its progress row ("audit_cdc_progress"' in str(raised.value)
        status = cdc_status(engine, table.metadata)
        assert status.wal_status == "lost"
        assert any("record_baseline" in problem for problem in status.problems)
