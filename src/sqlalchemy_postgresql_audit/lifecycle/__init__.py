"""Audit history over time: partitions kept ahead of the writers, retention and holds, the
coverage check, seals and their verification, and erasure."""
