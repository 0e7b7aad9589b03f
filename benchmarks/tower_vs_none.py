"""Quick check: fine-tune from none vs tower on 2 dsb2018 training images of one modality, score
6 validation images.  python -m benchmarks.tower_vs_none histology 1 none tower"""
import numpy as np, napari_tower, tempfile, sys
from pathlib import Path
from napari_tower.metrics import *
from napari_tower.train.data import *
root=Path('../shared/data/dsb2018'); tr,val=dsb_split(dsb_index(root))
mod=sys.argv[1]; minutes=float(sys.argv[2])
rng=np.random.default_rng(0)
trm=[r for r in tr if r['modality']==mod]; pick=[trm[i] for i in rng.choice(len(trm),2,replace=False)]
imgs,labs=zip(*[read_dsb(root,r) for r in pick])
vals=[read_dsb(root,r) for r in val if r['modality']==mod][:6]
def score(model):
    s=[(dice(p:=napari_tower.segment(i,model=model),t), average_precision(p,t)) for i,t in vals]
    return np.round(np.mean(s,0),3)
for base in sys.argv[3:]:
    with tempfile.TemporaryDirectory() as d:
        out=napari_tower.finetune(list(imgs),list(labs),base=base,max_minutes=minutes,seed=0,device='cpu',output=Path(d)/'m')
        print(mod, 'base',base, minutes,'min', 'Dice, AP50 =', score(out), flush=True)
