"""Engines from ``--url``, with every way of failing turned into one line the user can act on."""

from __future__ import annotations

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


def create_engine(text: str | URL) -> sa.Engine:
    url = text if isinstance(text, URL) else parse_url(text)
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
