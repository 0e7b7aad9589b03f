#!/usr/bin/env bash
# Set up, then segment the bundled sample image with the bundled model that suits it (--model auto).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
sample=$(.venv/bin/python -c "from napari_tower._sample_data import DATA; print(DATA / 'nuclei_image.tif')")
.venv/bin/napari-tower segment "$sample" -o tower-output
.venv/bin/python - <<'PY'
import tifffile
from napari_tower._sample_data import sample_labels
from napari_tower.metrics import average_precision, dice
pred = tifffile.imread("tower-output/nuclei_image.tif")
truth = sample_labels()
print(f"tower-output/nuclei_image.tif: {pred.max()} nuclei; vs ground truth: Dice {dice(pred, truth):.3f}, AP@0.5 {average_precision(pred, truth):.3f}")
PY
echo "Open it in napari:  .venv/bin/napari $sample tower-output/nuclei_image.tif"
