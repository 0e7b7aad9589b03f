"""Axes rules live in ``io/axes.py`` (readers need them, and io sits below predict); this
name stays so that code written against ``napari_tower.predict.axes`` keeps working."""
from ..io.axes import VALID, as_array, check_axes, guess_axes, leading_shape  # noqa: F401
