"""The ``audit`` engine plugin: ``create_engine(url, plugins=["audit"])`` or ``?plugin=audit``."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import CreateEnginePlugin
from sqlalchemy.engine.url import URL

from .listeners import enable


class AuditPlugin(CreateEnginePlugin):
    """Enables audit-table declaration when an engine is created with the plugin."""

    def __init__(self, url: URL, kwargs: dict[str, Any]) -> None:
        super().__init__(url, kwargs)
        enable()

    def update_url(self, url: URL) -> URL:
        return url.difference_update_query(["plugin"])
