"""Few-shot benchmark: fine-tuning napari-tower on k annotated images vs. peer methods.

Run from the repository root::

    python -m benchmarks.few_shot --data ../shared/data/dsb2018 [--out docs/benchmarks/few-shot.md] \
        [--quick] [--minutes M] [--draws D] [--bases none,default,tower] [--ks 1,2,5] \
        [--modalities fluorescence,histology,brightfield] [--val-images N] \
        [--methods tower,rf,otsu,cellpose]

Protocol
    For each dsb2018 modality and each k, ``D`` random draws of k training images from
    the TRAIN part of the fixed split ``napari_tower.train.data.dsb_split`` (draw d takes
    the first k images of a permutation seeded by (d, modality), so the k=1 set is
    inside the k=2 set, inside the k=5 set). Each method is trained on those k images and
    scored on a fixed set of VALIDATION images of the same modality (the first N of the
    split's validation part; never seen in training): mean foreground Dice and mean
    AP@0.5 over the images (``napari_tower.metrics``), then mean ± std over the draws.

Methods
    - TOWER fine-tuned from each ``--bases`` entry: ``napari_tower.finetune(images,
      labels, base=B, max_minutes=M, seed=draw, device="cpu", output=tmp)``, then
      ``napari_tower.segment`` with the saved model on the CPU. A base whose weights are
      not installed (``ModelError``, e.g. ``tower`` before the pretrained weights ship)
      is skipped with a note.
    - TOWER ``default`` without fine-tuning (reference, when ``default`` is a base).
    - RF pixel classifier + watershed (ilastik / Convpaint approach), Otsu + watershed,
      and cellpose 3.1 trained from scratch for the same wall-clock budget — see
      ``benchmarks/peers.py``. cellpose is optional: skipped with a note when it is not
      installed or fails.

Outputs
    The markdown (one table per modality, the plot, the exact command) goes to stdout
    and, with ``--out``, into that file between ``<!-- few-shot-benchmark:start -->`` and
    ``<!-- few-shot-benchmark:end -->``. The plot (AP@0.5 vs k, one panel per modality)
    goes to ``--plot`` (docs/results/few_shot.png) and every run's raw scores to ``--json``
    (docs/results/few_shot_results.json), rewritten after each run; ``--resume`` reuses runs
    already in that JSON with the same settings.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .common import write_section as _write_section
from .baselines import classical_segment
from .peers import (
    CELLPOSE_METHOD,
    OTSU_METHOD,
    RF_METHOD,
    RFPixelClassifier,
    cellpose_available,
    cellpose_fit_predict,
    cellpose_warmup,
)
from .common import MODALITIES, _f, log, machine
from .segmentation import _read

START = "<!-- few-shot-benchmark:start -->"
END = "<!-- few-shot-benchmark:end -->"
ALL_METHODS = ("tower", "rf", "otsu", "cellpose")
QUICK = {"minutes": 1.0, "draws": 2, "ks": "1,2,5", "val_images": 8}
FULL = {"minutes": 2.0, "draws": 3, "ks": "1,2,5", "val_images": 16}


def short_label(key: str) -> str:
    if key.startswith("tower:"):
        return f"TOWER from {key.split(':', 1)[1]}"
    return {"tower-default-zero-shot": "TOWER default, no fine-tuning", "rf": "RF pixel classifier + watershed",
            "otsu": "Otsu + watershed", "cellpose": "cellpose 3.1 from scratch"}[key]


def method_label(key: str) -> str:
    if key.startswith("tower:"):
        return f"TOWER fine-tuned, base `{key.split(':', 1)[1]}`"
    return {
        "tower-default-zero-shot": "TOWER `default`, not fine-tuned (reference)",
        "rf": RF_METHOD, "otsu": OTSU_METHOD, "cellpose": CELLPOSE_METHOD,
    }[key]


# --- data ---------------------------------------------------------------------------------


def split_rows(root: Path) -> tuple[dict, dict]:
    from napari_tower.train.data import dsb_index, dsb_split

    train, val = dsb_split(dsb_index(root))

    def by(rows):
        return {m: [r for r in rows if r["modality"] == m] for m in MODALITIES}

    return by(train), by(val)


def draw_order(rows: list[dict], draw: int, modality: str) -> list[dict]:
    """A permutation of the train rows for one draw; its first k images are the k-shot set."""
    rng = np.random.default_rng([draw, MODALITIES.index(modality)])
    return [rows[i] for i in rng.permutation(len(rows))]


def axes_of(images: list[np.ndarray]) -> str | None:
    nd = {im.ndim for im in images}
    if nd == {2}:
        return "YX"
    if nd == {3}:
        return "YXC"
    return None


# --- scoring --------------------------------------------------------------------------------


def score(preds: list[np.ndarray], trues: list[np.ndarray]) -> dict:
    from napari_tower.metrics import average_precision, dice

    d = [dice(p, t) for p, t in zip(preds, trues, strict=True)]
    a = [average_precision(p, t, 0.5) for p, t in zip(preds, trues, strict=True)]
    return {"dice": d, "ap50": a, "dice_mean": float(np.mean(d)), "ap50_mean": float(np.mean(a))}


def tower_predict(model_dir, images: list[np.ndarray]) -> tuple[list[np.ndarray], float]:
    import napari_tower

    m = napari_tower.load_model(model_dir, device="cpu")
    t0 = time.perf_counter()
    preds = [np.asarray(napari_tower.segment(im, model=m, device="cpu", axes=axes_of([im]))) for im in images]
    return preds, time.perf_counter() - t0


# --- one run per (modality, k, draw, method) -------------------------------------------------


class Runner:
    def __init__(self, args, root: Path):
        self.args = args
        self.root = root
        self.results: list[dict] = []
        self.notes: list[str] = []
        self.skipped_bases: dict[str, str] = {}
        self.checked_bases: set[str] = set()
        self.cellpose_ok = False
        self.previous: dict[tuple, dict] = {}
        if args.resume and Path(args.json).is_file():
            for r in json.loads(Path(args.json).read_text()).get("runs", []):
                self.previous[self._key(r)] = r

    @staticmethod
    def _key(r: dict) -> tuple:
        return (r["modality"], r["method"], r["k"], r["draw"], r["budget_minutes"], tuple(r["train_ids"]),
                tuple(r["val_ids"]))

    def note(self, msg: str) -> None:
        if msg not in self.notes:
            self.notes.append(msg)
        log(f"  NOTE: {msg}")

    def add(self, run: dict) -> None:
        self.results.append(run)
        log(f"  {run['modality']:<12} k={run['k']} draw={run['draw']} {run['method']:<24} "
            f"Dice {run['dice_mean']:.3f}  AP50 {run['ap50_mean']:.3f}  train {run['train_seconds']:.1f}s  "
            f"predict {run['predict_seconds']:.1f}s")
        self.save_json()

    def save_json(self) -> None:
        path = Path(self.args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"settings": self.settings(), "notes": self.notes, "runs": self.results}
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(payload, indent=1))
        tmp.replace(path)

    def settings(self) -> dict:
        a = self.args
        return {"profile": "quick" if a.quick else "custom" if a.custom else "full", "minutes": a.minutes,
                "draws": a.draws, "ks": a.ks, "bases": a.bases, "methods": a.methods, "modalities": a.modalities,
                "val_images": a.val_images, "data": str(self.root), "command": a.command}

    def run(self, modality, method, k, draw, train_rows, val_rows, fn) -> None:
        """``fn() -> (preds, train_seconds, predict_seconds, extra)``; scores and records it."""
        base = {"modality": modality, "method": method, "k": k, "draw": draw,
                "budget_minutes": self.args.minutes, "train_ids": [r["id"] for r in train_rows],
                "val_ids": [r["id"] for r in val_rows]}
        prev = self.previous.get(self._key(base))
        if prev is not None:
            self.results.append(prev)
            log(f"  {modality:<12} k={k} draw={draw} {method:<24} reused from {self.args.json}")
            return
        try:
            preds, train_s, pred_s, extra = fn()
        except Exception as e:  # noqa: BLE001  (keep the benchmark going; the failure is reported)
            self.note(f"{modality}, {method_label(method)}, k={k}, draw {draw} failed: {type(e).__name__}: {e}")
            return
        run = dict(base, train_seconds=float(train_s), predict_seconds=float(pred_s), extra=extra)
        run.update(score(preds, self.val_labels))
        self.add(run)

    # --- the methods ---

    def tower(self, base_name, imgs, labs, draw):
        import napari_tower

        with tempfile.TemporaryDirectory(prefix="few-shot-tower-") as tmp:
            out = Path(tmp) / "model"
            t0 = time.perf_counter()
            napari_tower.finetune(imgs, labs, base=base_name, max_minutes=self.args.minutes, seed=draw,
                                  device="cpu", output=out, axes=axes_of(imgs))
            train_s = time.perf_counter() - t0
            card = json.loads((out / "card.json").read_text())
            preds, pred_s = tower_predict(out, self.val_images)
        tr = card.get("training", {})
        return preds, train_s, pred_s, {"steps": tr.get("steps"), "card_seconds": tr.get("seconds")}

    def rf(self, imgs, labs, draw):
        t0 = time.perf_counter()
        clf = RFPixelClassifier(seed=draw).fit(imgs, labs)
        train_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        preds = [clf.predict(im) for im in self.val_images]
        return preds, train_s, time.perf_counter() - t1, {}

    def cellpose(self, imgs, labs, draw):
        epochs = self.args.cellpose_epochs
        preds, info = cellpose_fit_predict(imgs, labs, self.val_images, seed=draw,
                                           seconds=None if epochs else self.args.minutes * 60, epochs=epochs)
        return preds, info.pop("train_seconds"), info.pop("predict_seconds"), info

    # --- the loop ---

    def modality(self, modality: str, train_rows: list[dict], val_rows: list[dict]) -> None:
        from napari_tower.errors import ModelError
        from napari_tower.train.finetune import base_network

        a = self.args
        if a.val_images:
            val_rows = val_rows[: a.val_images]
        if not val_rows or not train_rows:
            self.note(f"{modality}: no train or validation images in the split, skipped")
            return
        log(f"{modality}: {len(train_rows)} train images, scoring on {len(val_rows)} validation images")
        pairs = [_read(self.root, r) for r in val_rows]
        self.val_images = [p[0] for p in pairs]
        self.val_labels = [p[1] for p in pairs]

        # methods that do not depend on k: scored once, shown in every k column
        if "otsu" in a.methods:
            def otsu():
                t0 = time.perf_counter()
                preds = [classical_segment(im) for im in self.val_images]
                return preds, 0.0, time.perf_counter() - t0, {}
            self.run(modality, "otsu", 0, 0, [], val_rows, otsu)
        if "tower" in a.methods and "default" in a.bases:
            def zero_shot():
                preds, pred_s = tower_predict("default", self.val_images)
                return preds, 0.0, pred_s, {}
            self.run(modality, "tower-default-zero-shot", 0, 0, [], val_rows, zero_shot)

        for draw in range(a.draws):
            order = draw_order(train_rows, draw, modality)
            for k in a.ks:
                if k > len(order):
                    self.note(f"{modality}: k={k} skipped, the train split has only {len(order)} images")
                    continue
                rows = order[:k]
                pairs = [_read(self.root, r) for r in rows]
                imgs, labs = [p[0] for p in pairs], [p[1] for p in pairs]
                if "tower" in a.methods:
                    for base_name in a.bases:
                        if base_name in self.skipped_bases:
                            continue
                        if base_name != "none" and base_name not in self.checked_bases:
                            try:  # a base whose weights are not installed is skipped, with a note
                                base_network(base_name)
                            except ModelError as e:
                                self.skipped_bases[base_name] = str(e)
                                self.note(f"TOWER base `{base_name}` skipped: {e}")
                                continue
                            self.checked_bases.add(base_name)
                        self.run(modality, f"tower:{base_name}", k, draw, rows, val_rows,
                                 lambda b=base_name, i=imgs, lb=labs, d=draw: self.tower(b, i, lb, d))
                if "rf" in a.methods:
                    self.run(modality, "rf", k, draw, rows, val_rows,
                             lambda i=imgs, lb=labs, d=draw: self.rf(i, lb, d))
                if "cellpose" in a.methods and self.cellpose_ok:
                    self.run(modality, "cellpose", k, draw, rows, val_rows,
                             lambda i=imgs, lb=labs, d=draw: self.cellpose(i, lb, d))


# --- aggregation and report -----------------------------------------------------------------


def aggregate(runs: list[dict]) -> dict:
    """{modality: {method: {k: {"dice": (mean, std), "ap50": (...), "train_s": mean, "n": draws}}}}.

    Methods without training (k=0 in the runs) are stored under k=0.
    """
    out: dict = {}
    groups: dict = {}
    for r in runs:
        groups.setdefault((r["modality"], r["method"], r["k"]), []).append(r)
    for (m, meth, k), rs in groups.items():
        d = np.array([r["dice_mean"] for r in rs])
        a = np.array([r["ap50_mean"] for r in rs])
        def sd(x):
            return float(np.std(x, ddof=1)) if len(x) > 1 else 0.0

        out.setdefault(m, {}).setdefault(meth, {})[k] = {
            "dice": (float(d.mean()), sd(d)), "ap50": (float(a.mean()), sd(a)),
            "train_s": float(np.mean([r["train_seconds"] for r in rs])),
            "predict_s_per_image": float(np.mean([r["predict_seconds"] / max(1, len(r["val_ids"])) for r in rs])),
            "n": len(rs), "n_val": len(rs[0]["val_ids"]),
            "steps": _mean_or_none([(r.get("extra") or {}).get("steps", (r.get("extra") or {}).get("batches_done"))
                                    for r in rs]),
        }
    return out


def _mean_or_none(values):
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def method_order(keys) -> list[str]:
    order = ["tower:none", "tower:tower", "tower:default", "tower-default-zero-shot", "cellpose", "rf", "otsu"]
    known = [k for k in order if k in keys]
    return known + sorted(k for k in keys if k not in order and k.startswith("tower:"))


def _pm(v, n) -> str:
    mean, std = v
    return f"{mean:.3f}" if n <= 1 else f"{mean:.3f} ± {std:.3f}"


def render(agg: dict, args, info: dict, notes: list[str], plot_rel: str | None) -> str:
    a = args
    mach = info["machine"]
    prof = ("**quick** profile (not representative: short budget, few draws, few validation images)" if a.quick
            else "custom settings" if a.custom else "full profile")
    lines = [
        "## Few-shot benchmark",
        "",
        (f"- Date: {info['date']} — {prof}: budget {a.minutes:g} min of CPU training per run, {a.draws} draw(s) "
         f"per k, k in {{{', '.join(map(str, a.ks))}}}, up to {a.val_images or 'all'} validation images "
         "per modality"),
        f"- Machine: {mach['cpu']}, {mach['logical_cpus']} logical CPUs ({mach['usable_cpus']} usable); "
        f"torch {mach['torch']} ({mach['torch_threads']} threads), napari-tower {mach['napari_tower']}"
        + (f"; load average at start {mach['load'][0]:.2f}" if mach["load"] else ""),
        f"- cellpose: {info['cellpose']}",
        f"- Reproduce (from the repository root): `{a.command}`",
        "",
        ("Training images: k drawn at random from the train part of the fixed dsb2018 split "
        "(`napari_tower.train.data.dsb_split`), per modality, nested (the k=1 set is in the k=2 set, in the "
        "k=5 set); every method sees the same draws. Scores: mean over the fixed validation images of that "
        "modality (the first N of the split's validation part) of foreground Dice and AP@0.5 "
        "(TP/(TP+FP+FN), IoU ≥ 0.5; `napari_tower.metrics`), then mean ± std (sample std) over draws. "
        "*train s*: mean wall-clock training seconds per run on the CPU (TOWER: the `finetune` call, "
        "including its target preparation and saving; RF: features + fit; cellpose: flows + training, "
        "stopped at the same budget). Methods without training are shown once, in the k columns unchanged. "
        "The bundled `default` model was validated on this split's validation part; it may have seen "
        "train-split images in its own training, so `base default` measures adapting an in-domain model."),
        "",
    ]
    ks = list(a.ks)
    for m in MODALITIES:
        if m not in agg:
            continue
        n_val = next(iter(next(iter(agg[m].values())).values()))["n_val"]
        lines += [f"### {m} ({n_val} validation images)", ""]
        head = ("| method | " + " | ".join(f"k={k} Dice | k={k} AP@0.5 | k={k} train s" for k in ks)
                + " | predict s/image |")
        lines += [head, "|---|" + "---:|" * (3 * len(ks) + 1)]
        for meth in method_order(agg[m].keys()):
            cells = []
            per_k = agg[m][meth]
            for k in ks:
                e = per_k.get(k, per_k.get(0))
                if e is None:
                    cells += ["—", "—", "—"]
                    continue
                train = "—" if 0 in per_k else f"{e['train_s']:.0f}"
                cells += [_pm(e["dice"], e["n"]), _pm(e["ap50"], e["n"]), train]
            ps = np.mean([e["predict_s_per_image"] for e in per_k.values()])
            lines.append(f"| {method_label(meth)} | " + " | ".join(cells) + f" | {_f(float(ps), '.2f')} |")
        lines.append("")
        steps = []
        for meth in method_order(agg[m].keys()):
            per_k = agg[m][meth]
            got = [f"k={k}: {per_k[k]['steps']:.0f}" for k in ks if k in per_k and per_k[k]["steps"] is not None]
            if got:
                steps.append(f"{method_label(meth)} ({', '.join(got)})")
        if steps:
            lines += ["Optimizer steps per run within the budget (mean over draws; batches of 8 crops): "
                      + "; ".join(steps) + ".", ""]
    if plot_rel:
        lines += [f"![AP@0.5 vs k per method, one panel per modality]({plot_rel})", ""]
    if notes:
        lines += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines).rstrip() + "\n"


def plot(agg: dict, ks: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mods = [m for m in MODALITIES if m in agg]
    fig, axes = plt.subplots(1, len(mods), figsize=(4.6 * len(mods), 3.8), squeeze=False, sharey=True)
    for ax, m in zip(axes[0], mods, strict=True):
        for meth in method_order(agg[m].keys()):
            per_k = agg[m][meth]
            label = short_label(meth)
            if 0 in per_k:  # no training: a horizontal reference line
                ax.axhline(per_k[0]["ap50"][0], ls="--", lw=1, color="gray" if meth == "otsu" else "black",
                           label=label)
                continue
            xs = [k for k in ks if k in per_k]
            ax.errorbar(xs, [per_k[k]["ap50"][0] for k in xs], yerr=[per_k[k]["ap50"][1] for k in xs],
                        marker="o", capsize=3, label=label)
        ax.set_title(m)
        ax.set_xlabel("k (training images)")
        ax.set_xticks(ks)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("AP@0.5 (validation)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ax in axes[0][1:]:
        for h, lb in zip(*ax.get_legend_handles_labels(), strict=True):
            if lb not in labels:
                handles.append(h)
                labels.append(lb)
    fig.tight_layout()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(len(labels), 2 * len(mods)),
               fontsize=8, frameon=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def write_section(path: Path, section: str) -> None:
    _write_section(path, section, START, END)


# --- main ------------------------------------------------------------------------------------------


def _csv(s: str) -> list[str]:
    return [x.strip() for x in s.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.few_shot", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="../shared/data/dsb2018", help="dsb2018 folder (index.csv, images/, labels/)")
    ap.add_argument("--out", default=None, help="markdown file to write the section into (default: print only)")
    ap.add_argument("--quick", action="store_true",
                    help=f"small profile: {QUICK['minutes']:g} min, {QUICK['draws']} draws, ks {QUICK['ks']}, "
                         f"<= {QUICK['val_images']} validation images per modality (explicit options still win)")
    ap.add_argument("--minutes", type=float, default=None,
                    help=f"training budget per run, minutes (full: {FULL['minutes']:g})")
    ap.add_argument("--draws", type=int, default=None, help=f"random draws per k (full: {FULL['draws']})")
    ap.add_argument("--ks", default=None, help=f"comma-separated k values (default {FULL['ks']})")
    ap.add_argument("--bases", default="none,default,tower",
                    help="TOWER bases to fine-tune from (default: %(default)s)")
    ap.add_argument("--methods", default=",".join(ALL_METHODS), help="subset of %(default)s")
    ap.add_argument("--modalities", default=",".join(MODALITIES), help="subset of %(default)s")
    ap.add_argument("--val-images", type=int, default=None,
                    help=f"validation images per modality, 0 = all (full: {FULL['val_images']})")
    ap.add_argument("--cellpose-epochs", type=int, default=None,
                    help="train cellpose for this many epochs instead of the wall-clock budget")
    ap.add_argument("--json", default="docs/results/few_shot_results.json", help="raw per-run results (default: %(default)s)")
    ap.add_argument("--plot", default="docs/results/few_shot.png", help="plot file (default: %(default)s)")
    ap.add_argument("--resume", action="store_true", help="reuse runs already in --json with the same settings")
    args = ap.parse_args(argv)

    explicit = {k for k in ("minutes", "draws", "ks", "val_images") if getattr(args, k) is not None}
    profile = QUICK if args.quick else FULL
    for k, v in profile.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    args.custom = bool(explicit) and not args.quick
    args.ks = sorted({int(k) for k in _csv(args.ks)})
    args.bases = _csv(args.bases)
    args.methods = _csv(args.methods)
    args.modalities = _csv(args.modalities)
    for name, values, allowed in (("--methods", args.methods, ALL_METHODS),
                                  ("--modalities", args.modalities, MODALITIES)):
        bad = [v for v in values if v not in allowed]
        if bad:
            ap.error(f"{name}: unknown {bad}; choose from {list(allowed)}")
    if any(k < 1 for k in args.ks) or args.draws < 1 or args.minutes <= 0:
        ap.error("ks and --draws must be >= 1 and --minutes > 0")
    args.command = shlex.join(["python", "-m", "benchmarks.few_shot"] + (sys.argv[1:] if argv is None else list(argv)))

    root = Path(args.data)
    if not (root / "index.csv").is_file() or not (root / "images").is_dir() or not (root / "labels").is_dir():
        print(f"few-shot benchmark skipped: no dsb2018 data at {root} (needs index.csv, images/, labels/)")
        return 0

    runner = Runner(args, root)
    cp_ok, cp_msg = (False, "not requested")
    if "cellpose" in args.methods:
        cp_ok, cp_msg = cellpose_available()
        if not cp_ok:
            runner.note(f"cellpose skipped: {cp_msg}")
    if cp_ok:
        try:
            log(f"cellpose warm-up (numba compilation, outside the timed runs): {cellpose_warmup():.1f}s")
        except Exception as e:  # noqa: BLE001  (an optional peer: any failure skips it, with the reason)
            cp_ok, cp_msg = False, f"cellpose {cp_msg} failed its warm-up ({type(e).__name__}: {e})"
            runner.note(f"cellpose skipped: {cp_msg}")
    runner.cellpose_ok = cp_ok
    if "rf" in args.methods:
        try:
            import sklearn  # noqa: F401
        except ImportError:
            runner.note("RF pixel classifier skipped: scikit-learn is not installed")
            args.methods = [m for m in args.methods if m != "rf"]
    info = {
        "date": _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "machine": machine(),
        "cellpose": (f"{cp_msg}, random init, `train_seg` for the same wall-clock budget"
                     if cp_ok and not args.cellpose_epochs else
                     f"{cp_msg}, random init, `train_seg` for {args.cellpose_epochs} epochs" if cp_ok else cp_msg),
    }
    n_train = len([b for b in args.bases]) * ("tower" in args.methods) + ("cellpose" in args.methods and cp_ok)
    log(f"few-shot benchmark: {len(args.modalities)} modalities x ks {args.ks} x {args.draws} draws; "
        f"up to {n_train} budgeted trainings of {args.minutes:g} min per (k, draw) -> at most "
        f"{len(args.modalities) * len(args.ks) * args.draws * n_train * args.minutes:.1f} min of training "
        "(plus RF fits and predictions)")

    train_by, val_by = split_rows(root)
    for m in args.modalities:
        runner.modality(m, train_by[m], val_by[m])
    runner.save_json()

    agg = aggregate(runner.results)
    plot_path, plot_rel = Path(args.plot), None
    if agg:
        try:
            plot(agg, args.ks, plot_path)
            base_dir = Path(args.out).resolve().parent if args.out else Path.cwd()
            plot_rel = os.path.relpath(plot_path.resolve(), base_dir)
            log(f"wrote the plot {plot_path}")
        except ImportError:
            runner.note("no plot: matplotlib is not installed")
    section = render(agg, args, info, runner.notes, plot_rel)
    print(section)
    if args.out:
        write_section(Path(args.out), section)
        log(f"wrote the section into {args.out}")
    log(f"raw results in {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
