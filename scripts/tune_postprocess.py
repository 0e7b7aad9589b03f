"""Grid-search the post-processing thresholds of a model on the dsb2018 validation split.

    python scripts/tune_postprocess.py --data ../shared/data/dsb2018 --model DIR [--write]

Maps are predicted once per image; each (prob, seed) pair re-runs only the watershed.
Modalities are weighted equally. ``--write`` stores the best pair in the model card
(the weights, and so the sha256, are unchanged).
"""
from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np

import napari_tower
from napari_tower.io.normalize import percentile_normalize, to_single_channel
from napari_tower.metrics import average_precision, dice
from napari_tower.predict.postprocess import instances_from_maps
from napari_tower.train.data import dsb_index, dsb_split, read_dsb


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    model = napari_tower.load_model(args.model, "cpu")
    _, val = dsb_split(dsb_index(args.data))
    cache = []
    for r in val:
        img, truth = read_dsb(args.data, r)
        x = percentile_normalize(to_single_channel(img, rgb=img.ndim == 3))
        cache.append((r["modality"], model.predict_maps(x), truth))
    grid = list(itertools.product([0.4, 0.5, 0.6], [0.3, 0.4, 0.5, 0.6]))
    results = {}
    for prob, seed in grid:
        per = {}
        for mod, maps, truth in cache:
            lab = instances_from_maps(maps[0], maps[2], prob, seed, 15)
            per.setdefault(mod, []).append((dice(lab, truth), average_precision(lab, truth)))
        results[(prob, seed)] = {m: np.mean(v, axis=0).round(4).tolist() for m, v in per.items()}
        score = np.mean([v[1] for v in results[(prob, seed)].values()])
        print(f"prob={prob} seed={seed} meanAP={score:.4f} " + " ".join(f"{m}={v}" for m, v in results[(prob, seed)].items()))
    best = max(results, key=lambda k: np.mean([v[1] for v in results[k].values()]))
    print("best", best, results[best])
    if args.write:
        card_path = model.path / "card.json"
        card = json.loads(card_path.read_text())
        card["postprocess"].update(prob_threshold=best[0], seed_threshold=best[1])
        card["postprocess"]["tuned_on"] = "dsb2018 validation split, scripts/tune_postprocess.py"
        card["metrics"]["validation_with_these_thresholds"] = {
            m: {"dice": v[0], "ap50": v[1]} for m, v in results[best].items()}
        card_path.write_text(json.dumps(card, indent=2))


if __name__ == "__main__":
    main()
