"""Per-image AP at scales 0.75/1/1.5/2 (and rotation averaging) with the median object diameter, on the
dsb2018 validation split: the data behind scale="auto" (predict/segment.py).

    python scripts/scale_sweep.py MODEL OUT.json   # MODEL: a name or directory, e.g. default
"""
import json, sys, time
from pathlib import Path
import numpy as np
import napari_tower
from napari_tower.config import PredictConfig
from napari_tower.metrics import average_precision, dice
from napari_tower.predict.segment import median_diameter as med_diam
from napari_tower.predict.segment import plane_labels
from napari_tower.train.data import dsb_index, dsb_split, read_dsb

root = Path('../shared/data/dsb2018'); _, val = dsb_split(dsb_index(root))
model = napari_tower.load_model(sys.argv[1], device='cpu')
out = []
t0 = time.time()
for r in val:
    img, true = read_dsb(root, r)
    if img.ndim == 3 and img.shape[-1] == 4: img = img[..., :3]
    rgb = img.ndim == 3
    rec = {'id': r['id'], 'mod': r['modality'], 'gt_diam': med_diam(true)}
    for s in (0.75, 1.0, 1.5, 2.0):
        p = plane_labels(model, img, rgb, PredictConfig(scale=s))
        rec[f'ap{s}'] = average_precision(p, true); rec[f'dice{s}'] = dice(p, true)
        if s == 1.0: rec['pred_diam'] = med_diam(p)
    p = plane_labels(model, img, rgb, PredictConfig(scale=1.0, tta=True))  # rotation averaging
    rec['ap_tta'] = average_precision(p, true); rec['dice_tta'] = dice(p, true)
    out.append(rec)
json.dump(out, open(sys.argv[2], 'w'), indent=1)
print('done', time.time() - t0)
for mod in ('fluorescence', 'histology', 'brightfield'):
    rs = [r for r in out if r['mod'] == mod]
    print(mod, len(rs), {k: round(float(np.mean([r[k] for r in rs])), 3) for k in rs[0] if k.startswith(('ap', 'dice'))})
