"""Importable listener modules, as in the 0.5.x releases."""
