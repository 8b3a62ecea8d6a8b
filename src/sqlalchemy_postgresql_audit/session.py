"""Transaction-local ``audit.*`` settings that the trigger copies into session-setting columns."""

from __future__ import annotations

import datetime
import enum
import inspect
from typing import Any, Protocol

from sqlalchemy import bindparam, func, select

from .options import SETTING_NAME


class _Executes(Protocol):
    def execute(self, statement: Any, /) -> Any: ...


class _ExecutesAsync(Protocol):
    async def execute(self, statement: Any, /) -> Any: ...


def setting_value(value: object) -> str:
    """The text PostgreSQL receives for ``value``; ``None`` becomes ``''``, read back as NULL."""
    if value is None:
        return ""
    if isinstance(value, enum.Enum):
        return setting_value(value.value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError("audit settings are text: decode bytes before setting them")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    return str(value)


def session_vars_statement(values: dict[str, object]) -> Any:
    """One ``SELECT set_config(...), ...`` with every name and value as a bound parameter."""
    bad = [name for name in values if not SETTING_NAME.match(name)]
    if bad:
        raise ValueError(
            f"invalid audit setting name(s) {bad!r}: use letters, digits and _ "
            "(the name becomes the PostgreSQL setting audit.<name>)"
        )
    calls = [
        func.set_config(
            bindparam(f"audit_name_{i}", f"audit.{name.lower()}"),
            bindparam(f"audit_value_{i}", setting_value(value)),
            True,
        )
        for i, (name, value) in enumerate(values.items())
    ]
    return select(*calls)


def set_session_vars(connection_or_session: _Executes, **values: object) -> None:
    """Set ``audit.<name>`` for the current transaction of a Connection or ORM Session.

    The settings end with the transaction (``set_config(..., true)``), so they never leak to the
    next user of a pooled connection.  Call it inside the transaction whose writes it describes.
    For ``AsyncConnection`` / ``AsyncSession`` use :func:`aset_session_vars`.
    """
    if not values:
        return
    result = connection_or_session.execute(session_vars_statement(values))
    if inspect.isawaitable(result):
        if inspect.iscoroutine(result):
            result.close()
        raise TypeError(
            "set_session_vars() got an async connection or session; "
            "use 'await aset_session_vars(...)' so the settings are really sent"
        )


async def aset_session_vars(connection_or_session: _ExecutesAsync, **values: object) -> None:
    """:func:`set_session_vars` for ``AsyncConnection`` and ``AsyncSession``."""
    if not values:
        return
    await connection_or_session.execute(session_vars_statement(values))
