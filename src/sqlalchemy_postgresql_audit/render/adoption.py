"""SQL that refuses to adopt a library table someone else created first (the redaction key
table, the seal tables, the holds table) and that tells the partitions retention kept from
tables made to look like them.

Whoever owns such a table, or left a row-level-security policy, a trigger, a rule, an
inheritance child or a column on it, runs code or reads secrets as its next owner: a writer
with CREATE on the schema could plant a key table whose policy calls the writer's function, and
every audited write (the trigger function reads the key table as the audit owner) would run it
with the audit owner's rights.  So, like an audit table, a table already there is used only when
its owner is the current role, a role it is explicitly a member of, a superuser, or a role
trusted by the caller (the owner of the trigger function, the audit owner of the grant step),
and when it has nothing the library never makes.  The check runs as a ``DO`` block so that the
install script refuses too.  The holds table is refused also when another role may change it
(lift a hold); a kept partition must be owned by the audit table's owner itself, and may carry
no trigger but the append-only guard's (``adoption_problems`` is the one list of reasons).
"""

from __future__ import annotations

from collections.abc import Sequence

from .sql import dollar_quote, literal, name_text

_QUOTED_LIST = "pg_catalog.string_agg(pg_catalog.quote_ident({0}::text), ', ' ORDER BY {0})"

#: Who may own a table the library adopts (``owner``: a role name literal or NULL,
#: ``functions``: function name literals or NULL, see ``refuse_foreign_table``).
TRUSTED_OWNER = """
      SELECT pg_catalog.format('it is owned by %s, neither the current role, a role it is a '
                               'member of, a superuser nor the audit owner',
                               c.relowner::pg_catalog.regrole)
      WHERE c.relowner NOT IN (
              WITH RECURSIVE installer(oid) AS (
                  SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user
                UNION
                  SELECT m.roleid FROM pg_catalog.pg_auth_members m
                  JOIN installer i ON m.member = i.oid
              )
              SELECT oid FROM installer)
        AND NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid = c.relowner)
        AND c.relowner IS DISTINCT FROM (SELECT r.oid FROM pg_catalog.pg_roles r
                                         WHERE r.rolname = {owner})
        AND c.relowner NOT IN (SELECT p.proowner FROM pg_catalog.pg_proc p
                               WHERE p.pronamespace = c.relnamespace AND p.pronargs = 0
                                 AND p.proname IN ({functions}))"""

#: The one owner a table may have (``owner``: an expression of that role's oid).
EXACT_OWNER = """
      SELECT pg_catalog.format('it is owned by %s, not by %s, the audit table''s owner',
                               c.relowner::pg_catalog.regrole, ({owner})::pg_catalog.regrole)
      WHERE c.relowner IS DISTINCT FROM ({owner})"""


