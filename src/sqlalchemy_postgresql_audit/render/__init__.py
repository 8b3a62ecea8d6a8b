"""The one place that assembles SQL text: quoting in ``.sql``, one module per template
version, and the append-only guard and GRANTs in ``.guard``.

``render(spec)`` dispatches on ``spec.template``.  A released version's output never changes, so
a migration that names it installs the same SQL after a library upgrade.  Version 0 renders what
the 0.5.x releases installed (for upgrades and their downgrades); version 1 is this library's
first, version 2 (``template_v2``'s docstring lists what it changes) the current one.
"""

from __future__ import annotations

from collections.abc import Callable

from ..declare.spec import AuditSpec
from .baseline import BASELINE_CODE, lock_against_writes, render_baseline
from .grants import GRANTS_MARKER, render_grants
from .guard import (
    GUARD_CONFIG,
    GUARD_TRIGGER,
    GUARD_TRUNCATE_TRIGGER,
    PURGE_BEFORE_SETTING,
    PURGE_MARKER_TRIGGER,
    PURGE_OPERATION_CODE,
    guard_body,
    guard_function,
    render_append_only_guard,
)
from .partitions import drop_partition_triggers, install_partition_triggers
from .redaction import install_key_table
from .sql import (
    COMMENT_MARKER,
    FALLBACK_SCHEMA,
    NEW_ROWS,
    OLD_ROWS,
    RenderedAudit,
    always_qualified,
    always_quote,
    drop_function,
    drop_trigger,
    function_comment,
    function_signature,
    literal,
    qualified,
    quote,
    resolved,
)
from .template_v0 import legacy_timestamp_using, render_v0
from .template_v1 import function_config as function_config_v1
from .template_v1 import render_v1
from .template_v2 import function_config_v2, render_v2

_TEMPLATES: dict[int, Callable[[AuditSpec], RenderedAudit]] = {
    0: render_v0,
    1: render_v1,
    2: render_v2,
}


def function_config(spec: AuditSpec) -> tuple[str, ...]:
    """The settings ``spec``'s function runs with, as ``pg_proc.proconfig`` lists them."""
    return function_config_v2(spec) if spec.template >= 2 else function_config_v1(spec)


def render(spec: AuditSpec) -> RenderedAudit:
    """The statements installing and removing ``spec``'s auditing.

    Every object is named schema-qualified.  ``spec.schema`` should be resolved by the caller
    (``ddl.resolve_spec``); a spec whose schema is still ``None`` (a script rendered without a
    connection) is rendered for schema ``public``, and the function's comment stores the spec
    with that explicit schema.  An ``append_only`` spec's guard is installed after the
    template's objects and removed before them, whatever the template version.
    """
    spec = resolved(spec)
    if spec.cdc:
        return _render_cdc_source(spec)
    try:
        template = _TEMPLATES[spec.template]
    except KeyError:
        raise ValueError(
            f"audit template version {spec.template} is unknown to this library version "
            f"(known: {sorted(_TEMPLATES)}); upgrade sqlalchemy-postgresql-audit"
        ) from None
    if spec.redacted and spec.template < 2:
        raise ValueError(f"audit spec of {spec.table!r}: redaction needs template 2 or later")
    audit = template(spec)
    install, uninstall = render_append_only_guard(spec)
    # The key table comes first, the function reads it; uninstalling keeps it with its keys.
    keys = install_key_table(spec.schema) if spec.hashes else ()
    if not install and not keys:
        return audit
    return RenderedAudit(
        function_body=audit.function_body,
        install=(*keys, *audit.install, *install),
        uninstall=(*uninstall, *audit.uninstall),
    )


def _render_cdc_source(spec: AuditSpec) -> RenderedAudit:
    """A CDC table's source carries no audit function or trigger: installing removes those of
    an earlier trigger-mode installation (the publication, installed beside, captures it now).
    What the consumer's side installs is ``render(spec.capture_spec)``."""
    return RenderedAudit(
        function_body="", install=render(spec.capture_spec).uninstall, uninstall=()
    )


__all__ = [
    "BASELINE_CODE",
    "COMMENT_MARKER",
    "FALLBACK_SCHEMA",
    "GRANTS_MARKER",
    "GUARD_CONFIG",
    "GUARD_TRIGGER",
    "GUARD_TRUNCATE_TRIGGER",
    "NEW_ROWS",
    "OLD_ROWS",
    "PURGE_BEFORE_SETTING",
    "PURGE_MARKER_TRIGGER",
    "PURGE_OPERATION_CODE",
    "RenderedAudit",
    "always_qualified",
    "always_quote",
    "drop_function",
    "drop_partition_triggers",
    "drop_trigger",
    "function_comment",
    "function_config",
    "function_signature",
    "guard_body",
    "guard_function",
    "install_partition_triggers",
    "legacy_timestamp_using",
    "literal",
    "lock_against_writes",
    "qualified",
    "quote",
    "render",
    "render_append_only_guard",
    "render_baseline",
    "render_grants",
    "resolved",
]
