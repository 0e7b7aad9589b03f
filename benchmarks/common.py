"""Helpers every benchmark shares: logging, the machine's description, fresh-process timing with
the process's own peak memory, number formatting, and writing a section into a docs page.

Each benchmark module is a command (``python -m benchmarks.NAME --help``); this one is not.
"""
from __future__ import annotations

import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
MODALITIES = ("fluorescence", "histology", "brightfield")
DOCS = REPO / "docs" / "benchmarks"  # one page per topic; raw results under docs/results/
RESULTS = REPO / "docs" / "results"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# Linux carries the forking process's peak RSS into the child's ru_maxrss across exec,
# so a child forked straight from this (large) process would report at least our own
# peak. A tiny launcher process (a bare interpreter, ~10 MiB) spawns the command instead
# and reports the command's own wait4 rusage and wall time.
_LAUNCHER = r"""
import json, os, sys, time
out, cmd = sys.argv[1], sys.argv[2:]
t0 = time.perf_counter()
pid = os.posix_spawnp(cmd[0], cmd, os.environ)
_, status, ru = os.wait4(pid, 0)
wall = time.perf_counter() - t0
with open(out, "w") as f:
    json.dump({"wall": wall, "maxrss": ru.ru_maxrss, "returncode": os.waitstatus_to_exitcode(status)}, f)
"""


def run_measured(cmd: list[str], cwd: Path | None = None) -> dict:
    """Run ``cmd`` as a fresh process; its wall seconds, its own peak RSS (MiB), stdout, stderr."""
    with tempfile.TemporaryDirectory(prefix="tower-measure-") as tmp:
        result = Path(tmp) / "result.json"
        out, err = Path(tmp) / "stdout", Path(tmp) / "stderr"
        with open(out, "wb") as fo, open(err, "wb") as fe:
            subprocess.run([sys.executable, "-I", "-S", "-c", _LAUNCHER, str(result)] + cmd,
                           stdout=fo, stderr=fe, cwd=cwd, check=False)
        stdout, stderr = out.read_text(errors="replace"), err.read_text(errors="replace")
        if not result.is_file():
            raise RuntimeError(f"launcher failed for: {shlex.join(cmd)}\n{stderr[-3000:]}")
        r = json.loads(result.read_text())
    if r["returncode"] != 0:
        raise RuntimeError(f"command failed ({r['returncode']}): {shlex.join(cmd)}\n{stderr[-3000:]}")
    # ru_maxrss: kilobytes on Linux, bytes on macOS
    rss_mib = r["maxrss"] / (1024 * 1024 if sys.platform == "darwin" else 1024)
    return {"wall": r["wall"], "rss_mib": rss_mib, "stdout": stdout, "stderr": stderr}


def cli_command() -> list[str]:
    exe = Path(sys.executable).parent / "napari-tower"
    if exe.is_file():
        return [str(exe)]
    found = shutil.which("napari-tower")
    return [found] if found else [sys.executable, "-m", "napari_tower.cli"]


def best_of(cmd: list[str], repeats: int, cwd: Path | None = None) -> tuple[dict, list[dict]]:
    runs = [run_measured(cmd, cwd) for _ in range(repeats)]
    return min(runs, key=lambda r: r["wall"]), runs


def machine() -> dict:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) / 1024**2
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    import napari_tower

    return {
        "cpu": cpu, "logical_cpus": os.cpu_count(), "usable_cpus": usable, "mem_gib": mem, "load": load,
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
        "napari_tower": napari_tower.__version__, "os": f"{platform.system()} {platform.release()}",
    }


def _f(x, fmt=".3f"):
    return "n/a" if x is None or (isinstance(x, float) and np.isnan(x)) else format(x, fmt)


def write_section(path: Path, section: str, start: str, end: str) -> None:
    """Replace the block between the markers ``start`` and ``end`` in ``path`` (or append it)."""
    block = f"{start}\n{section}{end}\n"
    text = path.read_text() if path.is_file() else ""
    if start in text and end in text and text.index(start) < text.index(end):
        a, b = text.index(start), text.index(end) + len(end)
        rest = text[b:]
        text = text[:a] + block.rstrip("\n") + (rest if rest.startswith("\n") else "\n" + rest)
    else:
        text = (text.rstrip("\n") + "\n\n" if text.strip() else "") + block
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
