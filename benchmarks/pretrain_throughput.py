"""Pretraining throughput and peak memory: TOWER, SimCLR and BYOL, with 0..N data workers.

Run from the repository root (any machine; on a GPU give ``--device cuda``)::

    python -m benchmarks.pretrain_throughput --images ../shared/data/dsb2018/images \\
        --device cpu --workers 0,1 --out docs/benchmarks/self-supervised.md

Each run is the user's command ``napari-tower pretrain --max-steps S --crop C --batch-size B
--workers W`` in its own process, so its peak RSS is its own; views/s counts both views of
every region per second of training (from the model card, start-up and image reading
excluded, the first steps' warm-up included). On CUDA the card also records the GPU and the
peak memory PyTorch allocated. Steps are few: this measures speed, not what is learned.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from pathlib import Path

from .common import log, machine, write_section
from .ssl_comparison import pretrain_command, run_pretraining

START = "<!-- pretrain-throughput:start -->"
END = "<!-- pretrain-throughput:end -->"


def run_one(images: list[str], method: str, workers: int, args, out: Path) -> dict:
    """One pretraining process (the SSL comparison's command and measurement), as a table row."""
    p = {"pretrain_steps": args.steps, "pretrain_crop": args.crop, "pretrain_batch": args.batch_size}
    r = run_pretraining(pretrain_command(method, images, out, p, args.device, workers))
    return {
        "method": method, "workers": workers, "steps": args.steps, "train_s": r["train_seconds"],
        "views_per_s": args.steps * args.batch_size * 2 / r["train_seconds"], "process_s": r["seconds"],
        "peak_rss_mb": r["peak_rss_mb"], "device": r["device"], "gpu": r.get("gpu"), "peak_gpu_mb": r.get("peak_gpu_mb"),
    }


def render(rows: list[dict], args, command: str) -> str:
    mach = machine()
    gpu = next((r["gpu"] for r in rows if r.get("gpu")), None)
    lines = [
        f"## Pretraining throughput ({gpu or 'CPU'})", "",
        f"{args.steps} steps of batch {args.batch_size} x 2 views at crop {args.crop} per run, device `{args.device}`"
        + (f" ({gpu})" if gpu else "") + f". Machine: {mach['cpu']}, {mach['usable_cpus']} CPUs, torch {mach['torch']}.",
        "", "```", command, "```", "",
        "| method | data workers | views/s | training s | process s | peak RSS (MB) |" + (" peak GPU memory (MB) |" if gpu else ""),
        "|---|---|---|---|---|---|" + ("---|" if gpu else ""),
    ]
    for r in rows:
        row = (f"| {r['method']} | {r['workers']} | {r['views_per_s']:.0f} | {r['train_s']:.1f} | {r['process_s']:.1f} | "
               f"{r['peak_rss_mb']:.0f} |")
        if gpu:
            row += f" {r['peak_gpu_mb']:.0f} |"
        lines.append(row)
    lines += ["", "Peak RSS is the main process's (the data workers are separate processes)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.pretrain_throughput", description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", nargs="+", default=["../shared/data/dsb2018/images"], help="files or folders (default: %(default)s)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda", "mps"])
    ap.add_argument("--methods", default="tower,simclr,byol")
    ap.add_argument("--workers", default="0", help="comma-separated data worker counts (default: %(default)s)")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--json", default=None, help="write the raw rows here too")
    ap.add_argument("--out", default=None, help="markdown file to write the section into (default: print only)")
    args = ap.parse_args(argv)
    missing = [p for p in args.images if not Path(p).exists()]
    if missing:
        print(f"no images at {missing[0]}: nothing to benchmark", file=sys.stderr)
        return 2
    command = "python -m benchmarks.pretrain_throughput " + shlex.join(argv if argv is not None else sys.argv[1:])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for method in args.methods.split(","):
            for w in (int(x) for x in args.workers.split(",")):
                r = run_one(args.images, method, w, args, Path(tmp) / f"{method}-{w}")
                log(f"{method} workers {w}: {r['views_per_s']:.0f} views/s, peak RSS {r['peak_rss_mb']:.0f} MB")
                rows.append(r)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    section = render(rows, args, command)
    print(section)
    if args.out:
        tag = f"-{args.device}"
        write_section(Path(args.out), section, start=START.replace(":start", f"{tag}:start"), end=END.replace(":end", f"{tag}:end"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
