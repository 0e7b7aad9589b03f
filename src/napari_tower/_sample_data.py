"""napari sample data: a real nuclei image with its ground truth (credited in data/README.md)."""
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
