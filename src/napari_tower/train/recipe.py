"""Train a bundled model from a recipe, over as many sessions as it takes.

    python -m napari_tower.train.recipe nuclei --data-root ../shared/data \
        --run-dir runs/nuclei --candidate candidates/nuclei [--resume] [--max-minutes M]

- Every ``checkpoint_minutes`` (and on SIGTERM/SIGINT, and at the end) the complete state is
  written atomically to ``RUN_DIR/state.pt``: weights, optimizer, step, sampler and torch RNG,
  the loss window, best score and hours so far. ``--resume`` continues from it exactly.
- Each validation appends per-group AP@0.5 / Dice to ``RUN_DIR/log.csv`` (loss and learning
  rate every 50 steps too); the best checkpoint by validation alone goes to ``CANDIDATE``
  (safetensors + card + log), small enough to commit. On a new machine without the state,
  ``--resume`` warm-restarts from the candidate at its step (fresh optimizer moments).
"""
from __future__ import annotations

import argparse
import copy
import csv
import json
import os
import platform
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..io.noise import LEARNED
from ..metrics import average_precision, dice
from ..model.network import ArchConfig, TowerNet, add_flow_maps, count_parameters, head_names
from ..model.weights import load_network, resolve_model_dir, save_model
from .losses import seg_loss
from .recipe_spec import Recipe, ValItem, load_recipe
from .recipe_data import data_credits, load_recipe_data
from .sampling import RecipeSampler

ARCHS = {
    "unet": dict(widths=(12, 24, 48, 96, 192)),
    "fast": dict(widths=(16, 32, 64, 128, 256), stem_stride=2, decoder="light", refine_width=8),
}
LOG_EVERY = 50


def atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".part")
    torch.save(obj, tmp)
    os.replace(tmp, path)  # a run killed mid-write leaves the previous state intact


class _EvalModel:
    """What ``predict.segment.plane_labels`` needs of a model, around a network in training."""

    def __init__(self, net: TowerNet, device: torch.device):
        self.net, self.device = net, device

    def predict_maps(self, image, tile=1024, overlap=64, precision="auto", should_stop=None):
        from ..predict.tiling import predict_maps

        return predict_maps(self.net, image, self.device, tile, overlap, precision, self.net.cfg.divisor, should_stop)


def validate(net: TowerNet, items: list[ValItem], recipe: Recipe, device: torch.device) -> dict[str, float]:
    """Per-group mean AP@0.5 and Dice through the product's own 2D path (normalisation,
    scale="auto", the recipe's post-processing), on the raw validation images."""
    from ..config import PredictConfig
    from ..predict.segment import plane_labels

    cfg = PredictConfig(**recipe.postprocess)
    model = _EvalModel(net, device)
    net.eval()
    per: dict[str, list[tuple[float, float]]] = {}
    with torch.inference_mode():
        for v in items:
            pred = plane_labels(model, v.image, v.rgb, cfg)
            per.setdefault(v.group, []).append((average_precision(pred, v.labels), dice(pred, v.labels)))
    out = {}
    for g, vals in sorted(per.items()):
        out[f"ap50_{g}"] = float(np.mean([a for a, _ in vals]))
        out[f"dice_{g}"] = float(np.mean([d for _, d in vals]))
    groups = recipe.validation.select_on or sorted(per)
    out["score"] = float(np.mean([out[f"ap50_{g}"] for g in groups]))
    return out


class WeightAverage:
    """Exponential moving average of a network's weights and BatchNorm statistics."""

    def __init__(self, net: TowerNet, decay: float):
        self.decay = decay
        self.net = copy.deepcopy(net).eval()
        for p in self.net.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, net: TowerNet) -> None:
        for avg, cur in zip(self.net.state_dict().values(), net.state_dict().values()):
            if avg.dtype.is_floating_point:
                avg.lerp_(cur, 1.0 - self.decay)
            else:
                avg.copy_(cur)


