"""The README.md inside an exported bioimage.io package: what the maps are and how to get instances."""
from __future__ import annotations

import json


def documentation(card: dict, name: str, description: str, n_channels: int) -> str:
    from ..versioning import __version__

    post = card.get("postprocess", {})
    method = post.get("method", "watershed")
    training = card.get("training", {})
    flows = n_channels >= 5
    lines = [
        f"# {name}",
        "",
        description,
        "",
        f"Exported by napari-tower {__version__}. The network is TOWER's residual CNN encoder with a U-Net "
        "decoder (Chen, Li, Chen, Luo, arXiv:2211.14715).",
        "",
        "## Input",
        "",
        "One gray channel, any size whose sides are multiples of the step in `rdf.yaml`. The package's "
        "preprocessing maps the 1st..99.8th percentiles of each image to 0..1 (no clipping), as napari-tower "
        "does. RGB stains (H&E) are converted to their hematoxylin channel first in napari-tower "
        "(`skimage.color.rgb2hed`); do the same before running this package on a stain.",
        "",
        "## Output: maps, not instances",
        "",
        "Channels of the `maps` output, per pixel:",
        "",
        "1. `foreground`: probability of being inside an object;",
        "2. `boundary`: probability of being on an object's edge;",
        "3. `centerness`: 0 at an object's edge, 1 at its centre (distance normalised per object);",
    ]
    if flows:
        lines += ["4-5. `flow_y`, `flow_x`: unit vectors pointing along the object towards its centre."]
    lines += [
        "",
        "bioimage.io has no instance post-processing for these maps. napari-tower turns them into labels:",
        "",
        "- **watershed** (for nuclei): foreground = `foreground > prob_threshold`; the centerness, smoothed "
        "(Gaussian, sigma 1 px), is flooded from each of its local peaks inside the foreground (watershed of "
        "`-centerness`); two neighbouring basins are merged when the lower peak stands less than `split_depth` "
        "above the pass between them (the result of h-maxima seeds). With `split_depth` 0, seeds are the regions "
        "where centerness > `seed_threshold`. Foreground left without a seed becomes objects of its own; "
        "objects under `min_size` pixels are removed.",
    ]
    if post.get("nonconvex_split_depth"):
        from ..predict.postprocess import SOLIDITY

        lines += ["- `nonconvex_split_depth`: objects made of several basins whose solidity (area over convex hull "
                  f"area) is under {SOLIDITY} are split again, with that shallower depth in place of `split_depth`."]
    if flows:
        lines += ["- **flows** (for irregular cells, as in cellpose): every foreground pixel follows the flow "
                  "field for a fixed number of steps; pixels that end at the same point form one object."]
    lines += [
        "",
        f"This model's settings (also in `rdf.yaml` under `config.napari_tower.postprocess`): method "
        f"**{method}**, `{json.dumps(post)}`. `scale: auto` means a second pass on the image resized so "
        "that objects under 14 or over 30 px across become ~20 px; a number is a fixed resize factor before the network.",
        "",
        "## Use it in napari-tower",
        "",
        "```bash",
        "napari-tower segment IMAGES -o OUTDIR --model this_package.zip",
        "```",
        "",
        "or choose the zip under *Segment with TOWER > or file* in napari. napari-tower reads the attached "
        "`weights.safetensors` and `card.json` (the model as it was saved, with its post-processing settings), "
        "so the labels are the same as with the model the package was exported from.",
        "",
        "## Validation",
        "",
        "`bioimageio test` on this package reproduces `test_output.npy` from `test_input.npy` with both weight "
        "formats (TorchScript, and the state dict with `tower_architecture.py`). napari-tower's own tests check "
        "that segmenting with this package gives the same labels as the model it was exported from.",
        "",
        "## Training",
        "",
    ]
    if training:
        for k in ("command", "data", "base", "n_train", "steps", "minutes"):
            if k in training:
                lines.append(f"- {k}: `{training[k]}`")
    else:
        lines.append("See `card.json`.")
    metrics = card.get("metrics")
    if metrics:
        lines += ["", "## Metrics recorded at training", "", "```json", json.dumps(metrics, indent=1)[:2000], "```"]
    lines += [
        "",
        "## Cite",
        "",
        "Chen, Li, Chen, Luo. A knowledge-based learning framework for self-supervised pre-training towards "
        "enhanced recognition of biomedical microscopy images. Neural Networks (2023). arXiv:2211.14715.",
        "",
    ]
    return "\n".join(lines)
