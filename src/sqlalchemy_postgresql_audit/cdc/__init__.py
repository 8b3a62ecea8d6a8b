"""Change-data-capture: audit rows written from the WAL, off the writer's transaction."""
