"""Importing this module enables the Table listeners (the 0.5.x contract)."""

from ..listeners import enable

enable()
