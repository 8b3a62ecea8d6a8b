"""Writes that change a CDC table's rows without naming it: a foreign key's referential action.

``DELETE FROM parent`` deletes the rows of ``child`` whose foreign key says ``ON DELETE
CASCADE`` (and updates them for ``SET NULL`` or ``SET DEFAULT``); ``UPDATE parent`` of a
referenced key updates them for an ``ON UPDATE`` action.  Those changes reach a CDC table's
trail in the writer's transaction, so the statement that sets them off must carry the context
row although it writes a trigger-mode (or unaudited) table.

Only the foreign keys SQLAlchemy knows are followed: the ``ondelete``/``onupdate`` of the
``ForeignKey`` objects of the MetaData holding declared audited tables (and of the written
table's own).  A foreign key that exists only in the database, or a trigger that writes a CDC
table, is not seen (``set_session_vars`` sends the row for such a write).  A table is matched
by name alone, as ``statements`` matches CDC tables: a context row too many costs a row, one
too few loses the context.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import MetaData, Table

from ..declare.declaration import declared_tables, specs_stored
from .cdc_row import cdc_table_names

#: The referential actions that write the referencing rows (``RESTRICT``/``NO ACTION`` refuse).
_WRITING = frozenset({"cascade", "set null", "set default"})

#: What a write does to a referencing row: ``(table name, "delete" | "update")``.
_Effect = tuple[str, str]

#: (what it was computed under, ``{effect: whether it reaches a CDC table}``).
_cache: tuple[object, dict[_Effect, bool]] = (None, {})


def reaches_cdc(table: Table, operations: Iterable[str]) -> bool:
    """Whether ``operations`` (``INSERT``, ``UPDATE``, ``DELETE``) on ``table`` may change a CDC
    table's rows through foreign keys, transitively.  An INSERT sets off no action."""
    global _cache
    metadatas = _metadatas(table)
    stamp = (specs_stored(), tuple((id(m), len(m.tables)) for m in metadatas))
    if _cache[0] != stamp:
        _cache = (stamp, {})
    answers = _cache[1]
    kinds = {"DELETE": "delete", "UPDATE": "update"}
    effects = [(table.name, kinds[op]) for op in operations if op in kinds]
    for effect in effects:
        if effect not in answers:
            answers[effect] = _reaches(effect, _referencing(metadatas))
        if answers[effect]:
            return True
    return False


def _metadatas(table: Table) -> list[MetaData]:
    found = {id(t.metadata): t.metadata for t in declared_tables()}
    found.setdefault(id(table.metadata), table.metadata)
    return sorted(found.values(), key=id)


def _referencing(metadatas: list[MetaData]) -> dict[_Effect, set[_Effect]]:
    """``{write of a referenced table: the writes its foreign keys' actions make}``."""
    made: dict[_Effect, set[_Effect]] = defaultdict(set)
    for metadata in metadatas:
        for child in metadata.tables.values():
            for constraint in child.foreign_key_constraints:
                # The name as written: the referenced table need not be in this MetaData.
                parent = constraint.elements[0].target_fullname.split(".")[-2]
                ondelete = (constraint.ondelete or "").lower()
                onupdate = (constraint.onupdate or "").lower()
                if ondelete == "cascade":
                    made[(parent, "delete")].add((child.name, "delete"))
                elif ondelete in _WRITING:
                    made[(parent, "delete")].add((child.name, "update"))
                if onupdate in _WRITING:
                    made[(parent, "update")].add((child.name, "update"))
    return made


def _reaches(start: _Effect, made: dict[_Effect, set[_Effect]]) -> bool:
    """Whether the writes ``start`` sets off, transitively, include one of a CDC table."""
    cdc = cdc_table_names()
    seen, todo = {start}, [start]
    while todo:
        for effect in made.get(todo.pop(), ()):
            if effect[0] in cdc:
                return True
            if effect not in seen:
                seen.add(effect)
                todo.append(effect)
    return False
