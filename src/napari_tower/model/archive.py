"""Read a shared model zip: napari-tower's own (``NAME/weights.safetensors`` + ``NAME/card.json``)
or a bioimage.io package napari-tower exported (the same two files attached to it).

Only those two files are ever taken out of a zip, and weights are read with safetensors
alone: a package's pickled state dict and TorchScript file are never loaded here.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from ..errors import ModelError

WEIGHTS, CARD = "weights.safetensors", "card.json"
RDF_NAMES = ("rdf.yaml", "bioimageio.yaml")
SUPPORTED = ("napari-tower loads model names, model folders, napari-tower model zips (Export model) and "
             "bioimage.io packages exported by napari-tower (napari-tower export --format bioimageio)")


def _safe(member: str) -> bool:
    return not (member.startswith("/") or ".." in Path(member).parts)


def _members(zf: zipfile.ZipFile, zip_path: Path) -> tuple[str, str, str]:
    """(weights member, card member, suggested name) of a zip, or one clear ModelError."""
    names = zf.namelist()
    rdfs = [n for n in names if Path(n).name in RDF_NAMES and n.count("/") <= 1]
    if rdfs:
        import yaml

        rdf_name = min(rdfs, key=len)
        try:
            rdf = yaml.safe_load(zf.read(rdf_name))
        except yaml.YAMLError as e:
            raise ModelError(f"{zip_path}: cannot read {rdf_name}: {e}") from None
        cfg = (rdf.get("config") or {}).get("napari_tower") if isinstance(rdf, dict) else None
        if not isinstance(cfg, dict):
            what = rdf.get("name", "unnamed") if isinstance(rdf, dict) else "unnamed"
            raise ModelError(f"{zip_path} is a bioimage.io package from another tool ({what!r}); {SUPPORTED}. "
                             "Run other bioimage.io models with a bioimage.io consumer (bioimageio.core, deepImageJ)")
        base = rdf_name[: -len(Path(rdf_name).name)]
        w, c = base + str(cfg.get("weights", WEIGHTS)), base + str(cfg.get("card", CARD))
        if w not in names or c not in names:
            raise ModelError(f"{zip_path}: the napari-tower package lacks its {WEIGHTS} or {CARD} attachment")
        return w, c, str(cfg.get("model_name") or zip_path.stem)
    ws = [n for n in names if Path(n).name == WEIGHTS]
    cs = [n for n in names if Path(n).name == CARD]
    if len(ws) == 1 and len(cs) == 1 and Path(ws[0]).parent == Path(cs[0]).parent:
        return ws[0], cs[0], Path(ws[0]).parent.name or zip_path.stem
    raise ModelError(f"{zip_path} is not a napari-tower model zip nor a bioimage.io package; {SUPPORTED}")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def unpack_model_zip(zip_path: str | os.PathLike, cache: str | os.PathLike) -> tuple[Path, str]:
    """Unpack a model zip's weights and card into ``cache/<zip sha256>/``; return (folder, name).

    The folder is reused when the same zip is opened again; the caller loads it as any
    model folder (its weights are checked against the card's sha256 there).
    """
    zip_path = Path(zip_path)
    if not zip_path.is_file():
        raise ModelError(f"{zip_path}: no such file")
    dest = Path(cache) / _sha256(zip_path)[:24]
    try:
        with zipfile.ZipFile(zip_path) as zf:
            w, c, name = _members(zf, zip_path)
            if not (_safe(w) and _safe(c)):
                raise ModelError(f"{zip_path}: unsafe file names inside the zip")
            if (dest / WEIGHTS).is_file() and (dest / CARD).is_file():
                return dest, name
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=dest.parent))
            try:
                with zf.open(w) as src, open(tmp / WEIGHTS, "wb") as out:
                    shutil.copyfileobj(src, out)
                (tmp / CARD).write_bytes(zf.read(c))
                try:
                    os.replace(tmp, dest)
                except OSError:  # another process unpacked the same zip meanwhile
                    if not (dest / WEIGHTS).is_file():
                        raise
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    except zipfile.BadZipFile:
        raise ModelError(f"{zip_path} is not a valid zip file") from None
    return dest, name
