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

import threading
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from sqlalchemy import Connection, Engine, event

_EMPTY: Mapping[str, str] = MappingProxyType({})
#: Keys in ``Connection.info``: the values sent, and ``[(savepoint name, values sent then)]``.
_SENT = "sqlalchemy_postgresql_audit.explicit"
_SAVEPOINTS = "sqlalchemy_postgresql_audit.explicit_savepoints"
_INSTALL_LOCK = threading.Lock()


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
    if event.contains(Engine, "savepoint", _savepoint):
        return
    with _INSTALL_LOCK:
        if event.contains(Engine, "savepoint", _savepoint):
            return
        for name in ("begin", "commit", "rollback", "commit_twophase", "rollback_twophase"):
            event.listen(Engine, name, _forget)
        event.listen(Engine, "rollback_savepoint", _rollback_savepoint)
        event.listen(Engine, "release_savepoint", _release_savepoint)
        event.listen(Engine, "savepoint", _savepoint)


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
    for depth in range(len(stack) - 1, -1, -1):
        if stack[depth][0] == name:
            del stack[depth + 1 :]
            info[_SENT] = stack[depth][1]
            return
    info.pop(_SENT, None)  # taken before anything was recorded: nothing was sent before it


def _release_savepoint(connection: Connection, name: str, context: Any) -> None:
    if connection.invalidated:
        return
    stack = connection.info.get(_SAVEPOINTS, [])
    for depth in range(len(stack) - 1, -1, -1):
        if stack[depth][0] == name:
            del stack[depth:]
            return
