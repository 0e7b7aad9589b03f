"""SSL comparison: fine-tuning from random init, SimCLR, BYOL and TOWER (+ TOWER ablations).

The paper's comparison on our data. Run from the repository root::

    python -m benchmarks.ssl_comparison --data ../shared/data/dsb2018 --quick --out docs/benchmarks/self-supervised.md

Protocol
    1. Pretraining, equal budgets: every method pretrains the same network from the same
       seed for the same number of steps (same batch, crop, learning rate) on the TRAIN
       part of the fixed dsb2018 split (``napari_tower.train.data.dsb_split``), labels
       unused, through the user's command ``napari-tower pretrain --method M --max-steps S``
       (one process per method, so its wall-clock time and peak memory are its own).
       "none" is the random initialisation with the same seed.
    2. Fine-tuning: for each label fraction (1%, 10%, 100% of the train split; drawn per
       seed, stratified by modality with at least one image of each), each initialisation
       is fine-tuned for the same number of steps (``train.trainer.train``, fixed steps so
       that CPU load cannot change the budget), seeds 0..n-1.
    3. Scoring on a fixed subset of the VALIDATION split (never used above): mean
       foreground Dice and AP@0.5 per modality and over all images; mean ± std over seeds.

Profiles
    ``--quick`` (about 20 minutes on 2 AMD EPYC cores: ~6 min pretraining six models, ~22 s
    per fine-tuning run; 70 minutes on an older 2-core machine): small crops, 1200 pretraining
    and 600 fine-tuning steps at the product's rate for untrained heads, 3 seeds for 1%
    and 10%, 1 for 100%, ablations at 10% only, a validation subset. The full profile
    (default) is sized for a GPU. The table says which produced it. On a GPU machine,
    ``--device cuda --pretrain-only`` does the pretraining alone; the same command with
    ``--resume`` (same settings, same ``--work`` and ``--json``) fine-tunes and scores anywhere.

Outputs: markdown section between ``<!-- ssl-comparison:start -->`` / ``<!-- ssl-comparison:end -->``
in ``--out``, the plot ``--plot`` (docs/results/ssl_comparison.png) and raw runs ``--json``
(docs/results/ssl_comparison.json, rewritten after each run; ``--resume`` reuses finished runs).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .common import write_section as _write_section
from .common import MODALITIES, log, machine

START = "<!-- ssl-comparison:start -->"
END = "<!-- ssl-comparison:end -->"
MAIN_INITS = ("none", "simclr", "byol", "tower")
ABLATIONS = {"tower-no-proxy": ["--no-proxy"], "tower-no-nce": ["--no-nce"], "tower-no-restore": ["--no-restore"],
             # not an ablation: TOWER with InfoNCE weighted 10x (the ablations point at InfoNCE)
             "tower-nce1": ["--lambda-nce", "1.0"]}
# fine-tuning-side variants of a pretrained model: which of its parameters (name prefixes) are kept,
# the rest from the random initialisation. Encoder only = as SimCLR and BYOL transfer (does TOWER's
# pretrained decoder matter?); deep decoder = encoder and the two coarsest decoder stages.
PARTIAL = {"tower-encoder-only": ("tower", ("encoder.",)),
           "tower-keep-deep": ("tower", ("encoder.", "decoder.ups.0.", "decoder.ups.1."))}
ALL_INITS = list(MAIN_INITS) + list(ABLATIONS) + list(PARTIAL)
LABELS = {
    "none": "random init", "simclr": "SimCLR", "byol": "BYOL", "tower": "TOWER",
    "tower-no-proxy": "TOWER w/o proxy tasks", "tower-no-nce": "TOWER w/o InfoNCE",
    "tower-no-restore": "TOWER w/o restoration", "tower-nce1": "TOWER, lambda_nce 1.0",
    "tower-encoder-only": "TOWER encoder only (decoder random)",
    "tower-keep-deep": "TOWER encoder + two coarsest decoder stages (the rest random)",
}
# quick: 150 fine-tuning steps under-trained every start (random init AP@0.5 0.23 at 1% vs 0.47
# with 600) and TOWER most, whose whole network is pretrained for restoration (docs/benchmarks/self-supervised.md)
# the fine-tuning rate is the product's for untrained heads (napari_tower.train.finetune.FAST_LR, set in
# main); at 1e-3 the quick profile under-trained every start, TOWER most
QUICK = dict(pretrain_steps=1200, pretrain_crop=64, pretrain_batch=16, finetune_steps=600, finetune_crop=96,
             seeds="3,3,1", fractions="0.01,0.1,1.0", val_per_modality=8, ablation_fractions="0.1")
FULL = dict(pretrain_steps=5000, pretrain_crop=128, pretrain_batch=32, finetune_steps=2000, finetune_crop=128,
            seeds="5,5,3", fractions="0.01,0.1,1.0", val_per_modality=0, ablation_fractions="0.01,0.1")


def pretrain_command(method_key: str, images: list[str], out: Path, p: dict, device: str,
                     workers: int | None = None) -> list[str]:
    method = "tower" if method_key.startswith("tower") else method_key
    cmd = [sys.executable, "-m", "napari_tower", "pretrain", "--images", *images, "--output", str(out),
           "--method", method, "--max-steps", str(p["pretrain_steps"]), "--crop", str(p["pretrain_crop"]),
           "--batch-size", str(p["pretrain_batch"]), "--seed", "0", "--device", device]
    if method_key in ABLATIONS:
        cmd += ABLATIONS[method_key]
    if workers is not None:
        cmd += ["--workers", str(workers)]
    return cmd


def run_pretraining(cmd: list[str]) -> dict:
    """Run one pretraining process; its own wall time and peak RSS (os.wait4 rusage)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"pretraining failed: {shlex.join(cmd[:8])} ...\n{err[-2000:]}")
    out = Path(cmd[cmd.index("--output") + 1])
    card = json.loads((out / "card.json").read_text())["pretraining"]
    rec = {"seconds": seconds, "train_seconds": card["seconds"], "peak_rss_mb": usage.ru_maxrss / 1024,
           "device": card.get("device", "cpu"), "data_workers": card.get("data_workers", 0)}
    rec.update({k: card[k] for k in ("gpu", "peak_gpu_mb") if k in card})
    return rec


