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


def quiet_if_gone(callback):
    """Wrap a worker's Qt callback: once the widget or viewer is closed its Qt objects are
    deleted, and touching them raises RuntimeError inside napari's event loop; drop it instead."""
    def call(*args):
        try:
            return callback(*args)
        except RuntimeError as e:
            if "deleted" not in str(e):  # only "wrapped C/C++ object ... has been deleted"
                raise
        return None

    return call


class GuardedRun:
    """Mixin for widgets that run one background job at a time on some of the viewer's layers.

    The job polls ``self._stop`` (a threading.Event). It is set when a layer the job uses is removed
    from the viewer or when the widget is closed (with its viewer), so the worker stops instead of
    writing into a viewer that is gone; ``_stop_reason`` says why, for the status line.
    """

    _busy = False
    _stop_reason: str | None = None
    _run_layers: tuple = ()

    def _connect_guards(self) -> None:
        self.viewer.layers.events.removed.connect(self._layer_removed)
        self.native.destroyed.connect(self._closed)

    def _begin(self, *layers) -> bool:
        """Mark a job as started on ``layers``; False (and a message) when one is already running."""
        if self._busy:
            self._report("already running: wait for it to finish, or press Cancel")
            return False
        self._busy = True
        self._stop_reason = None
        self._run_layers = tuple(layer for layer in layers if layer is not None)
        return True

    def _end(self) -> None:
        self._busy = False
        self._run_layers = ()

    def _layer_removed(self, event=None) -> None:
        layer = getattr(event, "value", None)
        if self._busy and any(layer is used for used in self._run_layers):
            self._stop_reason = f"layer '{layer.name}' was removed while in use: stopped"
            self._stop.set()
            try:
                self._status.value = self._stop_reason + "…"
            except RuntimeError:  # the widget is being deleted too
                pass

    def _closed(self, *args) -> None:
        self._stop_reason = "the window was closed: stopped"
        self._stop.set()

    def _layer_gone(self, layer) -> bool:
        return layer not in self.viewer.layers
