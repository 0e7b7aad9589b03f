"""Segmentation benchmark: accuracy on the dsb2018 validation split, CPU speed and memory.

Run from the repository root::

    python -m benchmarks.segmentation --data ../shared/data/dsb2018 [--model default] \
        [--polyp ../shared/data/polyp_nuclei] [--out docs/benchmarks] [--quick]

Accuracy
    Every image of the fixed validation split (``napari_tower.train.data.dsb_split``, the
    same split the bundled models were validated on), per modality: mean foreground Dice
    and mean AP@0.5 (``napari_tower.metrics``) for the TOWER model (loaded once, run with
    ``napari_tower.segment``, card post-processing defaults) and for the classical
    baseline (``benchmarks.baselines.classical_segment``). The same for the fixed validation
    tiles of polyp_nuclei (``napari_tower.train.data.polyp_split``: 4 of 24 whole tiles, one
    per acquisition, held out from training), when that folder exists. For TOWER, where the
    missed objects of AP@0.5 come from: merges, splits, misses (``benchmarks.failures``).

Speed and memory (CPU)
    Each measurement is a fresh process, started by a tiny launcher interpreter (so
    that this process's own memory is not inherited into the child's ``ru_maxrss``);
    its peak RSS is read from ``os.wait4``, so the numbers belong to that process alone.
    (i) ``napari-tower segment IMG -o OUT --device cpu`` as a whole process (start-up,
    imports, model load, read, segment, write) on a 512x512 image, a 2048x2048 image and a
    32x512x512 stack; (ii) the classical baseline on the same 2048x2048 image, timing the
    function call alone and the whole process (``python -m benchmarks.baselines``).
    Test images are built at run time in a temporary folder from real dsb2018
    fluorescence images (512x512 centre crops; the 2048x2048 image is a 4x4 mosaic of 16
    crops, the stack 32 different crops) and deleted afterwards. Every timing is run
    ``--repeats`` times (default 2) and the best is reported.

The markdown goes to stdout and, with ``--out``, into the docs: given the folder
``docs/benchmarks``, accuracy into ``2d.md`` (between ``<!-- segmentation-benchmark:start -->``
and ``<!-- segmentation-benchmark:end -->``) and speed into ``speed.md`` (between
``<!-- segmentation-speed:start/end -->``), each replaced if present, appended otherwise; given
a file, everything into that file.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import re
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .common import MODALITIES, REPO, _f, best_of, cli_command, log, machine, run_measured  # noqa: F401 (shared)
from .common import write_section as _write_section

START = "<!-- segmentation-benchmark:start -->"
END = "<!-- segmentation-benchmark:end -->"


# --- accuracy --------------------------------------------------------------------------


def _read(root: Path, row: dict) -> tuple[np.ndarray, np.ndarray]:
    from napari_tower.train.data import read_dsb

    img, lab = read_dsb(root, row)
    if img.ndim == 3 and img.shape[-1] == 4:
        img = img[..., :3]
    return img, lab


def accuracy(root: Path, model, per_modality: int | None) -> dict:
    """{modality: {"n", "tower": {"dice", "ap50"}, "classical": {...}, "failures"}}, plus "all"."""
    from napari_tower.train.data import dsb_index, dsb_split

    _, val = dsb_split(dsb_index(root))
    return _score(root, model, {m: [r for r in val if r["modality"] == m][:per_modality] for m in MODALITIES}, _read)


def polyp_accuracy(root: Path, model) -> dict:
    """The same scores on the fixed polyp_nuclei validation tiles (uint16, dense tissue)."""
    from napari_tower.train.data import POLYP_GROUP, dsb_index, polyp_split, read_polyp

    _, val = polyp_split(dsb_index(root))
    return _score(root, model, {POLYP_GROUP: val}, read_polyp)


def _score(root: Path, model, groups: dict[str, list[dict]], read) -> dict:
    import napari_tower
    from napari_tower.metrics import average_precision, dice

    from .baselines import classical_segment
    from .failures import failure_breakdown, summarise

    names = tuple(groups)
    scores = {
        m: {"tower": {"dice": [], "ap50": []}, "classical": {"dice": [], "ap50": []},
            "seconds": {"tower": 0.0, "classical": 0.0}, "failures": []}
        for m in names
    }
    for modality, rows in groups.items():
        for i, row in enumerate(rows, 1):
            img, true = read(root, row)
            t0 = time.perf_counter()
            axes = "YXC" if img.ndim == 3 else "YX"
            pred_t = napari_tower.segment(img, model=model(img, axes) if callable(model) else model, axes=axes)
            t1 = time.perf_counter()
            pred_c = classical_segment(img)
            t2 = time.perf_counter()
            s = scores[modality]
            s["seconds"]["tower"] += t1 - t0
            s["seconds"]["classical"] += t2 - t1
            for name, pred in (("tower", pred_t), ("classical", pred_c)):
                s[name]["dice"].append(dice(pred, true))
                s[name]["ap50"].append(average_precision(pred, true, 0.5))
            s["failures"].append(failure_breakdown(pred_t, true))
            log(f"  accuracy {modality} {i}/{len(rows)} {row['id']}: "
                f"TOWER AP50 {s['tower']['ap50'][-1]:.3f}, classical AP50 {s['classical']['ap50'][-1]:.3f}")
    out = {}
    for m in names + (("all",) if len(names) > 1 else ()):
        src = [scores[k] for k in names] if m == "all" else [scores[m]]
        n = sum(len(s["tower"]["dice"]) for s in src)
        entry = {"n": n}
        for name in ("tower", "classical"):
            entry[name] = {
                k: (float(np.mean([v for s in src for v in s[name][k]])) if n else float("nan"))
                for k in ("dice", "ap50")
            }
            entry[name]["seconds_per_image"] = sum(s["seconds"][name] for s in src) / n if n else float("nan")
        entry["failures"] = summarise([b for s in src for b in s["failures"]])
        out[m] = entry
    return out


# --- test images for timing --------------------------------------------------------------


def _gray_u8(img: np.ndarray) -> np.ndarray:
    if img.ndim == 3:
        img = img[..., :3].mean(axis=-1)
    return np.asarray(img).astype(np.uint8)


def real_crops(root: Path, n: int, size: int = 512) -> list[np.ndarray]:
    """``n`` centre crops (size x size) of different real fluorescence images, sorted by id."""
    from skimage.io import imread

    from napari_tower.train.data import dsb_index

    rows = [r for r in dsb_index(root)
            if r["modality"] == "fluorescence" and int(r["height"]) >= size and int(r["width"]) >= size]
    rows.sort(key=lambda r: r["id"])
    if len(rows) < n:
        raise RuntimeError(f"need {n} fluorescence images of at least {size}x{size} in {root}, found {len(rows)}")
    crops = []
    for r in rows[:n]:
        img = _gray_u8(imread(root / "images" / f"{r['id']}.png"))
        y0, x0 = (img.shape[0] - size) // 2, (img.shape[1] - size) // 2
        crops.append(np.ascontiguousarray(img[y0 : y0 + size, x0 : x0 + size]))
    return crops


def make_test_images(root: Path, folder: Path, with_stack: bool) -> dict[str, Path]:
    import tifffile

    crops = real_crops(root, 32 if with_stack else 16)
    paths = {}
    paths["512x512"] = folder / "img_512.tif"
    tifffile.imwrite(paths["512x512"], crops[0])
    mosaic = np.block([[crops[4 * r + c] for c in range(4)] for r in range(4)])
    assert mosaic.shape == (2048, 2048)
    paths["2048x2048"] = folder / "img_2048.tif"
    tifffile.imwrite(paths["2048x2048"], mosaic)
    if with_stack:
        stack = np.stack(crops[:32])
        paths["32x512x512 (ZYX)"] = folder / "stack_32x512.tif"
        tifffile.imwrite(paths["32x512x512 (ZYX)"], stack, metadata={"axes": "ZYX"})
    return paths


# --- fresh-process measurements ------------------------------------------------------------


def speed(root: Path, model_arg: str, with_stack: bool, repeats: int) -> dict:
    results = {"cli": {}, "classical": None}
    with tempfile.TemporaryDirectory(prefix="tower-bench-") as tmp:
        tmp = Path(tmp)
        paths = make_test_images(root, tmp, with_stack)
        cli = cli_command()
        for name, path in paths.items():
            import tifffile

            shape = tifffile.imread(path).shape
            mpix = float(np.prod(shape)) / 1e6
            cmd = cli + ["segment", str(path), "-o", str(tmp / "out_cli"), "--device", "cpu", "--model", model_arg]
            log(f"  timing CLI on {name} ({repeats}x) ...")
            best, runs = best_of(cmd, repeats)
            # the CLI's own per-file time (read + segment + write), from its last stderr line
            m = re.findall(r"objects -> .*\(([\d.]+)s\)", best["stderr"])
            objects = re.findall(r": (\d+) objects ->", best["stderr"])
            results["cli"][name] = {
                "shape": list(shape), "mpix": mpix, "wall": best["wall"], "s_per_mpix": best["wall"] / mpix,
                "rss_mib": max(r["rss_mib"] for r in runs), "in_cli_seconds": float(m[-1]) if m else None,
                "objects": int(objects[-1]) if objects else None, "all_walls": [r["wall"] for r in runs],
            }
            log(f"    best {best['wall']:.2f}s, peak {results['cli'][name]['rss_mib']:.0f} MiB")
        path = paths["2048x2048"]
        out = tmp / "out_classical" / "img_2048.tif"
        cmd = [sys.executable, "-m", "benchmarks.baselines", str(path), "-o", str(out)]
        log(f"  timing classical baseline on 2048x2048 ({repeats}x) ...")
        runs = [run_measured(cmd, cwd=REPO) for _ in range(repeats)]
        calls = [json.loads(r["stdout"].strip().splitlines()[-1]) for r in runs]
        results["classical"] = {
            "call_seconds": min(c["call_seconds"] for c in calls), "wall": min(r["wall"] for r in runs),
            "rss_mib": max(r["rss_mib"] for r in runs), "objects": calls[0]["objects"], "mpix": 2048 * 2048 / 1e6,
            "all_calls": [c["call_seconds"] for c in calls], "all_walls": [r["wall"] for r in runs],
        }
        c = results["classical"]
        log(f"    best call {c['call_seconds']:.2f}s, whole process {c['wall']:.2f}s")
        results["cli_command"] = shlex.join([Path(cli[0]).name if len(cli) == 1 else "python -m napari_tower.cli"]
                                             + ["segment", "IMG", "-o", "OUT", "--device", "cpu", "--model", model_arg])
    return results


# --- report ----------------------------------------------------------------------------------


def render(info: dict, acc: dict | None, spd: dict | None, args, command: str, polyp: dict | None = None) -> str:
    from .failures import render_table

    mach = info["machine"]
    lines = [
        "## Segmentation benchmark",
        "",
        f"- Date: {info['date']}"
        + (" — **quick run** (5 images per modality, no stack): not representative" if args.quick else ""),
        f"- Machine: {mach['cpu']}, {mach['logical_cpus']} logical CPUs ({mach['usable_cpus']} usable), "
        + (f"{mach['mem_gib']:.0f} GiB RAM, " if mach["mem_gib"] else "")
        + f"{mach['os']}; Python {mach['python']}, torch {mach['torch']} ({mach['torch_threads']} threads), "
        f"napari-tower {mach['napari_tower']}"
        + (f"; load average at start {mach['load'][0]:.2f}" if mach["load"] else ""),
        f"- Model: `{info['model_name']}` (card sha256 `{info['model_sha'] or 'n/a'}`)",
        f"- Reproduce (from the repository root): `{command}`",
        "",
    ]
    if acc is not None:
        lines += [
            "### Accuracy on the dsb2018 validation split",
            "",
            "Fixed split `napari_tower.train.data.dsb_split` (validation part), "
            + ("first 5 images per modality" if args.quick else "all images")
            + "; scores are means over images. Dice: foreground Dice; AP@0.5: TP/(TP+FP+FN) with objects "
            "matched at IoU >= 0.5 (`napari_tower.metrics`). Classical: "
            "Gaussian + Otsu + distance-transform watershed (`benchmarks/baselines.py`).",
            "",
            "| modality | images | TOWER Dice | TOWER AP@0.5 | classical Dice | classical AP@0.5 "
            "| TOWER s/image | classical s/image |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for m in MODALITIES + ("all",):
            e = acc[m]
            name = "**all** (mean over images)" if m == "all" else m
            lines.append(
                f"| {name} | {e['n']} | {_f(e['tower']['dice'])} | {_f(e['tower']['ap50'])} "
                f"| {_f(e['classical']['dice'])} "
                f"| {_f(e['classical']['ap50'])} | {_f(e['tower']['seconds_per_image'], '.2f')} "
                f"| {_f(e['classical']['seconds_per_image'], '.2f')} |"
            )
        lines += ["", "s/image: in-process time on the default device (model already loaded), for orientation only.",
                  ""]
    if polyp is not None:
        e = next(iter(polyp.values()))
        lines += [
            "### Accuracy on the polyp_nuclei validation tiles",
            "",
            "Dense fluorescence tissue (700x622 uint16, ~1,000-2,000 nuclei a tile): the fixed split "
            "`napari_tower.train.data.polyp_split` holds out, from each of the 4 acquisitions, the tile whose id "
            "has the smallest sha1 (4 of 24 tiles, never trained on). Same scores and post-processing as above.",
            "",
            "| tiles | TOWER Dice | TOWER AP@0.5 | classical Dice | classical AP@0.5 | TOWER s/tile |",
            "|---:|---:|---:|---:|---:|---:|",
            f"| {e['n']} | {_f(e['tower']['dice'])} | {_f(e['tower']['ap50'])} | {_f(e['classical']['dice'])} "
            f"| {_f(e['classical']['ap50'])} | {_f(e['tower']['seconds_per_image'], '.2f')} |",
            "",
        ]
    failures = {**({m: acc[m]["failures"] for m in MODALITIES} if acc is not None else {}),
                **({k: v["failures"] for k, v in polyp.items()} if polyp is not None else {})}
    if failures:
        lines += [
            "### Where TOWER fails (share of true objects)",
            "",
            "Each true object not matched at IoU >= 0.5 gets one cause (`benchmarks/failures.py`): merged (most "
            "of it lies in a predicted object that holds most of another true object too), split (two or more "
            "predicted objects lie mostly inside it), missed (mostly background in the prediction), mis-shaped "
            "(the rest). Spurious: unmatched predicted objects lying mostly on background, per true object.",
            "",
            *render_table(failures),
            "",
        ]
    if spd is not None:
        c = spd["classical"]
        lines += [
            "### Speed and peak memory on CPU",
            "",
            f"Each run is a fresh process; best wall time of {args.repeats} runs; peak RSS is the process's own "
            "maximum resident set (`os.wait4` ru_maxrss, spawned from a ~10 MiB launcher so that nothing is "
            "inherited), highest over the runs. Images are 512x512 centre crops of "
            "real dsb2018 fluorescence images (2048x2048: a 4x4 mosaic of 16 crops; stack: 32 different crops), "
            "uint8 TIFF, built at run time.",
            "",
            f"CLI, whole process (start-up, imports, model load, read, segment, write): `{spd['cli_command']}`",
            "",
            "| input | megapixels | wall s | s / megapixel | in-CLI s (read+segment+write) | peak RSS MiB | objects |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name, r in spd["cli"].items():
            lines.append(
                f"| {name} | {r['mpix']:.2f} | {r['wall']:.2f} | {r['s_per_mpix']:.2f} "
                f"| {_f(r['in_cli_seconds'], '.1f')} "
                f"| {r['rss_mib']:.0f} | {_f(r['objects'], 'd')} |"
            )
        cli2048 = spd["cli"]["2048x2048"]["wall"]
        lines += [
            "",
            "Classical baseline on the same 2048x2048 image (`python -m benchmarks.baselines IMG -o OUT`):",
            "",
            "| measurement | seconds | s / megapixel | peak RSS MiB |",
            "|---|---:|---:|---:|",
            f"| `classical_segment` call only | {c['call_seconds']:.2f} | {c['call_seconds'] / c['mpix']:.2f} | |",
            f"| whole process (imports, read, segment, write) | {c['wall']:.2f} | {c['wall'] / c['mpix']:.2f} "
            f"| {c['rss_mib']:.0f} |",
            "",
            f"Ratio TOWER CLI whole process / classical call: **{cli2048 / c['call_seconds']:.1f}x**; "
            f"/ classical whole process: {cli2048 / c['wall']:.1f}x "
            f"(2048x2048; classical found {c['objects']} objects, "
            f"TOWER {_f(spd['cli']['2048x2048']['objects'], 'd')}).",
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"


SPEED_START = "<!-- segmentation-speed:start -->"
SPEED_END = "<!-- segmentation-speed:end -->"
SPEED_HEADING = "### Speed and peak memory on CPU"


def split_speed(section: str) -> tuple[str, str]:
    """The rendered section as (accuracy part, speed part); the speed part gets the run's own
    header (date, machine, model, command) under a heading of its own ("" when there is none)."""
    if SPEED_HEADING not in section:
        return section, ""
    before, after = section.split(SPEED_HEADING, 1)
    lines = before.splitlines()
    header = [line for line in lines[1:] if line.startswith("- ")]  # date, machine, model, reproduce
    return before.rstrip() + "\n", "\n".join(["## Speed and peak memory on CPU", "", *header, "", ""]) + after.lstrip("\n")


def write_section(path: Path, section: str, start: str = START, end: str = END) -> None:
    _write_section(path, section, start, end)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.segmentation", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="../shared/data/dsb2018", help="dsb2018 folder (index.csv, images/, labels/)")
    ap.add_argument("--model", default="auto", help="auto (as the CLI without --model), a model name or directory (default: %(default)s)")
    ap.add_argument("--out", default=None, help="markdown file to write the section into (default: print only)")
    ap.add_argument("--polyp", default="../shared/data/polyp_nuclei",
                    help="polyp_nuclei folder; its validation tiles are scored when it exists (default: %(default)s)")
    ap.add_argument("--quick", action="store_true", help="5 images per modality, no stack (smoke test)")
    ap.add_argument("--repeats", type=int, default=2,
                    help="runs per timing; the best is reported (default: %(default)s)")
    ap.add_argument("--skip-accuracy", action="store_true", help="speed and memory only")
    ap.add_argument("--skip-speed", action="store_true", help="accuracy only")
    args = ap.parse_args(argv)

    root = Path(args.data)
    if not (root / "index.csv").is_file() or not (root / "images").is_dir() or not (root / "labels").is_dir():
        print(f"segmentation benchmark skipped: no dsb2018 data at {root} (needs index.csv, images/, labels/)")
        return 0
    if args.repeats < 1:
        ap.error("--repeats must be at least 1")

    import napari_tower

    if args.model == "auto":  # as the CLI without --model: the bundled model that suits each image
        from napari_tower.model.choice import FLUORESCENCE, GENERAL

        loaded = {n: napari_tower.load_model(n) for n in (GENERAL, FLUORESCENCE)}
        model = lambda img, axes: loaded[napari_tower.choose_model(img, axes)]  # noqa: E731
        name = f"auto ({GENERAL} / {FLUORESCENCE})"
        sha = " / ".join((m.card.get("sha256") or "")[:12] for m in loaded.values())
    else:
        model = napari_tower.load_model(args.model)
        name, sha = model.name, (model.card.get("sha256") or "")[:12]
    model_arg = str(Path(args.model).expanduser()) if Path(args.model).expanduser().is_dir() else args.model
    command = shlex.join(["python", "-m", "benchmarks.segmentation"] + (sys.argv[1:] if argv is None else list(argv)))
    info = {
        "date": _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "machine": machine(),
        "model_name": name,
        "model_sha": sha,
    }
    log(f"model {name}; data {root}")
    acc = None
    if not args.skip_accuracy:
        log("accuracy ...")
        acc = accuracy(root, model, 5 if args.quick else None)
    polyp = None
    if not args.skip_accuracy and (Path(args.polyp) / "index.csv").is_file():
        log("accuracy on the polyp_nuclei validation tiles ...")
        polyp = polyp_accuracy(Path(args.polyp), model)
    elif not args.skip_accuracy:
        log(f"polyp_nuclei validation skipped: no index.csv in {args.polyp}")
    del model
    spd = None
    if not args.skip_speed:
        log("speed and memory (fresh processes) ...")
        spd = speed(root, model_arg, with_stack=not args.quick, repeats=args.repeats)
    section = render(info, acc, spd, args, command, polyp)
    print(section)
    if args.out and Path(args.out).is_dir():  # one page per topic
        accuracy_part, speed_part = split_speed(section)
        if acc is not None or polyp is not None:
            write_section(Path(args.out) / "2d.md", accuracy_part)
        if speed_part:
            write_section(Path(args.out) / "speed.md", speed_part, SPEED_START, SPEED_END)
        log(f"wrote the sections into {args.out}/2d.md and speed.md")
    elif args.out:
        write_section(Path(args.out), section)
        log(f"wrote the section into {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
