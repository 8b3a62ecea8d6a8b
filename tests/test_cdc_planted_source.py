"""The source's context and joins tables, made with ``IF NOT EXISTS``, are refused when a role
that may create in their schema made one first with code of its own: installing (Python, the
command line, Alembic) refuses one it does not own, before writing to it, and the consumer
refuses at its start one carrying a trigger, a rule or a policy."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

import cdc_models
from alembic_env import make_project
from cdc_decoder_setup import drop_slot
from cli_run import run, url_text
from sqlalchemy_postgresql_audit import AuditConfigurationError, install_audit_triggers
from sqlalchemy_postgresql_audit.cdc import CdcError, Consumer, create_slot
from sqlalchemy_postgresql_audit.cdc.progress import PROGRESS_COMMENT
from sqlalchemy_postgresql_audit.declare.cdc import cdc_names
from sqlalchemy_postgresql_audit.install.ddl import AuditDDL
from sqlalchemy_postgresql_audit.install.publication import CONTEXT_COMMENT, JOINS_COMMENT
from sqlalchemy_postgresql_audit.render import cdc as cdc_sql
from sqlalchemy_postgresql_audit.render import cdc_joins
from sqlalchemy_postgresql_audit.render.cdc_decoder import PROGRESS_TABLE, create_progress_table


def _models() -> sa.MetaData:
    metadata = sa.MetaData(naming_convention={"audit.slot": f"cdcpl_{uuid.uuid4().hex[:12]}"})
    sa.Table(
        "parcel",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("place", sa.Text),
        info={"audit.options": {"enabled": True, "mode": "cdc"}},
    )
    return metadata


@pytest.fixture
def metadata(source: sa.Engine) -> Iterator[sa.MetaData]:
    made = _models()
    yield made
    drop_slot(source, made)


def _names(metadata: sa.MetaData) -> tuple[str, str]:
    names = cdc_names(metadata)
    return names.context_table, cdc_joins.joins_table(names.context_table)


def _plant(source: sa.Engine, make_role: Callable[[str], str], table: str) -> str:
    """A role allowed to create in ``public`` makes ``table`` (the context or the joins table,
    as installing makes it) first, with a trigger logging who runs it; returns the role."""
    context = cdc_names(_models()).context_table
    create = (
        cdc_sql.create_context_table(None, context, CONTEXT_COMMENT)
        if table == context
        else cdc_joins.create_joins_table(None, context, JOINS_COMMENT)
    )
    return _planted_by_a_role(source, make_role, table, [create])


def _planted_by_a_role(
    source: sa.Engine, make_role: Callable[[str], str], table: str, create: list[str]
) -> str:
    """A role allowed to create in ``public`` runs ``create`` (making ``table``) and puts a
    trigger logging who runs it on the table; returns the role."""
    planter = make_role("planter")
    with source.begin() as connection:
        connection.exec_driver_sql(f'GRANT CREATE ON SCHEMA public TO "{planter}"')
        connection.exec_driver_sql(f'SET LOCAL ROLE "{planter}"')
        connection.exec_driver_sql("CREATE TABLE planted_log (who text)")
        connection.exec_driver_sql("GRANT INSERT ON planted_log TO PUBLIC")
        connection.exec_driver_sql(
            "CREATE FUNCTION planted() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN "
            "INSERT INTO public.planted_log VALUES (current_user); RETURN NULL; END$$"
        )
        for statement in create:
            connection.execute(AuditDDL(statement))
        connection.exec_driver_sql(
            f"CREATE TRIGGER planted AFTER INSERT OR UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION planted()"
        )
    return planter


def _ran(source: sa.Engine) -> list[str]:
    with source.connect() as connection:
        return list(connection.exec_driver_sql("SELECT who FROM planted_log").scalars())


def _rows(source: sa.Engine, table: str) -> int:
    with source.connect() as connection:
        return int(connection.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one())


@pytest.mark.parametrize("which", ["context", "joins"])
def test_create_all_refuses_a_context_table_another_role_made_first(
    source: sa.Engine, metadata: sa.MetaData, make_role: Callable[[str], str], which: str
) -> None:
    context, joins = _names(metadata)
    table = context if which == "context" else joins
    planter = _plant(source, make_role, table)
    with pytest.raises(AuditConfigurationError) as refused:
        metadata.create_all(source)  # installs what it creates
    assert f"table public.{table} on the source is owned by role '{planter}'" in str(refused.value)
    assert f"ALTER TABLE public.{table} OWNER TO" in str(refused.value)
    assert _ran(source) == [] and _rows(source, table) == 0


def test_the_command_line_install_refuses_a_planted_joins_table(
    source: sa.Engine, make_role: Callable[[str], str]
) -> None:
    _, joins = _names(cdc_models.metadata)
    planter = _plant(source, make_role, joins)
    with source.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE ledger (id int PRIMARY KEY, amount int)")
        connection.exec_driver_sql("INSERT INTO ledger VALUES (1, 2)")
    try:
        done = run("install", "cdc_models:metadata", "--url", url_text(source.url))
    finally:
        drop_slot(source, cdc_models.metadata)
    assert done.returncode != 0
    assert f"table public.{joins} on the source is owned by role '{planter}'" in done.stderr
    assert _ran(source) == [] and _rows(source, joins) == 0


def test_an_alembic_upgrade_refuses_a_planted_joins_table(
    tmp_path: Path, source: sa.Engine, metadata: sa.MetaData, make_role: Callable[[str], str]
) -> None:
    _, joins = _names(metadata)
    planter = _plant(source, make_role, joins)
    project = make_project(tmp_path, source.url)
    create_slot(source, metadata)  # a migration's transaction cannot make the slot
    migration = project.revision(metadata, "parcel")
    assert "op.record_cdc_join(" in migration
    with pytest.raises(AuditConfigurationError, match=f"owned by role '{planter}'"):
        project.upgrade(metadata)
    assert _ran(source) == [] and _rows(source, joins) == 0


@pytest.mark.parametrize(
    ("added", "named"),
    [
        pytest.param(
            "CREATE TRIGGER planted AFTER INSERT OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION planted()",
            "trigger planted",
            id="trigger",
        ),
        pytest.param(
            "CREATE RULE planted AS ON DELETE TO {table} DO ALSO "
            "INSERT INTO planted_log VALUES (current_user)",
            "rule planted",
            id="rule",
        ),
        pytest.param(
            "ALTER TABLE {table} ENABLE ROW LEVEL SECURITY; "
            "CREATE POLICY planted ON {table} USING (true)",
            "policy planted, row-level security",
            id="policy",
        ),
    ],
)
def test_the_consumer_refuses_a_context_table_given_code_later(
    source: sa.Engine, metadata: sa.MetaData, added: str, named: str
) -> None:
    metadata.create_all(source)
    context, _ = _names(metadata)
    with source.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE planted_log (who text)")
        connection.exec_driver_sql(
            "CREATE FUNCTION planted() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN "
            "INSERT INTO public.planted_log VALUES (current_user); RETURN NULL; END$$"
        )
        connection.exec_driver_sql(added.format(table=context))
    consumer = Consumer(source, metadata=metadata)
    try:
        with pytest.raises(CdcError, match=f"table public.{context} on the source carries {named}"):
            consumer.run_once()
    finally:
        consumer.close()
    assert _ran(source) == []


def test_installing_again_by_the_same_role_and_by_a_granted_one_goes_on(
    source: sa.Engine, metadata: sa.MetaData, make_role: Callable[[str], str]
) -> None:
    metadata.create_all(source)
    install_audit_triggers(metadata, source)  # again, by the same role
    context, joins = _names(metadata)
    earlier = make_role("earlier")
    with source.begin() as connection:
        for table in (context, joins):
            connection.exec_driver_sql(f'ALTER TABLE {table} OWNER TO "{earlier}"')
    # a superuser is a member of every role: not granted this one, it is refused
    with pytest.raises(AuditConfigurationError, match=f"owned by role '{earlier}'"):
        install_audit_triggers(metadata, source)
    with source.begin() as connection:
        connection.exec_driver_sql(f'GRANT "{earlier}" TO CURRENT_USER')
    try:
        install_audit_triggers(metadata, source)
    finally:
        with source.begin() as connection:
            connection.exec_driver_sql(f'REVOKE "{earlier}" FROM CURRENT_USER')
    with source.begin() as connection:
        connection.execute(sa.text("INSERT INTO parcel VALUES (1, 'here')"))
    consumer = Consumer(source, metadata=metadata)
    try:
        assert consumer.run_once() == 1
    finally:
        consumer.close()


def test_the_decoder_refuses_a_progress_table_another_role_made_first(
    source: sa.Engine, metadata: sa.MetaData, make_role: Callable[[str], str]
) -> None:
    """The decoder writes its progress (and the run's health) into a table made with ``IF NOT
    EXISTS``: one another role made first would run its triggers as the consumer, and its owner
    could move the progress past changes."""
    metadata.create_all(source)
    _planted_by_a_role(
        source, make_role, PROGRESS_TABLE, list(create_progress_table(None, PROGRESS_COMMENT))
    )
    with source.begin() as connection:
        connection.execute(sa.text("INSERT INTO parcel VALUES (1, 'here')"))
    consumer = Consumer(source, metadata=metadata)
    try:
        with pytest.raises(CdcError, match=f"progress table public.{PROGRESS_TABLE} is owned by role"):
            consumer.run_once()
    finally:
        consumer.close()
    assert _ran(source) == []
    with source.begin() as connection:  # handed to the consumer's role, it is its own
        connection.exec_driver_sql(f"DROP TRIGGER planted ON {PROGRESS_TABLE}")
        connection.exec_driver_sql(f"ALTER TABLE {PROGRESS_TABLE} OWNER TO CURRENT_USER")
    consumer = Consumer(source, metadata=metadata)
    try:
        assert consumer.run_once() == 1
    finally:
        consumer.close()
