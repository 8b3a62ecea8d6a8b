"""The life of audit history over time: converting to partitions, partition upkeep, retention,
the archive server."""
