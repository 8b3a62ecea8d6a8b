"""``python -m sqlalchemy_postgresql_audit``: the command line."""

from .cli import main

raise SystemExit(main())
