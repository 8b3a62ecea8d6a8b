"""Transaction-local ``audit.*`` settings that the trigger copies into session-setting columns.

Values are checked here, before anything is sent: the name must be a setting some declared
audited table records (once any audited table is declared), and the value must fit every
column type that setting is declared with in a MetaData, so a typo or a bad value fails at the
call that made it instead of being lost or failing a later write.  Settings reach every table a
transaction writes, so within one MetaData (one application's model) the value must fit every
table declaring it; separate MetaData are separate models, and the value must fit one wholly.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, String, bindparam, func, select, text, true
from sqlalchemy.orm import Session

from ..declare.options import SETTING_NAME
from ..errors import AuditError
from .cdc_row import SETTINGS_PARAMETER, context_insert, settings_json
from .explicit import record
from .values import TypeGroups, known_settings, setting_value, text_for


def _async_classes() -> tuple[type[Any], type[Any], type[Any]]:
    """``(AsyncConnection, AsyncSession, AsyncEngine)``, or three never-matching types when
    SQLAlchemy's asyncio extension cannot be imported (it needs ``greenlet``, which SQLAlchemy
    2.1 no longer installs): then no async object can exist, and sync users need nothing more."""
    try:
        from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
    except ImportError:
        return (_NoAsync, _NoAsync, _NoAsync)
    return (AsyncConnection, AsyncSession, AsyncEngine)


class _NoAsync:
    """Matches nothing: stands in for the async classes when they cannot be imported."""


class AuditSettingError(AuditError, ValueError):
    """A session setting's name or value is invalid; raised before anything is sent."""


class _Executes(Protocol):
    def execute(self, statement: Any, parameters: Any = ..., /) -> Any: ...


class _ExecutesAsync(Protocol):
    async def execute(self, statement: Any, parameters: Any = ..., /) -> Any: ...


def prepare_values(values: dict[str, object]) -> dict[str, str]:
    """Check every name and value; return ``{lower-case name: text PostgreSQL receives}``."""
    bad = [name for name in values if not SETTING_NAME.match(name)]
    if bad:
        raise AuditSettingError(
            f"invalid audit setting name(s) {bad!r}: use letters, digits and _ "
            "(the name becomes the PostgreSQL setting audit.<name>)"
        )
    try:
        return _prepare(values, known_settings())
    except AuditSettingError:  # the cache may predate the table that declares it: look again
        return _prepare(values, known_settings(refresh=True))


def _prepare(values: dict[str, object], known: dict[str, TypeGroups] | None) -> dict[str, str]:
    unknown = sorted(name for name in values if known is not None and name.lower() not in known)
    if unknown:
        raise AuditSettingError(
            f"unknown audit setting(s) {unknown!r}: no audited table declared in this process "
            f"records them; known settings: {sorted(known or ())!r} (if a table declaring them "
            "is not declared yet, call declare_metadata(metadata) at startup)"
        )
    prepared: dict[str, str] = {}
    for name, value in values.items():
        types = known.get(name.lower()) if known is not None else None
        try:
            prepared[name.lower()] = text_for(value, types) if types else setting_value(value)
        except (TypeError, ValueError) as error:
            raise AuditSettingError(f"audit setting {name!r}: {error}") from None
    return prepared


@functools.lru_cache(maxsize=64)
def config_statement(count: int, prefix: str = "audit") -> Any:
    """``SELECT pg_catalog.set_config(:name, :value, true), ...`` for ``count`` settings.

    Cached by shape; the names and values are bound with ``config_parameters``.
    """
    calls = [
        func.pg_catalog.set_config(
            bindparam(f"{prefix}_name_{i}", type_=String()),
            bindparam(f"{prefix}_value_{i}", type_=String()),
            true(),
        )
        for i in range(count)
    ]
    return select(*calls)


def config_parameters(prepared: Mapping[str, str], prefix: str = "audit") -> dict[str, str]:
    """The bound parameters of ``config_statement`` for prepared values."""
    bound: dict[str, str] = {}
    for i, (name, value) in enumerate(prepared.items()):
        bound[f"{prefix}_name_{i}"] = f"audit.{name}"
        bound[f"{prefix}_value_{i}"] = value
    return bound


