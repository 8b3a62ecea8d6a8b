"""The consumers' errors (the decoder's own, about what the WAL says, is ``DecoderError``), and
which errors running again later can get past."""

from __future__ import annotations

import re

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from ..errors import AuditError


class CdcError(AuditError, RuntimeError):
    """The consumer cannot make progress (the subscription's errors are in the target's log)."""

    #: True when running again later can succeed with nothing changed by hand (a server that
    #: restarts, a table a deploy is about to declare): ``Consumer.run`` waits and tries again
    #: instead of ending.
    transient: bool = False


class ConsumerArgumentError(AuditError, ValueError):
    """A ``Consumer`` was given an argument it cannot work with (raised by its constructor)."""


class SlotInUse(CdcError):
    """Another consumer reads the slot: a second one would write its changes again."""

    def __init__(self, slot: str, problem: str) -> None:
        self.slot = slot
        super().__init__(problem)


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` can go away by itself: a connection that failed or was lost (a server
    restarting, a failover, a network cut: ``OperationalError``, ``InterfaceError``, or any
    driver error after which SQLAlchemy invalidated the connection), or a ``CdcError`` that
    says so.  Everything else is taken for a configuration error, which waiting cannot mend."""
    if isinstance(error, CdcError):
        return error.transient
    if refusal(error) is not None:
        return False
    if isinstance(error, (OperationalError, InterfaceError)):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


#: SQLSTATEs with which a server refuses a connection for good: no such database
#: (``invalid_catalog_name``), no such role or no ``pg_hba.conf`` entry
#: (``invalid_authorization_specification``), a wrong password.
_REFUSED = {
    "3D000": "the database does not exist",
    "28000": "the server does not let this role connect",
    "28P01": "the password was refused",
}
#: The same refusals as libpq reports them at connect, where neither psycopg2 nor psycopg
#: carries the SQLSTATE (the server's English messages; a server with other ``lc_messages``
#: is caught by the SQLSTATE only, once connected).
_REFUSED_AT_CONNECT = (
    (re.compile(r'FATAL:\s+database ".*" does not exist'), "3D000"),
    (re.compile(r'FATAL:\s+role ".*" does not exist'), "28000"),
    (re.compile(r"FATAL:\s+no pg_hba\.conf entry"), "28000"),
    (re.compile(r"FATAL:\s+password authentication failed"), "28P01"),
)


def refusal(error: BaseException) -> str | None:
    """Why the server refuses ``error``'s connection for good (waiting cannot mend it: the
    URL, the role or the server's configuration must change), or ``None``."""
    if not isinstance(error, DBAPIError):
        return None
    code = sqlstate(error)
    if code is None and isinstance(error, OperationalError):
        message = str(error.orig)
        code = next((c for pattern, c in _REFUSED_AT_CONNECT if pattern.search(message)), None)
    return None if code is None else _REFUSED.get(code)


def describe(error: BaseException) -> str:
    """One line saying what failed: the driver's own message for a driver error (SQLAlchemy's
    adds the statement and a link), else the error's."""
    cause = error.orig if isinstance(error, DBAPIError) and error.orig is not None else error
    text = " ".join(str(cause).split()) or type(cause).__name__
    return f"{type(cause).__name__}: {text}"


#: The SQLSTATE of a right the role lacks.
INSUFFICIENT_PRIVILEGE = "42501"


def sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of a driver error, whichever driver (psycopg2's ``pgcode``, psycopg's
    ``sqlstate``)."""
    cause = error.orig if isinstance(error, DBAPIError) else error
    code = getattr(cause, "pgcode", None) or getattr(cause, "sqlstate", None)
    return str(code) if code else None