def adoption_problems(
    *,
    owner_problem: str,
    expected_columns: str = "NULL::text[]",
    trigger_functions: str = "NULL::pg_catalog.oid[]",
    grants: bool = False,
) -> str:
    """A query of every reason the table ``c`` (a ``pg_class`` row in scope) is not one the
    library made, one row each: ``owner_problem`` (``TRUSTED_OWNER`` or ``EXACT_OWNER``,
    filled in), anything but a plain table, row level security, policies, rules, inheritance
    (a partition too),
    triggers other than those running ``trigger_functions`` (an ``oid[]`` expression), columns
    not in ``expected_columns`` (a ``text[]`` expression, NULL: any), and with ``grants`` any
    right but SELECT held by another role than the owner (who could change what it says)."""
    granted = (
        """
    UNION ALL
      SELECT 'roles other than its owner may change it: ' || pg_catalog.string_agg(
               r.who OPERATOR(pg_catalog.||) ' (' OPERATOR(pg_catalog.||) r.rights
               OPERATOR(pg_catalog.||) ')', ', ' ORDER BY r.who)
      FROM (SELECT CASE g.grantee WHEN 0 THEN 'PUBLIC'
                     ELSE g.grantee::pg_catalog.regrole::text END AS who,
                   pg_catalog.string_agg(DISTINCT g.privilege_type, ', ') AS rights
            FROM (SELECT e.grantee, e.privilege_type FROM pg_catalog.aclexplode(c.relacl) e
                  UNION ALL
                  SELECT e.grantee, e.privilege_type
                  FROM pg_catalog.pg_attribute a, pg_catalog.aclexplode(a.attacl) e
                  WHERE a.attrelid = c.oid AND a.attnum > 0) AS g
            WHERE g.grantee <> c.relowner AND g.privilege_type <> 'SELECT'
            GROUP BY 1) AS r
      HAVING pg_catalog.count(*) > 0"""
        if grants
        else ""
    )
    return f"""{owner_problem}
    UNION ALL
      SELECT 'it is not a plain table' WHERE c.relkind <> 'r'
    UNION ALL
      SELECT 'row level security is enabled on it'
      WHERE c.relrowsecurity OR c.relforcerowsecurity
    UNION ALL
      SELECT 'it has policies ' || {_QUOTED_LIST.format("p.polname")}
      FROM pg_catalog.pg_policy p WHERE p.polrelid = c.oid HAVING pg_catalog.count(*) > 0
    UNION ALL
      SELECT 'it has triggers ' || {_QUOTED_LIST.format("t.tgname")}
      FROM pg_catalog.pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal
        AND t.tgfoid <> ALL (COALESCE({trigger_functions}, '{{}}'))
      HAVING pg_catalog.count(*) > 0
    UNION ALL
      SELECT 'it has rules ' || {_QUOTED_LIST.format("r.rulename")}
      FROM pg_catalog.pg_rewrite r WHERE r.ev_class = c.oid HAVING pg_catalog.count(*) > 0
    UNION ALL
      SELECT 'it inherits from or is inherited by another table'
      WHERE EXISTS (SELECT FROM pg_catalog.pg_inherits i
                    WHERE i.inhrelid = c.oid OR i.inhparent = c.oid)
    UNION ALL
      SELECT 'it has columns the library never makes: ' || {_QUOTED_LIST.format("a.attname")}
      FROM pg_catalog.pg_attribute a
      WHERE {expected_columns} IS NOT NULL AND a.attrelid = c.oid AND a.attnum > 0
        AND NOT a.attisdropped AND a.attname::text <> ALL ({expected_columns})
      HAVING pg_catalog.count(*) > 0{granted}"""


_HINT = (
    "Whoever made it could read its secrets or run code as its owner; drop it "
    "(after checking it) and let the library create it."
)


def refuse_foreign_table(
    schema: str | None,
    table: str,
    *,
    columns: Sequence[str] | None = None,
    trusted_functions: Sequence[str] = (),
    trusted_owner: str | None = None,
    grants: bool = False,
    hint: str = _HINT,
) -> str:
    """A ``DO`` block that raises, naming the table and every reason, unless ``schema.table``
    is missing or is one the library may adopt; ``columns``: the only columns it may have;
    ``grants``: refuse it also when another role than its owner may change it; ``hint``: what
    to do about it."""
    functions = ", ".join(literal(f) for f in trusted_functions) or "NULL"
    expected = (
        "ARRAY[" + ", ".join(literal(c) for c in columns) + "]::text[]"
        if columns is not None
        else "NULL::text[]"
    )
    owner = literal(trusted_owner) if trusted_owner else "NULL"
    problems = adoption_problems(
        owner_problem=TRUSTED_OWNER.format(owner=owner, functions=functions),
        expected_columns="expected",
        grants=grants,
    )
    body = f"""
DECLARE
  target pg_catalog.regclass := pg_catalog.to_regclass({literal(name_text(schema, table))});
  expected text[] := {expected};
  problem text;
BEGIN
  IF target IS NULL THEN
    RETURN;
  END IF;
  SELECT pg_catalog.string_agg(why.reason, '; ') INTO problem
  FROM pg_catalog.pg_class c, LATERAL ({problems}
  ) AS why(reason)
  WHERE c.oid = target;
  IF problem IS NOT NULL THEN
    RAISE EXCEPTION '% was not created by sqlalchemy-postgresql-audit, so it is not adopted: %',
      target, problem
      USING HINT = {literal(hint)};
  END IF;
END
"""
    return f"DO {dollar_quote(body)}"
