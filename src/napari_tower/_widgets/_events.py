"""Signals shared between the plugin's widgets (e.g. a new model appears after training)."""
from psygnal import Signal


class _PluginEvents:
    models_changed = Signal()


plugin_events = _PluginEvents()