def draw_fraction(train_rows: list[dict], fraction: float, seed: int) -> list[dict]:
    """``fraction`` of the train rows, stratified by modality (>= 1 image of each)."""
    if fraction >= 1.0:
        return list(train_rows)
    rng = np.random.default_rng([seed, int(round(fraction * 1e4))])
    out = []
    for m in MODALITIES:
        rows = [r for r in train_rows if r["modality"] == m]
        n = max(1, int(round(len(rows) * fraction)))
        out += [rows[i] for i in rng.choice(len(rows), n, replace=False)]
    return out


def initial_net(init: str, models: Path):
    """The network to fine-tune and the parts its pretraining trained."""
    import torch

    from napari_tower.train.finetune import _load_base, pretrained_parts

    torch.manual_seed(0)  # the same random heads for every initialisation
    source, kept = PARTIAL.get(init, (init, None))
    net, _, card = _load_base("none" if init == "none" else models / source)
    if kept:
        torch.manual_seed(0)
        random = _load_base("none")[0].state_dict()
        net.load_state_dict({k: v if k.startswith(kept) else random[k] for k, v in net.state_dict().items()})
        return net, ("encoder",)  # what head warm-up fixes: whole modules only, so not decoder stages
    return net, pretrained_parts(card)


def finetune_and_score(init, models, train_samples, val_samples, p, seed, head_warmup: float = 0.0) -> dict:
    import torch

    from napari_tower.progress import run_to_end
    from napari_tower.train.trainer import TrainSettings, evaluate, train

    net, parts = initial_net(init, models)
    settings = TrainSettings(max_steps=p["finetune_steps"], batch_size=8, crop=p["finetune_crop"], lr=p["finetune_lr"], seed=seed,
                             val_every=10**9, log_every=10**9,
                             frozen=parts if head_warmup else (), frozen_until=head_warmup)
    t0 = time.perf_counter()
    res = run_to_end(train(net, train_samples, None, settings, torch.device("cpu")))
    seconds = time.perf_counter() - t0
    m = evaluate(res.net, val_samples, torch.device("cpu"))
    return {"seconds": seconds, **m}