def lr_at(step: int, recipe: Recipe, restarted_at: int | None = None, anneal: dict | None = None) -> float:
    """Warmup, then cosine decay; ``restarted_at``: a warm restart warms up again from there.

    ``anneal`` ({"start", "steps", "lr"}): from ``start`` the rate falls from ``lr`` to the
    floor over ``steps`` (cosine) instead: a run that stops part-way through the long schedule
    can end on a low rate (``--anneal``)."""
    s = recipe.schedule
    if anneal is not None and step >= anneal["start"]:
        frac = min(1.0, (step - anneal["start"]) / max(1, anneal["steps"]))
        f = max(s.min_lr_fraction, anneal["lr"] / s.lr * 0.5 * (1 + np.cos(np.pi * frac)))
    elif step < s.warmup_steps:
        f = (step + 1) / s.warmup_steps
    else:
        frac = min(1.0, (step - s.warmup_steps) / max(1, s.steps - s.warmup_steps))
        f = 0.5 * (1 + np.cos(np.pi * frac))
    f = max(f, s.min_lr_fraction)
    if restarted_at is not None and 0 <= step - restarted_at < s.warmup_steps:
        # fresh Adam moments make the first steps ~lr in every weight at once: the warm
        # restart of session 18 at full rate was followed by 20k steps below its start
        # (nuclei low light 10 photons 0.76 -> 0.63-0.71)
        f *= (step - restarted_at + 1) / s.warmup_steps
    return s.lr * f


def build_network(recipe: Recipe) -> TowerNet:
    if recipe.base == "none":
        net = TowerNet(ArchConfig(**ARCHS[recipe.arch]))
    else:
        net, _ = load_network(resolve_model_dir(recipe.base))
    return add_flow_maps(net)


class Log:
    def __init__(self, path: Path, groups: list[str]):
        self.path = path
        self.fields = ["step", "wall_hours", "cpu_hours", "loss", "lr", "score"] + [
            f"{m}_{g}" for g in groups for m in ("ap50", "dice")]
        if not path.exists():
            with open(path, "w", newline="") as f:
                csv.writer(f).writerow(self.fields)

    def write(self, row: dict) -> None:
        with open(self.path, "a", newline="") as f:
            csv.writer(f).writerow([("" if row.get(k) is None else (f"{row[k]:.5g}" if isinstance(row[k], float) else row[k]))
                                    for k in self.fields])


