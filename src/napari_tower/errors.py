"""Errors the user can act on. Their message is shown as one line by the CLI and widget."""


class TowerError(Exception):
    """Base class for napari-tower's own errors."""


class InputError(TowerError, ValueError):
    """The image, labels or arguments given cannot be used as they are."""


class ModelError(TowerError):
    """A model could not be found, read or verified."""


class Cancelled(TowerError):
    """A long operation was stopped on request."""


class OutputError(TowerError):
    """The output cannot be written (a file in the folder's path, no permission, a full disk)."""


class FitWarning(UserWarning):
    """The image does not look like what the model knows: its result is not to be trusted as it is."""
