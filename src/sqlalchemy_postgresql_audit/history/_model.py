"""Map an audit table with the ORM.

An audit table has no primary key (a constraint would cost every audited write an index
update), and the ORM needs one to map a class.  ``audit_id`` is unique by construction (an
identity), so a mapper-level ``primary_key=[audit_id]`` is all the ORM needs; no database
constraint is involved.  With declarative, the same recipe is::

    class OrderAudit(Base):
        __table__ = Order.__table__.info["audit.table"]
        __mapper_args__ = {"primary_key": [__table__.c.audit_id]}
"""

from __future__ import annotations

import datetime
import weakref
from typing import Any

from sqlalchemy import Table
from sqlalchemy.orm import Mapped, registry

from ..declare.spec import AUDIT_ID
from ._target import audited


class AuditRecord:
    """Base of the classes ``audit_model`` maps: one audit row.

    The fixed audit columns are typed here; the setting, capture and mirrored columns are
    attributes of the same names (typed ``Any`` for mypy).
    """

    audit_id: Mapped[int]
    audit_operation: Mapped[str]
    audit_operation_timestamp: Mapped[datetime.datetime]
    audit_current_user: Mapped[str]

    def __getattr__(self, name: str) -> Any:
        # Only reached for names that are not mapped.  Declared so that mypy reads the columns
        # mapped at run time (settings, captures, mirrored columns) as ``Any``, not as errors.
        raise AttributeError(f"{type(self).__name__!r} has no attribute {name!r}")

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} audit_id={self.audit_id!r} operation={self.audit_operation!r}>"
        )


_MODELS: weakref.WeakKeyDictionary[Table, type[AuditRecord]] = weakref.WeakKeyDictionary()
_REGISTRY = registry()


def audit_model(target: object) -> type[AuditRecord]:
    """The mapped class of ``target``'s audit table (a ``Table`` or an ORM class), one per
    audit table: ``session.scalars(select(M).where(M.id == 42))`` queries the trail."""
    audit = audited(target).audit
    model = _MODELS.get(audit)
    if model is None:
        name = "".join(part.title() for part in audit.name.split("_") if part.isidentifier())
        model = type(name or "AuditRecord", (AuditRecord,), {"__module__": __name__})
        _REGISTRY.map_imperatively(model, audit, primary_key=[audit.c[AUDIT_ID]])
        _MODELS[audit] = model
    return model
