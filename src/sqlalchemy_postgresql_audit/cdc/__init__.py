"""Change-data-capture mode: the trail written off the writer's transaction.

A table declared with ``mode="cdc"`` gets no audit trigger; its changes travel through a
publication and a logical slot (installed by ``install.publication``) to a ``Consumer``, which
writes the same typed audit rows: on another database through native logical replication whose
target runs the audit triggers (``.replica``), or in the source's own database through a
decoder (``.decoder``).
"""

from __future__ import annotations

from .attach import record_attached
from .consumer import Consumer, create_slot
from .errors import CdcError, SlotInUse
from .replica import install_capture

__all__ = [
    "CdcError",
    "Consumer",
    "SlotInUse",
    "create_slot",
    "install_capture",
    "record_attached",
]
