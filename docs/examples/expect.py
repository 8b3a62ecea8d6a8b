"""``raises(kind, call)``: the examples' one-line way to show that something is refused."""

from collections.abc import Callable
from typing import Any, TypeVar

E = TypeVar("E", bound=BaseException)


def raises(kind: type[E], call: Callable[[], Any]) -> E:
    """Run ``call``; return the ``kind`` exception it raised, or fail if it raised none."""
    try:
        call()
    except kind as error:
        return error
    raise AssertionError(f"{call} did not raise {kind.__name__}")