def aggregate(runs: list[dict]) -> dict:
    """{(init, fraction): {metric: (mean, std, n)}} over seeds."""
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["init"], r["fraction"]), []).append(r)
    out = {}
    for key, rs in groups.items():
        keys = sorted({k for r in rs for k in r if k.startswith(("dice", "ap50"))})
        out[key] = {k: (float(np.mean([r[k] for r in rs if k in r])), float(np.std([r[k] for r in rs if k in r])),
                        len(rs)) for k in keys}
    return out


def _pm(v) -> str:
    if v is None:
        return "–"
    mean, std, n = v
    return f"{mean:.3f}" + (f" ± {std:.3f}" if n > 1 else "")


def _profile_name(p: dict, quick: bool) -> str:
    base = QUICK if quick else FULL
    changed = [k for k in base if p.get(k) != base[k] and k not in ("seeds", "fractions", "ablation_fractions")]
    name = "quick" if quick else "full"
    if set(changed) == {"pretrain_steps", "pretrain_crop", "pretrain_batch"} and all(p[k] == FULL[k] for k in changed):
        return f"{name} fine-tuning, full pretraining"
    return name + (f" (changed: {', '.join(changed)})" if changed else "")


def paired(runs: list[dict], init: str, fraction: float, ref: str = "none") -> tuple[float, float, int, int] | None:
    """AP@0.5 of ``init`` minus ``ref`` over the seeds both ran (the same labelled images):
    mean, standard error, seeds ahead, seeds. Pairing removes the spread that comes from
    which images were drawn, the largest part of the spread at 1%."""
    by = {(r["init"], r["seed"]): r["ap50"] for r in runs if r["fraction"] == fraction}
    seeds = sorted(s for i, s in by if i == init and (ref, s) in by)
    if len(seeds) < 2:
        return None
    d = np.array([by[init, s] - by[ref, s] for s in seeds])
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d))), int((d > 0).sum()), len(d)


def paired_table(runs: list[dict], inits: list[str], fracs: list[float]) -> list[str]:
    fr = [f for f in fracs if any(paired(runs, i, f) for i in inits if i != "none")]
    if not fr:
        return []
    lines = ["", "### Paired with random init (same labelled images per seed): AP@0.5 difference", "",
             "Mean ± standard error of the per-seed difference; in brackets, the seeds where it is ahead.", "",
             "| initialisation | " + " | ".join(f"{f:g} of labels" for f in fr) + " |", "|---|" + "---|" * len(fr)]
    for i in inits:
        if i == "none":
            continue
        cells = []
        for f in fr:
            d = paired(runs, i, f)
            cells.append(f"{d[0]:+.3f} ± {d[1]:.3f} ({d[2]}/{d[3]})" if d else "–")
        lines.append(f"| {LABELS[i]} | " + " | ".join(cells) + " |")
    return lines


