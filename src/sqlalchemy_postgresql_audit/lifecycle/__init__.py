"""Audit history over time: partitions kept ahead of the writers, retention and holds, the
coverage check, and the keys of redacted (hashed) columns."""
