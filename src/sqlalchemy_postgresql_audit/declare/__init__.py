"""Declaring auditing: a table's ``info`` becomes validated options, a complete ``AuditSpec``
and the audit table's ``Table`` objects, in one pass, before anything touches a database."""
