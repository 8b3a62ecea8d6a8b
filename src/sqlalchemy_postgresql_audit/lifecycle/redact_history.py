"""``redact_history``: scrub the values a column recorded before ``redact: mask`` was declared.

Masking a column stops the trigger from recording its values; the values it recorded before
stay in the audit table, readable by every role that reads it, while the history API shows
them as ``REDACTED``.  Scrubbing them is erasure of one column in every version of every row:
it goes through erasure's sanctioned path (the ``append_only`` guard lets it through, the
chain of seals records it) and leaves one ``E`` marker naming the column, the count and the
reason.  Only ``mask``: an omitted column's kept audit column is not part of the declared
audit table (drop it by hand, ``op.drop_column``), and a hashed column cannot hold the plain
values any more (autogenerate refuses that retype).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..errors import AuditError
from ..history._target import audited
from ..install.ddl import _connection, resolve_spec
from .erasure import Erased, _check_reason, _erase
from .turns import take_turns


def redact_history(
    bind: sa.Engine | sa.Connection, target: Any, column: str, *, reason: str
) -> Erased:
    """Set masked ``column`` of ``target`` (an audited Table or mapped class) to NULL in every
    recorded version, with one ``E`` marker; return what was done.

    Run it as the audit owner, once, after the migration that masks the column.  On an Engine
    it runs in one transaction; on a Connection in the caller's.
    """
    resolved = audited(target)
    form = resolved.spec.redaction(column)
    if form != "mask":
        raise AuditError(
            f"redact_history: table {resolved.name!r}, column {column!r} is "
            f"{'not redacted' if form is None else f'redacted with {form!r}'}; it scrubs the "
            "values a column recorded before it was masked (redact: mask)"
        )
    _check_reason(reason, resolved.name)
    with _connection(bind) as connection:
        spec = resolve_spec(connection, resolved.spec)
        take_turns(connection, [spec])  # a drain in flight would put the values back
        return _erase(connection, spec, resolved.audit, (column,), lambda t: sa.true(), reason)
