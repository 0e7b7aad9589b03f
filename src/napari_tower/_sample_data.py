"""napari sample data: real nuclei images (2D and a 3D stack) and a whole-cell movie, with ground
truth (credited in data/README.md)."""
from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"


def sample_image():
    import tifffile

    return tifffile.imread(DATA / "nuclei_image.tif")


def sample_labels():
    import tifffile

    return tifffile.imread(DATA / "nuclei_labels.tif")


def nuclei_sample():
    return [
        (sample_image(), {"name": "nuclei"}, "image"),
        (sample_labels(), {"name": "nuclei ground truth", "visible": False}, "labels"),
    ]


def sample_stack():
    """The 60x256x256 confocal nuclei stack (ZYX, uint16)."""
    import tifffile

    return tifffile.imread(DATA / "nuclei3d_image.tif")


def sample_stack_labels():
    import tifffile

    return tifffile.imread(DATA / "nuclei3d_labels.tif")


def nuclei3d_sample():
    return [
        (sample_stack(), {"name": "nuclei 3D"}, "image"),
        (sample_stack_labels(), {"name": "nuclei 3D ground truth", "visible": False}, "labels"),
    ]


def cells_movie():
    """A 10-frame transmitted-light movie of a scratch assay (TYX, 10x210x576, uint16)."""
    import tifffile

    return tifffile.imread(DATA / "cells_movie.tif")


def cells_movie_labels():
    import tifffile

    return tifffile.imread(DATA / "cells_movie_labels.tif")


def cells_sample():
    return [
        (cells_movie(), {"name": "cells", "axis_labels": ("t", "y", "x")}, "image"),
        (cells_movie_labels(), {"name": "cells ground truth", "visible": False, "axis_labels": ("t", "y", "x")}, "labels"),
    ]
