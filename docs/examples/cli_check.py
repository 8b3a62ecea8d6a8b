"""The command line against a real database: install, check (exit codes), ddl, uninstall."""

import json
import os
import subprocess
import sys

import sqlalchemy as sa
from shop_models import metadata


def cli(*arguments: str) -> subprocess.CompletedProcess[str]:
    # --8<-- [start:run]
    return subprocess.run(
        [sys.executable, "-m", "sqlalchemy_postgresql_audit", *arguments],
        capture_output=True, text=True, check=False,
    )  # --url defaults to $DATABASE_URL
    # --8<-- [end:run]


# --8<-- [start:check]
metadata.create_all(sa.create_engine(os.environ["DATABASE_URL"]))  # tables, audit tables, triggers
clean = cli("check", "shop_models:metadata")
assert clean.returncode == 0, clean.stdout + clean.stderr

cli("uninstall", "shop_models:metadata")  # drops function and triggers, keeps the history
drift = cli("check", "--json", "shop_models:metadata")
assert drift.returncode == 1  # 1: drift, for CI
report = json.loads(drift.stdout)
print(report["summary"], report["tables"][0]["details"])
# {'missing': 1} ['no audit function or triggers']
# --8<-- [end:check]
assert report["in_sync"] is False and report["summary"] == {"missing": 1}
assert report["tables"][0]["details"] == ["no audit function or triggers"]

# --8<-- [start:install]
installed = cli("install", "shop_models:metadata")
assert installed.returncode == 0, installed.stderr
assert cli("check", "shop_models:metadata").returncode == 0
script = cli("ddl", "--no-tables", "shop_models:metadata").stdout
assert "CREATE OR REPLACE FUNCTION" in script and "CREATE TABLE" not in script
# --8<-- [end:install]

usage = cli("check")  # no MODULE:METADATA
assert usage.returncode == 2, usage
missing = cli("check", "no_such_module:metadata")
assert missing.returncode == 2 and "no_such_module" in missing.stderr + missing.stdout, missing
