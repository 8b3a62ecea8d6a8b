"""Audit history over time: partitions kept ahead of the writers, retention and holds, the
coverage check, the keys of redacted (hashed) columns, seals and their verification, and
erasure."""
