"""Behaviour shared by the plugin's dock widgets: one-line error reports."""
from __future__ import annotations

from ..errors import Cancelled, TowerError


def error_message(exc: BaseException, cancelled: str) -> str:
    """What to tell the user about an exception raised in a worker."""
    if isinstance(exc, Cancelled):
        return cancelled
    if isinstance(exc, (TowerError, ValueError, MemoryError)):
        return str(exc) or type(exc).__name__
    return f"unexpected {type(exc).__name__}: {exc}"


class Reporting:
    """Mixin for widgets with a ``_status`` label: show a message there and as a napari warning."""

    last_error: str | None = None

    def _report(self, msg: str) -> None:
        self.last_error = msg
        self._status.value = msg
        try:
            from napari.utils.notifications import show_warning

            show_warning(f"TOWER: {msg}")
        except Exception:  # notifications are best effort (no viewer window in some tests)
            pass
