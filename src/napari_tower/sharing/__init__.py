"""Sharing models: bioimage.io model packages (write) and model zips of either kind (read)."""
from .archive import unpack_model_zip
from .bioimageio import bioimageio_check, export_bioimageio, export_bioimageio_iter

__all__ = ["bioimageio_check", "export_bioimageio", "export_bioimageio_iter", "unpack_model_zip"]
