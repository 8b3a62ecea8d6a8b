"""Retyping a key column (integer -> bigint) of a statement-mode audited table through Alembic:
the key trigger's condition makes PostgreSQL refuse the bare ``ALTER COLUMN ... TYPE``, so the
migration takes the key trigger off around it (``alembic.key_retype``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from alembic_env import make_project
from sqlalchemy_postgresql_audit import AUDIT_TABLE_KEY, set_session_vars

KEY_TRIGGER = "public_parcel_audit_update_key"


def parcels(key_type: type[sa.types.TypeEngine[int]]) -> sa.MetaData:
    metadata = sa.MetaData()
    sa.Table(
        "parcel",
        metadata,
        sa.Column("id", key_type, primary_key=True, autoincrement=False),
        sa.Column("place", sa.Text),
        info={"audit.options": {"enabled": True, "mode": "statement"}},
    )
    return metadata


def move(engine: sa.Engine, metadata: sa.MetaData, old: int, new: int) -> None:
    parcel = metadata.tables["parcel"]
    with engine.begin() as connection:
        set_session_vars(connection)
        connection.execute(parcel.update().where(parcel.c.id == old).values(id=new))


def trail(engine: sa.Engine, metadata: sa.MetaData) -> list[tuple[str, int]]:
    audit = metadata.tables["parcel"].info[AUDIT_TABLE_KEY]
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(audit.c.audit_operation, audit.c.id).order_by(audit.c.audit_id)
        )
        return [(r.audit_operation, r.id) for r in rows]


def key_type(engine: sa.Engine) -> str:
    with engine.connect() as connection:
        return str(
            connection.exec_driver_sql(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = 'parcel'::regclass AND attname = 'id'"
            ).scalar_one()
        )


def test_autogenerate_takes_the_key_trigger_off_around_a_key_retype(
    tmp_path: Path, engine: sa.Engine
) -> None:
    project = make_project(tmp_path, engine.url)
    small = parcels(sa.Integer)
    project.revision(small, "parcels")
    project.upgrade(small)
    parcel = small.tables["parcel"]
    with engine.begin() as connection:
        connection.execute(parcel.insert(), [{"id": 1, "place": "a"}, {"id": 2, "place": "b"}])
    move(engine, small, 1, 10)

    big = parcels(sa.BigInteger)
    text = project.revision(big, "bigger keys")
    upgrade, downgrade = text.split("def downgrade")
    for part in (upgrade, downgrade):
        assert part.index("op.drop_audit_key_trigger(") < part.index("op.alter_column('parcel'")
        assert part.index("op.alter_column('parcel'") < part.index("op.create_audit_key_trigger(")
    project.upgrade(big)
    assert key_type(engine) == "bigint"
    project.check(big)
    move(engine, big, 10, 2_000_000_000)
    assert trail(engine, big) == [
        ("I", 1),
        ("I", 2),
        ("K", 1),
        ("U", 10),
        ("K", 10),
        ("U", 2_000_000_000),
    ]

    move(engine, big, 2_000_000_000, 11)
    project.downgrade(small)
    assert key_type(engine) == "integer"
    move(engine, small, 11, 12)
    assert trail(engine, small)[-4:] == [("K", 2_000_000_000), ("U", 11), ("K", 11), ("U", 12)]


def test_a_hand_written_retype_is_refused_naming_the_key_trigger(engine: sa.Engine) -> None:
    """What docs/alembic.md tells to do about it: PostgreSQL's error names the trigger."""
    metadata = parcels(sa.Integer)
    metadata.create_all(engine)
    with (
        pytest.raises(
            sa.exc.DBAPIError, match=f"(?s)used in a trigger definition.*trigger {KEY_TRIGGER}"
        ),
        engine.begin() as connection,
    ):
        connection.exec_driver_sql("ALTER TABLE parcel ALTER COLUMN id TYPE bigint")
