"""The audit template as it was at commit 152c4ed (before the hardening), for benchmarks only.

Issue 17 measures how much of the hardening's cost a change wins back, so the benchmarks run the
old template side by side with today's.  Nothing of it enters the library: the SQL is rendered
by that commit's own sources, unpacked from git (``git archive 152c4ed``) into a scratch folder
and imported by a child Python process, which reflects the given tables, declares them audited
as an application did then, and prints the statements that create the audit tables and install
the functions and triggers.  The old objects are named with the suffix ``_ref152c4ed`` (through
the old naming conventions), so they live next to today's without a clash.

What that template does: a ``SECURITY INVOKER`` PL/pgSQL function without ``SET`` clauses, no
table guard, the writer as ``current_user``, ``now()`` as the time, one ``INSERT ... SELECT`` per
operation over the transition tables (statement mode), no moved-key (``K``) rows, and an audit
table without the ``(key, audit_id)`` history index.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path

COMMIT = "152c4ed"
SUFFIX = "_ref152c4ed"
REPOSITORY = Path(__file__).resolve().parent.parent

#: Run in the child process, with the old sources first on ``sys.path``.
_CHILD = f"""
import json, sys
sys.path.insert(0, sys.argv[1])
import sqlalchemy as sa
from sqlalchemy.schema import CreateTable
from sqlalchemy.dialects import postgresql
import sqlalchemy_postgresql_audit as old
from sqlalchemy_postgresql_audit.ddl import audited_tables, install_statements

url, schema, mode, username = sys.argv[2], sys.argv[3] or None, sys.argv[4], sys.argv[5] == "1"
tables = sys.argv[6:]
assert old.__file__.startswith(sys.argv[1]), old.__file__
old.enable()
suffix = "%(table_name)s" + {SUFFIX!r}
metadata = sa.MetaData(schema=schema, naming_convention={{
    "audit.table": suffix,
    "audit.function": "%(schema)s_" + suffix,
    "audit.trigger": "%(schema)s_" + suffix,
}})
engine = sa.create_engine(url, poolclass=sa.NullPool)
options = {{"enabled": True, "mode": mode}}
if username:
    options["session_settings"] = [sa.Column("username", sa.String(64))]
for name in tables:
    sa.Table(name, metadata, autoload_with=engine, info={{"audit.options": options}})
dialect = postgresql.dialect()
statements = [
    str(CreateTable(table.info[old.AUDIT_TABLE_KEY]).compile(dialect=dialect))
    for table, _ in audited_tables(metadata)
]
statements += install_statements(spec for _, spec in audited_tables(metadata))
print(json.dumps(statements))
"""


@contextmanager
def old_sources() -> Iterator[Path]:
    """The library's sources at ``COMMIT``, unpacked into a scratch folder."""
    archive = subprocess.run(
        ["git", "-C", str(REPOSITORY), "archive", COMMIT, "src/sqlalchemy_postgresql_audit"],
        capture_output=True,
        check=True,
    ).stdout
    with tempfile.TemporaryDirectory(prefix="ref152c4ed-") as scratch:
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(scratch, filter="data")
        yield Path(scratch) / "src"


def install_sql(
    url: str, schema: str | None, tables: Sequence[str], *, mode: str, username: bool
) -> list[str]:
    """The statements creating the old audit tables and installing the old triggers on
    ``tables`` (which must exist), as commit 152c4ed rendered them.

    ``url`` is a SQLAlchemy URL the child can connect with (to reflect the tables); with
    ``username`` the tables record the ``audit.username`` setting, as the capture benchmark's.
    """
    with old_sources() as src:
        finished = subprocess.run(
            [
                sys.executable,
                "-c",
                _CHILD,
                str(src),
                url,
                schema or "",
                mode,
                "1" if username else "0",
                *tables,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    if finished.returncode != 0:
        raise SystemExit(f"rendering the {COMMIT} template failed:\n{finished.stderr}")
    statements = json.loads(finished.stdout)
    assert isinstance(statements, list)
    return [str(sql) for sql in statements]


def audit_table(table: str) -> str:
    """The name of the old template's audit table for ``table``."""
    return table + SUFFIX
