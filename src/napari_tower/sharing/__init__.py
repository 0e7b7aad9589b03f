"""Sharing models: bioimage.io model packages (write) and model zips of either kind (read)."""
from ..model.archive import unpack_model_zip  # reading zips is the model layer's; sharing writes them
from .bioimageio import bioimageio_check, export_bioimageio, export_bioimageio_iter

__all__ = ["bioimageio_check", "export_bioimageio", "export_bioimageio_iter", "unpack_model_zip"]
