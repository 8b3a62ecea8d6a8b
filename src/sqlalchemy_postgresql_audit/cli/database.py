"""Engines from ``--url``, with every way of failing turned into one line the user can act on.

The command line works synchronously, but the URL it is given is often the application's own,
with an async driver (``postgresql+asyncpg://``, ``postgresql+psycopg_async://``).  Such a URL
is run through an installed sync driver of the same server: the CLI needs no second URL.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from .base import CliError

EXAMPLE = "postgresql+psycopg2://user:password@host:5432/database"


def parse_url(text: str) -> URL:
    try:
        url = make_url(text)
    except (sa.exc.ArgumentError, ValueError):
        raise CliError(f"invalid database URL (expected for example {EXAMPLE})") from None
    if url.get_backend_name() != "postgresql":
        raise CliError(
            f"{url.render_as_string()} is not a PostgreSQL URL (expected for example {EXAMPLE})"
        )
    return url


#: Sync drivers to run an async URL through, in order of preference: (driver, module).
SYNC_DRIVERS = (("psycopg", "psycopg"), ("psycopg2", "psycopg2"))
#: The async drivers whose sync twin is known: ``psycopg_async`` is psycopg 3 itself.
_TWINS = {"psycopg_async": "psycopg"}
#: libpq's ``sslmode`` values, which asyncpg also takes as ``ssl=``.
_SSL_MODES = frozenset({"disable", "allow", "prefer", "require", "verify-ca", "verify-full"})


def sync_url(url: URL) -> URL:
    """``url`` itself for a sync driver; for an async one, the same server through the sync
    driver that is installed (psycopg 3, else psycopg2).

    asyncpg's ``ssl=<mode>`` becomes libpq's ``sslmode=<mode>``; other driver-specific query
    options are passed on, and a sync driver that does not know one says so when connecting.
    """
    try:
        is_async = bool(url.get_dialect().is_async)
    except (sa.exc.NoSuchModuleError, ModuleNotFoundError):
        return url  # ``create_engine`` reports the missing or unknown driver
    if not is_async:
        return url
    candidates = [d for d in SYNC_DRIVERS if d[0] == _TWINS.get(url.get_driver_name())]
    candidates += [d for d in SYNC_DRIVERS if d not in candidates]
    for driver, module in candidates:
        if importlib.util.find_spec(module) is not None:
            return _without_async_options(url.set(drivername=f"postgresql+{driver}"))
    raise CliError(
        f"{url.drivername} is an async driver and no sync driver is installed for the command "
        "line: install sqlalchemy-postgresql-audit[psycopg] (or [psycopg2])"
    )


def _without_async_options(url: URL) -> URL:
    ssl = url.query.get("ssl")
    if isinstance(ssl, str) and ssl in _SSL_MODES and "sslmode" not in url.query:
        url = url.difference_update_query(["ssl"]).update_query_dict({"sslmode": ssl})
    return url


def create_engine(text: str | URL) -> sa.Engine:
    url = sync_url(text if isinstance(text, URL) else parse_url(text))
    try:
        return sa.create_engine(url)
    except ModuleNotFoundError as error:
        raise CliError(
            f"the driver of {url.drivername} is not installed ({error}); "
            "install sqlalchemy-postgresql-audit[psycopg2] or [psycopg]"
        ) from error
    except sa.exc.NoSuchModuleError as error:
        raise CliError(f"unknown driver {url.drivername!r}") from error


@contextmanager
def begin(engine: sa.Engine) -> Iterator[sa.Connection]:
    """One transaction; a failure to connect says where and why in one line."""
    try:
        connection = engine.connect()
    except sa.exc.DBAPIError as error:
        raise CliError(
            f"cannot connect to {engine.url.render_as_string()}: {first_line(error)}"
        ) from error
    with connection, connection.begin():
        yield connection


def first_line(error: BaseException) -> str:
    """The driver's message without SQLAlchemy's statement dump and background link."""
    original = getattr(error, "orig", None) or error
    lines = str(original).strip().splitlines()
    return lines[0] if lines else type(original).__name__
