"""The ``audit.*`` settings ``set_session_vars`` sent in a connection's current transaction.

The check of required settings on CDC tables (``.required``) must know, without asking the
server, which settings the next write runs with: ``audit_context`` values are in the context
variable (``scope``), and the values sent by ``set_session_vars`` are remembered here, per DBAPI
connection (``Connection.info``): forgotten when the transaction ends, put back when a
savepoint taken before them is rolled back (PostgreSQL undoes them there too), and dropped for
a name ``audit_context`` sends again later in the transaction (``overridden``).  A
``set_config`` the application sends itself is not seen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

from sqlalchemy import Connection

from .transaction_state import TRANSACTION_EDGES, listen_once, release, savepoint_depth

_EMPTY: Mapping[str, str] = MappingProxyType({})
#: Keys in ``Connection.info``: the values sent, and ``[(savepoint name, values sent then)]``.
_SENT = "sqlalchemy_postgresql_audit.explicit"
_SAVEPOINTS = "sqlalchemy_postgresql_audit.explicit_savepoints"


def sent_settings(info: Mapping[str, Any]) -> Mapping[str, str]:
    """``{name: text}`` sent by ``set_session_vars`` in this transaction (``""``: NULL)."""
    sent: Mapping[str, str] = info.get(_SENT, _EMPTY)
    return sent


def record(connection: Connection, prepared: Mapping[str, str]) -> None:
    """Remember settings ``set_session_vars`` has just sent on ``connection``."""
    _install()
    info = connection.info
    info[_SENT] = MappingProxyType({**sent_settings(info), **prepared})


def overridden(info: dict[str, Any], names: Iterable[str]) -> None:
    """``audit_context`` sends ``names`` now: what ``set_session_vars`` sent for them is gone."""
    sent = info.get(_SENT)
    if sent:
        names = set(names)
        info[_SENT] = MappingProxyType({k: v for k, v in sent.items() if k not in names})


def _install() -> None:
    listen_once(_LISTENERS)


def _forget(connection: Connection, *args: Any) -> None:
    if not connection.invalidated:  # an invalidated connection's info is gone with it
        connection.info.pop(_SENT, None)
        connection.info.pop(_SAVEPOINTS, None)


def _savepoint(connection: Connection, name: str) -> None:
    if not connection.invalidated:
        info = connection.info
        info.setdefault(_SAVEPOINTS, []).append((name, sent_settings(info)))


def _rollback_savepoint(connection: Connection, name: str, context: Any) -> None:
    if connection.invalidated:
        return
    info = connection.info
    stack = info.get(_SAVEPOINTS, [])
    depth = savepoint_depth(stack, name)
    if depth is None:
        info.pop(_SENT, None)  # taken before anything was recorded: nothing was sent before it
        return
    del stack[depth + 1 :]
    info[_SENT] = stack[depth][1]


def _release_savepoint(connection: Connection, name: str, context: Any) -> None:
    if not connection.invalidated:
        release(connection.info.get(_SAVEPOINTS, []), name)


#: Registered in this order: the last one tells whether all are (``listen_once``).
_LISTENERS: tuple[tuple[str, Callable[..., Any]], ...] = (
    *((edge, _forget) for edge in TRANSACTION_EDGES),
    ("rollback_savepoint", _rollback_savepoint),
    ("release_savepoint", _release_savepoint),
    ("savepoint", _savepoint),
)