def set_session_vars(connection_or_session: _Executes, **values: object) -> None:
    """Set ``audit.<name>`` for the current transaction of a Connection or ORM Session.

    The settings end with the transaction (``set_config(..., true)``), so they never leak to the
    next user of a pooled connection.  Call it inside the transaction whose writes it describes.
    For ``AsyncConnection`` / ``AsyncSession`` use ``aset_session_vars``.
    """
    target: object = connection_or_session
    async_connection, async_session, _ = _async_classes()
    if isinstance(target, (async_connection, async_session)):
        raise TypeError(
            "set_session_vars() got an async connection or session; "
            "use 'await aset_session_vars(...)' so the settings are really sent"
        )
    _refuse_non_transactional(target, "set_session_vars")
    if not values:
        return
    prepared = prepare_values(values)
    if isinstance(target, Connection):
        refuse_autocommit(target)
    elif isinstance(target, Session):
        refuse_autocommit(target.connection())
    result = connection_or_session.execute(
        config_statement(len(prepared)), config_parameters(prepared)
    )
    connection = _connection_of(target)
    _record(connection, prepared)
    insert = None if connection is None else context_insert(connection)
    if insert is not None and not inspect.isawaitable(result):
        connection_or_session.execute(*_context_row(insert, prepared))
    if inspect.isawaitable(result):
        if inspect.iscoroutine(result):
            result.close()
        raise TypeError(
            "set_session_vars() got an async connection or session; "
            "use 'await aset_session_vars(...)' so the settings are really sent"
        )


async def aset_session_vars(connection_or_session: _ExecutesAsync, **values: object) -> None:
    """``set_session_vars`` for ``AsyncConnection`` and ``AsyncSession``."""
    target: object = connection_or_session
    if isinstance(target, (Connection, Session)):
        raise TypeError(
            "aset_session_vars() got a sync connection or session; use set_session_vars(...)"
        )
    _refuse_non_transactional(target, "aset_session_vars")
    if not values:
        return
    prepared = prepare_values(values)
    async_connection, async_session, _ = _async_classes()
    if isinstance(target, async_session):
        refuse_autocommit((await target.connection()).sync_connection)
    elif isinstance(target, async_connection):
        refuse_autocommit(target.sync_connection)
    await connection_or_session.execute(
        config_statement(len(prepared)), config_parameters(prepared)
    )
    insert = None
    if isinstance(target, async_session):
        connection = await target.connection()
        _record(connection.sync_connection, prepared)
        insert = await connection.run_sync(context_insert)
    elif isinstance(target, async_connection):
        _record(target.sync_connection, prepared)
        insert = await target.run_sync(context_insert)
    if insert is not None:
        await connection_or_session.execute(*_context_row(insert, prepared))


def _record(connection: Connection | None, prepared: Mapping[str, str]) -> None:
    if connection is not None:
        record(connection, prepared)


def _connection_of(target: object) -> Connection | None:
    if isinstance(target, Connection):
        return target
    if isinstance(target, Session):
        return target.connection()
    return None


def _context_row(insert: str, prepared: Mapping[str, str]) -> tuple[Any, dict[str, str]]:
    """CDC mode: the settings also travel as a row of the context table (``cdc.context_row``)."""
    statement = text(insert).bindparams(bindparam(SETTINGS_PARAMETER, type_=String()))
    return statement, {SETTINGS_PARAMETER: settings_json(prepared)}


def _refuse_non_transactional(target: object, function: str) -> None:
    if isinstance(target, (Engine, _async_classes()[2])):
        raise TypeError(
            f"{function}() needs the Connection or Session whose transaction the settings "
            f"describe, not an {type(target).__name__}: the settings last one transaction, so "
            f"pass the connection of 'with engine.begin() as connection:' or your Session "
            "(or use audit_context(...) to cover every transaction)"
        )
    if not callable(getattr(target, "execute", None)):
        raise TypeError(f"{function}() needs a Connection or Session, got {type(target).__name__}")


def is_autocommit(connection: Connection) -> bool:
    """Whether ``connection`` runs each statement as its own transaction (AUTOCOMMIT)."""
    return bool(getattr(connection.connection.dbapi_connection, "autocommit", False))


def refuse_autocommit(connection: Connection | None) -> None:
    """Raise if ``connection`` is in AUTOCOMMIT mode, where a local setting dies at once.

    There every statement is its own transaction, so ``set_config(..., true)`` would be gone
    before the write and the write would record NULL.
    """
    if connection is None or connection.closed:
        return
    if is_autocommit(connection):
        raise AuditSettingError(
            "audit settings cannot be applied on an AUTOCOMMIT connection: each statement is "
            "its own transaction, so the transaction-local settings would end before the "
            "write and the write would record NULL; use a transaction (engine.begin(), a "
            "Session) for audited writes"
        )
