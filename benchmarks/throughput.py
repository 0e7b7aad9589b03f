"""Throughput: whole-process ratios against classical pipelines, Mpx/s and Mvox/s in process
(network and post-processing apart), inference backends, and block-wise runs on 1 or 2 workers.

    python -m benchmarks.throughput ratios   [--data DSB2018] [--repeats 3]
    python -m benchmarks.throughput inprocess [--data DSB2018] [--device cpu|cuda|all]
    python -m benchmarks.throughput backends
    python -m benchmarks.throughput blocks   [--workers 1,2]

Each writes its JSON under docs/results/ (``--out`` to change) and prints a Markdown table.
``ratios`` runs every command as a fresh process (imports and model loading included),
alternating TOWER and classical, ``--repeats`` times, and reports medians and the highest
peak RSS. ``inprocess`` and ``backends`` run CUDA too when torch sees a GPU (``--device
all``); ONNX Runtime runs on the CPU only. The classical side runs as
``python -m benchmarks.throughput classical [--3d] FILES -o OUT``, which imports no torch.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SAMPLE_3D = REPO / "src" / "napari_tower" / "data" / "nuclei3d_image.tif"
LABELS_3D = REPO / "src" / "napari_tower" / "data" / "nuclei3d_labels.tif"
RESULTS = REPO / "docs" / "results"
DEFAULT_DSB = REPO.parent / "shared" / "data" / "dsb2018"


# --- the classical side (its own process: numpy, scipy, scikit-image, tifffile) ---------------


def classical_segment_3d(vol: np.ndarray, sigma: float = 2.0, min_distance: int = 15, min_size: int = 64) -> np.ndarray:
    """Gaussian + Otsu + distance-transform watershed in 3D (isotropic voxels), like the 2D baseline.

    sigma and min_distance: the best AP@0.5 of four tries on the cells3d stack (1 or 2, 10 or 15;
    0.655 at 2 and 15, 0.07 at the 2D baseline's 1 and 5), so the baseline is at its best here."""
    from scipy import ndimage as ndi
    from skimage.filters import threshold_otsu

    from napari_tower.io.normalize import percentile_normalize

    from .baselines import distance_watershed

    x = ndi.gaussian_filter(percentile_normalize(vol), sigma)
    return distance_watershed(x > threshold_otsu(x), min_distance, min_size)


def classical_main(files: list[str], out: str, three_d: bool) -> int:
    """Read, segment and write each file, as a user's classical script would (one process)."""
    import tifffile

    from .baselines import classical_segment

    Path(out).mkdir(parents=True, exist_ok=True)
    for f in files:
        p = Path(f)
        if p.suffix.lower() in (".tif", ".tiff"):
            img = tifffile.imread(p)
        else:
            from skimage.io import imread

            img = imread(p)
        lab = classical_segment_3d(img) if three_d else classical_segment(img)
        tifffile.imwrite(Path(out) / f"{p.stem}.tif", lab.astype(np.uint16 if lab.max() < 65536 else np.uint32),
                         compression="zlib")
    return 0


# --- inputs ------------------------------------------------------------------------------------


def small_fluorescence(root: Path, n: int = 40) -> list[Path]:
    """The first ``n`` dsb2018 fluorescence images by id (PNG, 256x256 to 520x696)."""
    from napari_tower.train.data import dsb_index

    rows = sorted((r for r in dsb_index(root) if r["modality"] == "fluorescence"), key=lambda r: r["id"])[:n]
    return [root / "images" / f"{r['id']}.png" for r in rows]


def mosaic_2048(root: Path, folder: Path) -> Path:
    from .segmentation import make_test_images

    return make_test_images(root, folder, with_stack=False)["2048x2048"]


def cli() -> list[str]:
    from .common import cli_command

    return cli_command()


# --- ratios: whole processes, alternating ------------------------------------------------------


def ratios(args) -> dict:
    from .common import run_measured

    root = Path(args.data)
    res: dict = {"repeats": args.repeats, "backend": os.environ.get("NAPARI_TOWER_BACKEND", "auto"), "cases": {}}
    with tempfile.TemporaryDirectory(prefix="tower-throughput-") as tmp:
        tmp = Path(tmp)
        small = small_fluorescence(root)
        folder = tmp / "small"
        folder.mkdir()
        for p in small:
            os.symlink(p, folder / p.name)
        cases = {
            "2048x2048 fluorescence mosaic": ([str(mosaic_2048(root, tmp))], False, 2048 * 2048),
            f"{len(small)} small dsb2018 fluorescence PNGs": ([str(folder)], False, None),
            "cells3d confocal 60x256x256, 3D": ([str(SAMPLE_3D)], True, 60 * 256 * 256),
        }
        for name, (inputs, three_d, size) in cases.items():
            if args.only and args.only not in name:
                continue
            files = sorted(str(p) for p in folder.iterdir()) if Path(inputs[0]).is_dir() else inputs
            if size is None:
                import imageio.v3 as iio

                size = sum(int(np.prod(iio.improps(f).shape[:2])) for f in files)
            tower = cli() + ["segment", *inputs, "-o", str(tmp / "out_tower"), "--device", args.device]
            classical = [sys.executable, "-m", "benchmarks.throughput", "classical", *(["--3d"] if three_d else []),
                         *files, "-o", str(tmp / "out_classical")]
            sides = [("tower", tower), ("classical", classical)]
            if args.before:  # the same command on an earlier source tree, e.g. git archive REV src | tar -x -C DIR
                before = [str(tmp / "out_before") if a == str(tmp / "out_tower") else a for a in tower]
                sides.append(("before", ["env", f"PYTHONPATH={Path(args.before).resolve()}", *before]))
            runs = {side: [] for side, _ in sides}
            for _ in range(args.repeats):
                for side, cmd in sides:
                    r = run_measured(cmd, cwd=REPO)
                    runs[side].append({"wall": r["wall"], "rss_mib": r["rss_mib"]})
                    print(f"  {name}: {side} {r['wall']:.2f} s, {r['rss_mib']:.0f} MiB", file=sys.stderr, flush=True)
            med = {k: float(np.median([r["wall"] for r in v])) for k, v in runs.items()}
            entry = {"inputs": len(files), "pixels": size, "runs": runs, "median_s": med,
                     "peak_rss_mib": {k: max(r["rss_mib"] for r in v) for k, v in runs.items()},
                     "ratio": med["tower"] / med["classical"],
                     "ratio_before": med["before"] / med["classical"] if "before" in med else None,
                     "tower_mpx_per_s": size / 1e6 / med["tower"]}
            entry["accuracy"] = _accuracy(name, tmp, files)
            entry["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
            entry["load_after"] = list(os.getloadavg())  # the 1-minute value is this case's own
            res["cases"][name] = entry
    res["commands"] = {"tower": "napari-tower segment INPUTS -o OUT --device " + args.device,
                       "classical": "python -m benchmarks.throughput classical [--3d] FILES -o OUT"}
    return res


def _accuracy(name: str, tmp: Path, files: list[str]) -> dict | None:
    """AP@0.5 of both sides' last outputs where ground truth is at hand (the 3D sample)."""
    if "3D" not in name:
        return None
    import tifffile

    from napari_tower.metrics import average_precision

    truth = tifffile.imread(LABELS_3D)
    stem = Path(files[0]).stem
    return {side: float(average_precision(tifffile.imread(tmp / f"out_{side}" / f"{stem}.tif"), truth))
            for side in ("tower", "classical")}


# --- in process: network and post-processing apart ---------------------------------------------


class _Timed:
    """Wraps a backend and adds up the seconds spent in the network (synchronised on CUDA)."""

    def __init__(self, backend):
        self.inner, self.name, self.seconds = backend, backend.name, 0.0

    def maps(self, planes, precision="auto"):
        t0 = time.perf_counter()
        out = self.inner.maps(planes, precision)  # returns numpy: the device has finished
        self.seconds += time.perf_counter() - t0
        return out


def _inprocess_case(model, images: list[tuple[np.ndarray, str | None]]) -> dict:
    """Seconds for ``images`` ((array, axes) as ``read_image`` gives them), the network's apart."""
    from napari_tower.predict.segment import segment_iter
    from napari_tower.predict.tower_model import predict_config
    from napari_tower.progress import run_to_end

    timed = _Timed(model.backend)
    model.backend = timed
    try:
        img, axes = images[0]
        warm = img[:8, :64, :64] if axes == "ZYX" else img[:64, :64]
        run_to_end(segment_iter(model, warm, axes, predict_config(model)))  # warm-up: first-call allocations
        timed.seconds = 0.0
        t0 = time.perf_counter()
        for img, axes in images:
            run_to_end(segment_iter(model, img, axes, predict_config(model)))
        total = time.perf_counter() - t0
    finally:
        model.backend = timed.inner
    px = sum(int(np.prod(i.shape[:3] if a == "ZYX" else i.shape[:2])) for i, a in images)
    return {"pixels": px, "total_s": total, "network_s": timed.seconds, "rest_s": total - timed.seconds,
            "mpx_per_s": px / 1e6 / total, "network_mpx_per_s": px / 1e6 / timed.seconds}


def inprocess(args) -> dict:
    import tifffile

    from napari_tower.io.files import read_image
    from napari_tower.predict.tower_model import load_model

    root = Path(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        mosaic = tifffile.imread(mosaic_2048(root, Path(tmp)))
    small = [read_image(p) for p in small_fluorescence(root)]
    vol = tifffile.imread(SAMPLE_3D)
    setups = [("cpu", "torch"), ("cpu", "onnx")]
    if args.device in ("cuda", "all"):
        import torch

        if torch.cuda.is_available():
            setups.append(("cuda", "torch"))
    if args.device == "cuda":
        setups = [s for s in setups if s[0] == "cuda"]
    res: dict = {"setups": {}}
    for device, backend in setups:
        os.environ["NAPARI_TOWER_BACKEND"] = backend
        t0 = time.perf_counter()
        fluo, general = load_model("nuclei-fluo", device), load_model("default", device)
        key = f"{device}/{fluo.backend.name}"
        res["setups"][key] = {"load_two_models_s": time.perf_counter() - t0, "cases": {
            "2048x2048 (nuclei-fluo)": _inprocess_case(fluo, [(mosaic, "YX")]),
            f"{len(small)} small PNGs (nuclei-fluo)": _inprocess_case(fluo, small),
            "60x256x256 3D (default)": _inprocess_case(general, [(vol, "ZYX")]),
        }}
        print(json.dumps({key: res["setups"][key]}, indent=1), file=sys.stderr, flush=True)
    os.environ.pop("NAPARI_TOWER_BACKEND", None)
    return res


# --- inference options on one network ---------------------------------------------------------


def backends(args) -> dict:
    """Seconds per megapixel of the nuclei-fluo network: torch settings, int8, ONNX Runtime."""
    import torch

    from napari_tower.model.backends import OnnxBackend, TorchBackend, export_onnx
    from napari_tower.model.network import fold_batchnorm
    from napari_tower.model.weights import load_network, resolve_model_dir

    net, _ = load_network(resolve_model_dir("nuclei-fluo"))
    net = fold_batchnorm(net)
    inputs = {"1024x1024 tile": np.random.default_rng(0).random((1, 1024, 1024), dtype=np.float32),
              "64 XZ planes 64x256": np.random.default_rng(1).random((64, 64, 256), dtype=np.float32)}
    ref = {k: TorchBackend(net, torch.device("cpu")).maps(v, "fp32") for k, v in inputs.items()}
    options = {}
    options["torch, contiguous"] = lambda: _PlainTorch(net)
    options["torch, channels_last (reference)"] = lambda: TorchBackend(net.to(memory_format=torch.channels_last), "cpu")
    options["torch, channels_last, 1 thread"] = lambda: _Threads(TorchBackend(net, "cpu"), 1)
    options["torch.compile"] = lambda: TorchBackend(torch.compile(net), "cpu")
    options["torch dynamic int8 (Linear layers only: none here)"] = lambda: TorchBackend(
        torch.ao.quantization.quantize_dynamic(net, {torch.nn.Linear}, dtype=torch.qint8), "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        onnx = export_onnx(net, Path(tmp) / "net.onnx", 32)
        options["onnxruntime fp32"] = lambda: OnnxBackend(onnx)

        def int8():
            from onnxruntime.quantization import QuantType, quantize_dynamic

            q = Path(tmp) / "net_int8.onnx"
            quantize_dynamic(str(onnx), str(q), weight_type=QuantType.QUInt8)
            return OnnxBackend(q)

        options["onnxruntime dynamic int8"] = int8
        res = {}
        for name, make in options.items():
            t0 = time.perf_counter()
            try:
                be = make()
                entry = {}
                for k, x in inputs.items():
                    out = be.maps(x, "fp32")  # first call: compilation, allocation
                    first = time.perf_counter() - t0
                    ts = []
                    for _ in range(3):
                        t1 = time.perf_counter()
                        be.maps(x, "fp32")
                        ts.append(time.perf_counter() - t1)
                    entry[k] = {"s_per_mpx": float(np.median(ts)) / (x.size / 1e6), "first_call_s": first,
                                "max_abs_diff": float(np.abs(out - ref[k]).max())}
                    t0 = time.perf_counter()
                res[name] = entry
            except Exception as e:  # noqa: BLE001 (an option that does not run here is a result too)
                res[name] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
            print(name, json.dumps(res[name]), file=sys.stderr, flush=True)
    return {"threads": torch.get_num_threads(), "options": res}


class _PlainTorch:
    name = "torch"

    def __init__(self, net):
        import torch

        self.net = net.to(memory_format=torch.contiguous_format)

    def maps(self, planes, precision="auto"):
        import torch

        from napari_tower.model.arch import FLOW_SCALE

        with torch.inference_mode():
            logits = self.net(torch.from_numpy(planes)[:, None])
            return torch.cat([torch.sigmoid(logits[:, :3]), logits[:, 3:] / FLOW_SCALE], 1).numpy()


class _Threads:
    def __init__(self, inner, n):
        self.inner, self.n, self.name = inner, n, inner.name

    def maps(self, planes, precision="auto"):
        import torch

        old = torch.get_num_threads()
        torch.set_num_threads(self.n)
        try:
            return self.inner.maps(planes, precision)
        finally:
            torch.set_num_threads(old)


# --- block by block, one process or a local cluster -------------------------------------------


def blocks(args) -> dict:
    import tifffile

    from .common import run_measured

    vol = tifffile.imread(SAMPLE_3D)
    big = np.concatenate([vol, vol[:, :, ::-1]], axis=2)  # 60x256x512, mirrored: no seam artefacts
    if args.grid == 2:
        big = np.concatenate([big, big[:, ::-1]], axis=1)  # 60x512x512
    res: dict = {"shape": list(big.shape), "runs": {}}
    with tempfile.TemporaryDirectory(prefix="tower-blocks-") as tmp:
        src = Path(tmp) / "stack.tif"
        tifffile.imwrite(src, big, metadata={"axes": "ZYX"})
        variants = {"one process": []}
        for w in (int(v) for v in args.workers.split(",") if v):
            variants[f"local cluster, {w} worker(s)"] = ["--workers", str(w)]
        extra = ["--block-size", args.block_size] if args.block_size else []
        for name, flags in variants.items():
            out = Path(tmp) / f"out{len(res['runs'])}"
            r = run_measured(cli() + ["segment", str(src), "-o", str(out), "--output-format", "zarr",
                                      "--device", args.device, *extra, *flags], cwd=REPO)
            res["runs"][name] = {"wall_s": r["wall"], "rss_mib": r["rss_mib"], "mvox_per_s": big.size / 1e6 / r["wall"]}
            print(name, res["runs"][name], file=sys.stderr, flush=True)
    res["block_size"] = args.block_size or "default"
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    for name in ("ratios", "inprocess", "backends", "blocks"):
        p = sub.add_parser(name)
        p.add_argument("--data", default=str(DEFAULT_DSB))
        p.add_argument("--device", default="cpu")
        p.add_argument("--out", type=Path, default=None)
        if name == "ratios":
            p.add_argument("--repeats", type=int, default=3)
            p.add_argument("--only", default=None, help="run the cases whose name holds this text")
            p.add_argument("--before", default=None, metavar="SRC", help="also time the CLI on this earlier "
                           "napari_tower source tree (its 'src' folder), alternating with the others")
        if name == "blocks":
            p.add_argument("--workers", default="1,2")
            p.add_argument("--block-size", default=None)
            p.add_argument("--grid", type=int, choices=(1, 2), default=1, help="copies of the stack along Y (X: 2)")
    c = sub.add_parser("classical")
    c.add_argument("--3d", dest="three_d", action="store_true")
    c.add_argument("files", nargs="+")
    c.add_argument("-o", "--output", required=True)
    args = ap.parse_args(argv)
    if args.what == "classical":
        return classical_main(args.files, args.output, args.three_d)
    res = {"ratios": ratios, "inprocess": inprocess, "backends": backends, "blocks": blocks}[args.what](args)
    from .common import machine

    res["machine"] = machine()
    res["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    out = args.out or RESULTS / f"throughput_{args.what}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    if getattr(args, "only", None) and out.is_file():  # one case rerun: the others' results stay
        old = json.loads(out.read_text())
        res["cases"] = {**old.get("cases", {}), **res["cases"]}
    out.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
