"""Training curves of a recipe run: loss and validation AP@0.5 per group against CPU-hours.

    python -m benchmarks.training_curves runs/nuclei/log.csv [candidates/cells/log.csv ...] \
        --out docs/results/training_curves.png

Reads the CSV logs that ``python -m napari_tower.train.recipe`` writes (a candidate folder holds
a copy of its run's log up to its best checkpoint); needs matplotlib (the ``benchmarks`` extra).
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path


def read_log(path: Path) -> tuple[list[dict], list[dict]]:
    """(loss rows, validation rows) with floats; empty cells left out."""
    with open(path) as f:
        rows = [{k: float(v) for k, v in r.items() if v not in ("", None)} for r in csv.DictReader(f)]
    return [r for r in rows if "loss" in r], [r for r in rows if "score" in r]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.training_curves", description=__doc__.splitlines()[0])
    ap.add_argument("logs", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(args.logs), 2, figsize=(11, 3.4 * len(args.logs)), squeeze=False)
    for (ax_loss, ax_ap), path in zip(axes, args.logs):
        losses, vals = read_log(path)
        name = path.parent.name if path.name == "log.csv" else path.stem  # a run folder, or a kept copy of its log
        ax_loss.plot([r["cpu_hours"] for r in losses], [r["loss"] for r in losses], lw=0.8)
        ax_loss.set(title=f"{name}: training loss", xlabel="CPU-hours", ylabel="loss")
        groups = sorted({k[5:] for r in vals for k in r if k.startswith("ap50_")})
        for g in groups:
            pts = [(r["cpu_hours"], r[f"ap50_{g}"]) for r in vals if f"ap50_{g}" in r]
            ax_ap.plot(*zip(*pts), marker="o", ms=3, label=g)
        ax_ap.set(title=f"{name}: validation AP@0.5", xlabel="CPU-hours", ylabel="AP@0.5", ylim=(0, 1))
        ax_ap.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
