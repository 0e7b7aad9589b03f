"""``base="auto"`` for fine-tuning: start from the bundled model that already segments the
user's annotations best.

Fine-tuning from a base that knows the objects (nuclei or whole cells) converges in the
minutes a user waits; from one that does not, the first minutes go to unlearning. The user's
own annotated planes say which fits: each bundled segmentation model segments them as they
are (no training), and the one with the highest foreground Dice + AP@0.5 is the base, unless
it beats ``default`` by less than a small margin. A few seconds on CPU for a few planes.
"""
from __future__ import annotations

CANDIDATES = ("default", "nuclei-fluo", "cells")
GENERAL = "default"
# a specialist must beat the general model clearly: on a small nuclei crop all three score
# within 0.02 (1.67-1.68), on whole cells the cells model leads by far more
MARGIN = 0.05
MAX_PLANES = 4


def choose_base(samples, device) -> tuple[str, dict[str, float]]:
    """(name, {name: Dice + AP@0.5 on the annotated planes}) over the installed candidates."""
    from ..model.network import add_flow_maps
    from ..model.weights import available_models, load_network
    from .trainer import evaluate

    installed = available_models()
    planes = samples[:MAX_PLANES]
    scores = {}
    for name in CANDIDATES:
        if name not in installed:
            continue
        net, _ = load_network(installed[name])
        m = evaluate(add_flow_maps(net).to(device), planes, device)
        scores[name] = round(m["dice"] + m["ap50"], 4)
    if not scores:
        return "none", {}
    best = max(scores, key=scores.get)
    if GENERAL in scores and scores[best] < scores[GENERAL] + MARGIN:
        best = GENERAL
    return best, scores
