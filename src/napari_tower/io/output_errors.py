"""Turn the operating system's write errors into one line that says what to do.

A label file or OME-Zarr is written under ``<name>.part`` and renamed when whole (``files.py``,
``omezarr.py``), so a failed write never leaves a finished-looking output; these messages say
which of the user's choices made it fail and how to go on.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path

from ..errors import OutputError


def prepare_folder(folder) -> Path:
    """Create the output folder (and its parents), or raise :class:`OutputError` saying why not."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise write_error(e, folder) from None
    if not folder.is_dir():  # mkdir(exist_ok=True) is silent when the folder exists; a file does not
        raise OutputError(f"{folder}: is a file, not a folder: choose another output folder")
    if not os.access(folder, os.W_OK):  # a read-only mount says so here even to root
        raise write_error(PermissionError(errno.EACCES, "Permission denied", str(folder)), folder)
    return folder


def _file_in_path(folder: Path) -> Path | None:
    for p in [folder, *folder.parents]:
        if p.exists():
            return p if not p.is_dir() else None
    return None


def write_error(e: OSError, target: Path, blocks_done: int | None = None) -> OutputError:
    """The :class:`OutputError` for ``e`` raised while writing ``target``.

    ``blocks_done``: for a block-wise output, how many blocks its ``.part`` keeps for ``--resume``.
    """
    target = Path(target)
    if target.name.endswith(".part"):  # name what the user asked for, not our temporary name
        target = target.with_name(target.name[: -len(".part")])
    code = e.errno
    if code in (errno.ENOTDIR, errno.EEXIST) or (code is None and isinstance(e, NotADirectoryError)):
        blocker = _file_in_path(target)
        where = f"{blocker} is a file, not a folder" if blocker is not None else "a file stands in the output path"
        return OutputError(f"{target}: cannot write here: {where}; choose another output folder")
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return OutputError(f"{target}: no permission to write here (a read-only folder or disk); "
                           "choose another output folder")
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        if blocks_done is not None:
            kept = f"{blocks_done} finished block{'s' if blocks_done != 1 else ''} kept in {target.name}.part"
            return OutputError(f"{target}: disk full while writing ({kept}); free some space, then run the same "
                               "command again with --resume to finish it")
        return OutputError(f"{target}: disk full while writing (nothing was left under this name); free some "
                           "space and run it again")
    return OutputError(f"{target}: cannot write: {e.strerror or e}")
