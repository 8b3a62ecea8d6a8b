"""Putting declared auditing into a database and reading back what is there: the DDL that
installs it, the catalog, the pure comparison of declared with installed, grants, 0.5.x
installations, and the checks that refuse to run without it."""