def render(agg: dict, pre: dict, p: dict, args, info: dict, plot_rel: str | None, runs: list[dict] = ()) -> str:
    fracs = [float(f) for f in p["fractions"].split(",")]
    inits = [i for i in ALL_INITS if any(k[0] == i for k in agg)]
    lines = [
        "## Self-supervised pretraining comparison (SSL)",
        "",
        f"Profile: **{_profile_name(p, args.quick)}** — pretraining {p['pretrain_steps']} steps "
        f"(batch {p['pretrain_batch']} x 2 views, crop {p['pretrain_crop']}) per method on the "
        f"{info['n_train']} train-split images (labels unused); fine-tuning {p['finetune_steps']} steps "
        f"(batch 8, crop {p['finetune_crop']}, rate {p['finetune_lr']:g}, "
        + (f"pretrained parts fixed for the first {p['head_warmup']:.0%} of it while the random heads learn"
           if p.get("head_warmup") else "every layer from the first step")
        + f"); seeds per fraction {p['seeds']}; scored on "
        f"{info['n_val']} validation images ({info['val_desc']}). Machine: {info['machine']}. "
        f"Mean ± std over seeds (how many: the seeds column, per fraction).",
        "",
        "Commands (a later one with `--resume` adds runs to the same results):",
        "",
        "```",
        info["command"],
        "```",
        "",
        "### Mean over all validation images",
        "",
        "| initialisation | " + " | ".join(f"{f:g} of labels: Dice | AP@0.5" for f in fracs) + " | seeds |",
        "|---|" + "---|---|" * len(fracs) + "---|",
    ]
    for i in inits:
        cells = []
        for f in fracs:
            a = agg.get((i, f))
            cells += [_pm(a["dice"]) if a else "–", _pm(a["ap50"]) if a else "–"]
        cells.append(" / ".join(str(agg[i, f]["ap50"][2]) if (i, f) in agg else "0" for f in fracs))
        lines.append(f"| {LABELS[i]} | " + " | ".join(cells) + " |")
    lines += paired_table(runs, inits, fracs)
    for m in MODALITIES:
        lines += ["", f"### {m}: AP@0.5 (Dice)", "",
                  "| initialisation | " + " | ".join(f"{f:g}" for f in fracs) + " |", "|---|" + "---|" * len(fracs)]
        for i in inits:
            cells = []
            for f in fracs:
                a = agg.get((i, f))
                if a and f"ap50_{m}" in a:
                    cells.append(f"{_pm(a[f'ap50_{m}'])} ({a[f'dice_{m}'][0]:.3f})")
                else:
                    cells.append("–")
            lines.append(f"| {LABELS[i]} | " + " | ".join(cells) + " |")
    gpus = sorted({v["gpu"] for v in pre.values() if "gpu" in v})
    where = f"GPU: {', '.join(gpus)}" if gpus else "CPU"
    lines += ["", f"### Pretraining throughput and memory ({where})", "",
              "| method | steps | training s | views/s | process s | peak RSS (MB) |"
              + (" peak GPU memory (MB) | data workers |" if gpus else ""),
              "|---|---|---|---|---|---|" + ("---|---|" if gpus else "")]
    for k, v in pre.items():
        views = p["pretrain_steps"] * p["pretrain_batch"] * 2
        row = (f"| {LABELS[k]} | {p['pretrain_steps']} | {v['train_seconds']:.0f} | "
               f"{views / v['train_seconds']:.1f} | {v['seconds']:.0f} | {v['peak_rss_mb']:.0f} |")
        if gpus:
            row += f" {v.get('peak_gpu_mb', float('nan')):.0f} | {v.get('data_workers', 0)} |"
        lines.append(row)
    lines += ["", "Views/s: both views of every region at the pretraining crop, per second of training; "
              "process seconds add start-up and reading the images. Peak RSS is the whole process's"
              + ("; peak GPU memory is what PyTorch allocated. Fine-tuning and scoring ran on the CPU machine named above."
                 if gpus else ".")]
    if plot_rel:
        lines += ["", f"![SSL comparison]({plot_rel})"]
    return "\n".join(lines) + "\n"


