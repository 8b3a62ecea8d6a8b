"""Audit history over time: partitions kept ahead of the writers, retention and holds, and the
coverage check."""