def make_card(recipe: Recipe, net: TowerNet, metrics: dict, state: dict, argv: list[str]) -> dict:
    from ..config import PostprocessConfig

    post = {**PostprocessConfig().model_dump(), **recipe.postprocess}
    return {
        "name": recipe.name,
        "description": recipe.description,
        "task": recipe.task,
        "heads": head_names(net),
        "input": {"channels": 1, "normalization": "percentile 1-99.8", "rgb": "hematoxylin (rgb2hed) unless gray",
                  # denoise="auto" leaves the smoothing to a model that learned photon noise (io.noise)
                  **({"photon_noise": LEARNED} if recipe.augment.photon_noise > 0 else {})},
        "postprocess": post,
        "parameters": count_parameters(net),
        "training": {
            "command": "python -m napari_tower.train.recipe " + " ".join(argv),
            "data": data_credits([src.kind for src in recipe.sources], recipe.base),
            "recipe": json.loads(recipe.model_dump_json()),
            "base": recipe.base,
            "steps": state["step"],
            "wall_hours": round(state["wall_seconds"] / 3600, 3),
            "cpu_hours": round(state["cpu_seconds"] / 3600, 3),
            "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
            "torch": torch.__version__,
            "selection": "best mean validation AP@0.5 over "
                         + (", ".join(recipe.validation.select_on) or "all validation groups"),
        },
        "metrics": {"validation": metrics},
    }


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog="python -m napari_tower.train.recipe", description=__doc__.splitlines()[0])
    ap.add_argument("recipe", help="a recipe name (train/recipes/NAME.yaml) or a YAML path")
    ap.add_argument("--data-root", type=Path, required=True, help="folder holding dsb2018/, polyp_nuclei/, bbbc030/")
    ap.add_argument("--run-dir", type=Path, required=True, help="full state and log (keep it out of git)")
    ap.add_argument("--candidate", type=Path, required=True, help="best-by-validation weights, card and log")
    ap.add_argument("--resume", action="store_true", help="continue from RUN_DIR/state.pt (or warm-restart from CANDIDATE)")
    ap.add_argument("--max-minutes", type=float, default=None, help="stop (with a saved state) after this long")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: the recipe's)")
    ap.add_argument("--stop-after-steps", type=int, default=None, help="stop (with a saved state) after this many steps in this run")
    ap.add_argument("--anneal", type=int, default=None, metavar="STEPS",
                    help="from where the run stands, bring the learning rate down to its floor over STEPS steps and "
                         "stop there (run it on a copy of RUN_DIR, or from the candidate, to keep the long run)")
    ap.add_argument("--anneal-lr", type=float, default=None,
                    help="the rate the anneal starts from (default: the schedule's rate at that step)")
    args = ap.parse_args(argv)
    if (args.anneal is not None and args.anneal < 1) or (args.anneal_lr is not None and args.anneal_lr <= 0):
        ap.error("--anneal takes a number of steps >= 1 and --anneal-lr a rate > 0")
    recipe = load_recipe(args.recipe)
    torch.set_num_threads(args.threads or recipe.threads)
    args.run_dir.mkdir(parents=True, exist_ok=True)
    state_path = args.run_dir / "state.pt"
    if state_path.exists() and not args.resume:
        print(f"{state_path} exists: pass --resume to continue it, or choose another --run-dir", file=sys.stderr)
        return 2
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    t_load = time.time()
    samples, val_items = load_recipe_data(recipe, args.data_root)
    groups = sorted({v.group for v in val_items})
    print(f"{recipe.name}: {len(samples)} training images, {len(val_items)} validation items in {groups} "
          f"({time.time() - t_load:.0f} s)", file=sys.stderr, flush=True)
    sampler = RecipeSampler(samples, recipe.group_weights, recipe.augment, recipe.schedule.crop,
                            tuple(recipe.schedule.scale_range), recipe.seed)
    torch.manual_seed(recipe.seed)  # before the network: a fresh one's initial weights come from it
    net = build_network(recipe).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=recipe.schedule.lr, weight_decay=recipe.schedule.weight_decay)
    state = {"step": 0, "wall_seconds": 0.0, "cpu_seconds": 0.0, "best_score": None, "best_step": None, "losses": []}
    saved = None
    if state_path.exists():
        saved = torch.load(state_path, map_location=device, weights_only=False)  # our own file, never a user's
        net.load_state_dict(saved["net"])
        opt.load_state_dict(saved["opt"])
        sampler.load_state_dict(saved["sampler"])
        torch.set_rng_state(saved["torch_rng"])
        state = saved["state"]
        print(f"resumed at step {state['step']} ({state['cpu_seconds'] / 3600:.2f} CPU-hours so far)", file=sys.stderr)
    elif args.resume and (args.candidate / "card.json").exists():
        cand, card = load_network(args.candidate)
        net.load_state_dict(cand.state_dict())
        tr = card["training"]
        state.update(step=tr["steps"], wall_seconds=tr["wall_hours"] * 3600, cpu_seconds=tr["cpu_hours"] * 3600,
                     best_score=card["metrics"]["validation"].get("score"), best_step=tr["steps"],
                     restarted_at=tr["steps"])
        sampler.rng = np.random.default_rng([recipe.seed, tr["steps"]])
        if (args.candidate / "log.csv").exists() and not (args.run_dir / "log.csv").exists():
            (args.run_dir / "log.csv").write_bytes((args.candidate / "log.csv").read_bytes())
        print(f"warm restart from {args.candidate} at step {state['step']} (optimizer state is new)", file=sys.stderr)
    if args.anneal and "anneal" not in state:
        lr0 = args.anneal_lr or lr_at(state["step"], recipe)
        state["anneal"] = {"start": state["step"], "steps": args.anneal, "lr": lr0}
        print(f"annealing from lr {lr0:.2e} over {args.anneal} steps", file=sys.stderr)
    end = state["anneal"]["start"] + state["anneal"]["steps"] if "anneal" in state else recipe.schedule.steps
    # the average starts from the weights as they are when a state predates it
    avg = WeightAverage(net, recipe.schedule.ema_decay) if recipe.schedule.ema_decay > 0 else None
    if avg is not None and saved is not None and "ema" in saved:
        avg.net.load_state_dict(saved["ema"])
    shipped = avg.net if avg is not None else net  # what validation scores and the candidate holds
    log = Log(args.run_dir / "log.csv", groups)
    stop = {"now": False}

    def on_signal(signum, frame):
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    t_wall, t_cpu = time.time(), time.process_time()
    base_wall, base_cpu = state["wall_seconds"], state["cpu_seconds"]
    last_ckpt = time.time()
    deadline = time.time() + args.max_minutes * 60 if args.max_minutes else None
    last_step = state["step"] + args.stop_after_steps if args.stop_after_steps else None

    def clock():
        state["wall_seconds"] = base_wall + time.time() - t_wall
        state["cpu_seconds"] = base_cpu + time.process_time() - t_cpu

    def save_state():
        clock()
        atomic_save({"net": net.state_dict(), "opt": opt.state_dict(), "sampler": sampler.state_dict(),
                     "torch_rng": torch.get_rng_state(), "state": state,
                     **({"ema": avg.net.state_dict()} if avg is not None else {}),
                     "recipe": json.loads(recipe.model_dump_json())}, state_path)

    def run_validation():
        if not val_items:
            return
        clock()
        m = validate(shipped, val_items, recipe, device)
        row = {"step": state["step"], "wall_hours": state["wall_seconds"] / 3600,
               "cpu_hours": state["cpu_seconds"] / 3600, **m}
        log.write(row)
        print(f"[{state['step']}] validation " + " ".join(f"{k}={v:.3f}" for k, v in m.items() if k.startswith(("ap50", "score"))),
              file=sys.stderr, flush=True)
        if state["best_score"] is None or m["score"] > state["best_score"]:
            state["best_score"], state["best_step"] = m["score"], state["step"]
            save_model(shipped, args.candidate, make_card(recipe, shipped, m, state, argv))
            (args.candidate / "log.csv").write_bytes(log.path.read_bytes())
            print(f"  best so far: saved to {args.candidate}", file=sys.stderr, flush=True)

    if state["step"] == 0:
        run_validation()  # the base model's scores: the first row of the curve
    net.to(memory_format=torch.channels_last)
    while state["step"] < end and not stop["now"]:
        net.train()
        for g in opt.param_groups:
            g["lr"] = lr_at(state["step"], recipe, state.get("restarted_at"), state.get("anneal"))
        x, y, v = sampler.batch(recipe.schedule.batch_size)
        x = x.to(device).contiguous(memory_format=torch.channels_last)
        loss = seg_loss(net(x), y.to(device), v.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if avg is not None:
            avg.update(net)
        state["step"] += 1
        state["losses"].append(float(loss.item()))
        if state["step"] % LOG_EVERY == 0:
            clock()
            log.write({"step": state["step"], "wall_hours": state["wall_seconds"] / 3600,
                       "cpu_hours": state["cpu_seconds"] / 3600, "loss": float(np.mean(state["losses"])),
                       "lr": lr_at(state["step"] - 1, recipe, state.get("restarted_at"), state.get("anneal"))})
            state["losses"] = []
        if state["step"] % recipe.validation.every_steps == 0 or state["step"] == end:
            run_validation()
        if time.time() - last_ckpt > recipe.checkpoint_minutes * 60:
            save_state()
            last_ckpt = time.time()
        if (deadline is not None and time.time() > deadline) or state["step"] == last_step:
            break
    save_state()
    print(f"stopped at step {state['step']} of {end}; best step {state['best_step']} "
          f"score {state['best_score']}; state in {state_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