def plot(agg: dict, fracs: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric, title in zip(axes, ("ap50", "dice"), ("AP@0.5", "foreground Dice")):
        for i in ALL_INITS:
            pts = [(f, agg[(i, f)][metric]) for f in fracs if (i, f) in agg]
            if not pts:
                continue
            xs = [f * 100 for f, _ in pts]
            ys = [v[0] for _, v in pts]
            es = [v[1] for _, v in pts]
            style = "-o" if i in MAIN_INITS else ":x"
            ax.errorbar(xs, ys, yerr=es, fmt=style, capsize=3, label=LABELS[i])
        ax.set_xscale("log")
        ax.set_xlabel("% of dsb2018 train labels")
        ax.set_ylabel(title)
        ax.set_title(title + " on the validation subset")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_section(path: Path, section: str, tag: str = "") -> None:
    """The section between its markers; a ``tag`` gives a profile its own section beside the default one."""
    t = f"-{tag}" if tag else ""
    _write_section(path, section, start=START.replace(":start", f"{t}:start"), end=END.replace(":end", f"{t}:end"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.ssl_comparison", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="../shared/data/dsb2018", help="dsb2018 folder (index.csv, images/, labels/)")
    ap.add_argument("--quick", action="store_true", help="the ~70 min 2-core CPU profile (see the module docstring)")
    ap.add_argument("--out", default=None, help="markdown file to write the section into (default: print only)")
    ap.add_argument("--json", default="docs/results/ssl_comparison.json", help="raw runs (default: %(default)s)")
    ap.add_argument("--plot", default="docs/results/ssl_comparison.png", help="plot file (default: %(default)s)")
    ap.add_argument("--work", default=None, help="folder for the pretrained models (default: a folder beside --json)")
    ap.add_argument("--inits", default=",".join(ALL_INITS), help="subset of %(default)s")
    ap.add_argument("--device", default="cpu", help="pretraining device (fine-tuning and scoring run on the CPU)")
    ap.add_argument("--resume", action="store_true", help="reuse pretrained models and runs already done")
    ap.add_argument("--pretrain-workers", type=int, default=None, help="data worker processes per pretraining "
                    "(napari-tower pretrain --workers; default: none on the CPU, up to 8 on a GPU)")
    ap.add_argument("--tag", default="", help="write to a section of its own (markers ssl-comparison-TAG), "
                    "beside the default profile's")
    ap.add_argument("--pretrain-only", action="store_true", help="stop after pretraining (e.g. on a GPU machine; "
                    "fine-tune later with the same settings and --resume)")
    for k, v in FULL.items():
        ap.add_argument("--" + k.replace("_", "-"), default=None, type=type(v), help=f"full: {v}; quick: {QUICK[k]}")
    ap.add_argument("--finetune-lr", type=float, default=None, help="fine-tuning rate (default: the product's for "
                    "untrained heads, napari_tower.train.finetune.FAST_LR)")
    ap.add_argument("--head-warmup", type=float, default=None, help="fraction of fine-tuning during which the "
                    "pretrained parts stay fixed while the random heads learn (default: fine-tuning's own, "
                    "napari_tower.train.finetune.HEAD_WARMUP; 0: train everything from the first step)")
    ap.add_argument("--pretrained-from", default=None, help="raw runs (JSON) of an earlier run with the same --work and "
                    "pretraining settings: reuse its pretrained models instead of pretraining again")
    args = ap.parse_args(argv)
    from napari_tower.train.finetune import FAST_LR, HEAD_WARMUP

    p = dict(QUICK if args.quick else FULL)
    p["head_warmup"] = HEAD_WARMUP if args.head_warmup is None else args.head_warmup
    p["finetune_lr"] = FAST_LR if args.finetune_lr is None else args.finetune_lr
    p.update({k: getattr(args, k) for k in FULL if getattr(args, k) is not None})

    root = Path(args.data)
    if not (root / "index.csv").is_file():
        print(f"no dsb2018 data at {root} (index.csv missing): nothing to benchmark", file=sys.stderr)
        return 2
    import torch

    from napari_tower.train.data import dsb_index, dsb_split, load_dsb_samples

    torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))
    train_rows, val_rows = dsb_split(dsb_index(root))
    if p["val_per_modality"]:
        val_rows = [r for m in MODALITIES for r in [r for r in val_rows if r["modality"] == m][: p["val_per_modality"]]]
    val_samples = load_dsb_samples(root, val_rows)
    counts = {m: sum(r["modality"] == m for r in val_rows) for m in MODALITIES}
    inits = [i.strip() for i in args.inits.split(",") if i.strip()]
    json_path = Path(args.json)
    work = Path(args.work) if args.work else json_path.parent / "ssl_comparison_models"
    state = json.loads(json_path.read_text()) if args.resume and json_path.is_file() else {}
    # seeds and fractions only choose which runs to do: more of them add to the finished runs
    def run_settings(profile: dict) -> dict:
        return {k: v for k, v in profile.items() if k not in ("seeds", "fractions", "ablation_fractions")}

    if run_settings(state.get("profile", {})) != run_settings(p):
        state = {"profile": p, "pretraining": {}, "runs": [], "commands": []}
    state["profile"] = p
    state.setdefault("commands", [])
    command = "python -m benchmarks.ssl_comparison " + shlex.join(argv if argv is not None else sys.argv[1:])
    if command not in state["commands"]:
        state["commands"].append(command)

    def save():
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(state, indent=1))

    if args.pretrained_from:
        earlier = json.loads(Path(args.pretrained_from).read_text())
        same = all(earlier["profile"].get(k) == p[k] for k in ("pretrain_steps", "pretrain_crop", "pretrain_batch"))
        if not same:
            raise SystemExit(f"{args.pretrained_from} pretrained with other settings: {earlier['profile']}")
        state["pretraining"] = {**earlier["pretraining"], **state["pretraining"]}
    images = [str(root / "images" / f"{r['id']}.png") for r in train_rows]
    for init in inits:
        if init == "none" or init in state["pretraining"] or init in PARTIAL:
            continue
        cmd = pretrain_command(init, images, work / init, p, args.device, args.pretrain_workers)
        log(f"pretraining {init}: {p['pretrain_steps']} steps")
        state["pretraining"][init] = run_pretraining(cmd)
        log(f"  {state['pretraining'][init]['seconds']:.0f} s, peak {state['pretraining'][init]['peak_rss_mb']:.0f} MB")
        save()

    if args.pretrain_only:
        log(f"pretraining done: {json_path}, models in {work}")
        return 0
    fracs = [float(f) for f in p["fractions"].split(",")]
    seeds = dict(zip(fracs, [int(s) for s in p["seeds"].split(",")]))
    abl_fracs = {float(f) for f in p["ablation_fractions"].split(",") if f}
    done = {(r["init"], r["fraction"], r["seed"]) for r in state["runs"]}
    cache: dict[tuple, list] = {}
    for frac in fracs:
        for seed in range(seeds[frac]):
            key = (frac, seed)
            for init in inits:
                if init in ABLATIONS and frac not in abl_fracs or (init, frac, seed) in done:
                    continue
                if key not in cache:
                    cache.clear()
                    cache[key] = load_dsb_samples(root, draw_fraction(train_rows, frac, seed))
                t0 = time.perf_counter()
                r = finetune_and_score(init, work, cache[key], val_samples, p, seed, p["head_warmup"])
                r.update(init=init, fraction=frac, seed=seed, n_images=len(cache[key]))
                state["runs"].append(r)
                save()
                log(f"{init:>17} {frac:g} seed {seed}: Dice {r['dice']:.3f} AP {r['ap50']:.3f} "
                    f"({time.perf_counter() - t0:.0f} s)")

    mach = machine()
    info = {
        "n_train": len(train_rows), "n_val": len(val_rows),
        "val_desc": ", ".join(f"{n} {m}" for m, n in counts.items()),
        "machine": f"{mach['cpu']}, {mach['usable_cpus']} CPUs, torch {mach['torch']}",
        "command": "\n".join(state["commands"]),
    }
    agg = aggregate(state["runs"])
    plot_rel = None
    if args.plot:
        plot(agg, fracs, Path(args.plot))
        if args.out:
            plot_rel = os.path.relpath(Path(args.plot), Path(args.out).parent)
    section = render(agg, state["pretraining"], p, args, info, plot_rel, state["runs"])
    print(section)
    if args.out:
        write_section(Path(args.out), section, args.tag)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
