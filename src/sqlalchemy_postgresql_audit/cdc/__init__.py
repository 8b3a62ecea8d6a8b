"""Change-data-capture mode: the trail written off the writer's transaction.

A table declared with ``mode="cdc"`` gets no audit trigger; its changes travel through a
publication and a logical slot (``.publication``) to a ``Consumer``, which writes the same
typed audit rows: on another server through native logical replication whose target runs the
audit triggers (``.replica``), or on the same server through a decoder (``.decoder``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .consumer import Consumer, create_slot

__all__ = ["Consumer", "create_slot"]


def __getattr__(name: str) -> Any:
    # Lazy: the install layer imports ``.publication`` and must not import the consumer.
    if name in __all__:
        from . import consumer

        return getattr(consumer, name)
    raise AttributeError(name)
