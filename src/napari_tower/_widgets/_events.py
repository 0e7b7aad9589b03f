"""Signals shared between the plugin's widgets (e.g. a new model appears after training)."""
from psygnal import Signal


class _PluginEvents:
    models_changed = Signal()


plugin_events = _PluginEvents()


def on_models_changed(callback) -> None:
    """Connect ``callback``; it is dropped once its widget's Qt object has been deleted."""

    def guarded():
        try:
            callback()
        except RuntimeError:  # "wrapped C/C++ object ... has been deleted": widget closed
            plugin_events.models_changed.disconnect(guarded)

    plugin_events.models_changed.connect(guarded)
