"""The SQL that finds a source's context or joins table another role made first.

Both are made with ``CREATE TABLE IF NOT EXISTS``, so a role that may create in their schema
can make one first, with a trigger, a rule or a row-level security policy calling a function of
its own: the installer's insert into the joins table, every writer's context row and the
consumer's delete of consumed rows would then run that code with their own rights.  The
library makes none of these on the source's tables (the context trigger is the target's, on
its own copy), nor children or another kind of relation, so any of them is foreign code.
"""

from __future__ import annotations

#: Bound: ``tables`` (regclass texts).  For each of those that exists: its name, its owner, and
#: whether the current role is that owner or a member of it through granted roles only
#: (``owned``: a superuser is a member of every role by ``pg_has_role``, which proves nothing
#: about who made the table), and ``foreign``: what on it runs code the library did not make
#: (triggers, rules, policies, row-level security, inheritance children, another relkind).
SOURCE_TABLES = (
    "WITH RECURSIVE mine(oid) AS ("
    "SELECT r.oid FROM pg_catalog.pg_roles AS r "
    "WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER "
    "UNION SELECT m.roleid FROM pg_catalog.pg_auth_members AS m "
    "JOIN mine ON m.member OPERATOR(pg_catalog.=) mine.oid) "
    "SELECT pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.' "
    "OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.relname) AS name, "
    "pg_catalog.pg_get_userbyid(c.relowner) AS owner, "
    "c.relowner OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT oid FROM mine)) AS owned, "
    "ARRAY(SELECT 'trigger ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(t.tgname) "
    "FROM pg_catalog.pg_trigger AS t WHERE t.tgrelid OPERATOR(pg_catalog.=) c.oid "
    "UNION ALL SELECT 'rule ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(w.rulename) "
    "FROM pg_catalog.pg_rewrite AS w WHERE w.ev_class OPERATOR(pg_catalog.=) c.oid "
    "UNION ALL SELECT 'policy ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(p.polname) "
    "FROM pg_catalog.pg_policy AS p WHERE p.polrelid OPERATOR(pg_catalog.=) c.oid "
    "UNION ALL SELECT 'row-level security' WHERE c.relrowsecurity "
    "UNION ALL SELECT 'child table ' OPERATOR(pg_catalog.||) "
    "CAST(CAST(i.inhrelid AS pg_catalog.regclass) AS pg_catalog.text) "
    "FROM pg_catalog.pg_inherits AS i WHERE i.inhparent OPERATOR(pg_catalog.=) c.oid "
    "UNION ALL SELECT 'relkind ' OPERATOR(pg_catalog.||) CAST(c.relkind AS pg_catalog.text) "
    "WHERE c.relkind OPERATOR(pg_catalog.<>) 'r' "
    "ORDER BY 1) AS foreign_code "
    "FROM pg_catalog.pg_class AS c "
    "JOIN pg_catalog.pg_namespace AS n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace "
    "WHERE c.oid OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT pg_catalog.to_regclass(t) "
    "FROM pg_catalog.unnest(CAST(:tables AS pg_catalog.text[])) AS t)) "
    "ORDER BY 1"
)
