"""Engines from ``--url``, with every way of failing turned into one line the user can act on.

The command line works synchronously, but the URL it is given is often the application's own,
with an async driver (``postgresql+asyncpg://``, ``postgresql+psycopg_async://``).  Such a URL
is run through an installed sync driver of the same server: the CLI needs no second URL.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
import sys
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

    asyncpg's ``ssl=<mode>`` becomes libpq's ``sslmode=<mode>``, ``timeout`` ``connect_timeout``
    and simple ``server_settings`` ``options=-c ...``; its statement-cache and command options
    are dropped (they do not matter here).  Other query options are passed on, and a sync
    driver that does not know one says so when connecting.
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


#: asyncpg's connection and statement-cache options, with no meaning for a libpq connection the
#: command line opens for a few statements; they are dropped rather than refused by libpq.
_ASYNCPG_ONLY = frozenset(
    {
        "prepared_statement_cache_size",
        "prepared_statement_name_func",
        "statement_cache_size",
        "max_cached_statement_lifetime",
        "max_cacheable_statement_size",
        "command_timeout",
        "direct_tls",
        "connection_class",
        "record_class",
        "async_fallback",
    }
)
#: A setting that ``options=-c name=value`` carries as libpq reads it: no space, quote, backslash.
_SIMPLE_SETTING = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*=[^\s'\"\\,]+$")


def _without_async_options(url: URL) -> URL:
    """``url``'s query in libpq's terms: asyncpg's own options dropped or translated."""
    ssl = url.query.get("ssl")
    if isinstance(ssl, str) and ssl in _SSL_MODES and "sslmode" not in url.query:
        url = url.difference_update_query(["ssl"]).update_query_dict({"sslmode": ssl})
    url = url.difference_update_query([key for key in url.query if key in _ASYNCPG_ONLY])
    timeout = url.query.get("timeout")
    if timeout is not None:
        url = url.difference_update_query(["timeout"])
        seconds = _whole_seconds(timeout)
        if seconds is not None and "connect_timeout" not in url.query:
            url = url.update_query_dict({"connect_timeout": str(seconds)})
    if "server_settings" in url.query:
        url = _server_settings_as_options(url)
    return url


def _whole_seconds(value: str | tuple[str, ...]) -> int | None:
    try:
        return max(1, math.ceil(float(value if isinstance(value, str) else value[-1])))
    except ValueError:
        return None


def _server_settings_as_options(url: URL) -> URL:
    """asyncpg's ``server_settings`` (``name=value`` pairs, comma separated, or a JSON object)
    as libpq's ``options=-c name=value ...``; what it cannot carry exactly is dropped, saying so.
    """
    raw = url.query["server_settings"]
    url = url.difference_update_query(["server_settings"])
    pairs = _setting_pairs(raw if isinstance(raw, str) else ",".join(raw))
    if pairs is None:
        print(
            f"warning: server_settings={raw!r} of the async URL is not passed to the sync "
            "driver of the command line (only simple name=value settings are)",
            file=sys.stderr,
        )
        return url
    given = url.query.get("options")
    options = [given if isinstance(given, str) else " ".join(given or ())]
    options += [f"-c {pair}" for pair in pairs]
    return url.update_query_dict({"options": " ".join(o for o in options if o)})


def _setting_pairs(text: str) -> list[str] | None:
    try:
        parsed = json.loads(text)
    except ValueError:
        pairs = [pair.strip() for pair in text.split(",") if pair.strip()]
    else:
        if not isinstance(parsed, dict):
            return None
        pairs = [f"{name}={value}" for name, value in parsed.items()]
    return pairs if all(_SIMPLE_SETTING.match(pair) for pair in pairs) else None


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


#: SQLSTATE of "permission denied" (``insufficient_privilege``).
_INSUFFICIENT_PRIVILEGE = "42501"

_OWNERS = sa.text(
    "SELECT DISTINCT pg_catalog.pg_get_userbyid(c.relowner) FROM pg_catalog.pg_class c "
    "WHERE c.oid IN (SELECT pg_catalog.to_regclass(t) "
    "FROM pg_catalog.unnest(CAST(:tables AS pg_catalog.text[])) AS t) ORDER BY 1"
)


def permission_denied(error: BaseException) -> bool:
    """Whether ``error`` is PostgreSQL's "permission denied" (insufficient privilege)."""
    original = getattr(error, "orig", None)
    state = getattr(original, "pgcode", None) or getattr(original, "sqlstate", None)
    return isinstance(error, sa.exc.DBAPIError) and state == _INSUFFICIENT_PRIVILEGE


@contextmanager
def owner_rights(engine: sa.Engine, command: str, audit_tables: list[str]) -> Iterator[None]:
    """Turn a "permission denied" inside ``command`` into an error naming the role that ran it
    and the role it needs: the owner of ``audit_tables`` (``schema.name``), whose partitions,
    DEFAULT partition included, are the owner's alone (``lifecycle.maintenance``)."""
    try:
        yield
    except sa.exc.DBAPIError as error:
        if not permission_denied(error):
            raise
        with engine.connect() as connection:
            role = connection.execute(sa.select(sa.func.current_user())).scalar_one()
            owners = connection.execute(_OWNERS, {"tables": audit_tables}).scalars().all()
        owner = " or ".join(repr(name) for name in owners) or "the audit tables' owner"
        raise CliError(
            f"{command} as role {role!r}: {first_line(error)}; it needs the rights of the audit "
            f"tables' owner: run it as {owner} or a member of that role"
        ) from error
