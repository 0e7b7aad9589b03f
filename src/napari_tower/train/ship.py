"""Install a trained candidate as a bundled model (a developer step, run from a checkout).

    python -m napari_tower.train.ship candidates/nuclei nuclei-fluo [--replaces nuclei-fluo]

Copies the candidate's weights and card into ``src/napari_tower/models/NAME`` (the log stays
behind: it is for docs/benchmarks/training.md), with the card renamed to NAME and marked
with what the training simulated, and records which bundled model it replaced. The decision
to ship is made before, on validation alone: a candidate replaces a bundled model only when
it is no worse on any validation group (docs/benchmarks/training.md).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import shutil
import sys
from pathlib import Path

from ..io.noise import LEARNED
from ..model.weights import BUNDLED_DIR, CARD, WEIGHTS, load_network


def ship(candidate: Path, name: str, replaces: str | None = None) -> Path:
    load_network(candidate)  # refuses weights that do not match the card's sha256
    card = json.loads((candidate / CARD).read_text())
    card["name"] = name
    augment = ((card.get("training") or {}).get("recipe") or {}).get("augment") or {}
    if augment.get("photon_noise", 0) > 0:  # older cards of the recipe did not say so in "input"
        card.setdefault("input", {})["photon_noise"] = LEARNED
    tr = card.setdefault("training", {})
    from .recipe_data import data_credits

    recipe = tr.get("recipe") or {}
    # older recipe cards lacked the credits, and older still the base model's data
    tr["data"] = data_credits([s.get("kind") for s in recipe.get("sources") or []],
                              tr.get("base") or recipe.get("base"), tr.get("data") or ())
    card["shipped"] = {"date": _dt.date.today().isoformat(), "from": str(candidate), "replaces": replaces}
    dest = BUNDLED_DIR / name
    tmp = BUNDLED_DIR / (name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shutil.copy2(candidate / WEIGHTS, tmp / WEIGHTS)
    (tmp / CARD).write_text(json.dumps(card, indent=2) + "\n")
    old = BUNDLED_DIR / (name + ".old")
    if dest.exists():
        shutil.rmtree(old, ignore_errors=True)
        dest.rename(old)
    tmp.rename(dest)
    shutil.rmtree(old, ignore_errors=True)
    return dest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m napari_tower.train.ship", description=__doc__.splitlines()[0])
    ap.add_argument("candidate", type=Path, help="a candidate folder (weights.safetensors, card.json)")
    ap.add_argument("name", help="the bundled model's name (a folder under src/napari_tower/models)")
    ap.add_argument("--replaces", default=None, help="the bundled model it replaces, for the card")
    args = ap.parse_args(argv)
    print(ship(args.candidate, args.name, args.replaces), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
