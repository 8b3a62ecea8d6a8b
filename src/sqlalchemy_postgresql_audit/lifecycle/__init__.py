"""Audit history over time: partitions kept ahead of the writers (by ``maintain`` or
pg_partman), retention and holds, the coverage check, converting an audit table to partitions,
the archive server, the keys of redacted (hashed) columns, seals and their verification, and
erasure."""
