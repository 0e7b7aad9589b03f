"""Classical baseline for the segmentation benchmark: Gaussian + Otsu + distance-transform watershed.

The input is turned into one channel exactly as napari-tower does it
(``to_single_channel`` with ``rgb = image.ndim == 3``, then ``percentile_normalize``), so
the baseline and the network see the same grayscale image (the hematoxylin channel for
stained histology). Then:

1. Gaussian blur, sigma 1;
2. Otsu threshold -> foreground mask; if that mask covers more than half of the image
   the objects are dark on a bright background (brightfield), so the side below the
   threshold is taken instead (a polarity rule added to the plain recipe: without it the
   baseline scores 0 on every dsb2018 brightfield image; on all 504 dsb2018 images it
   flips exactly the 13 brightfield ones);
3. Euclidean distance transform of the mask;
4. seeds = ``skimage.feature.peak_local_max`` of the distance (min_distance 5, peaks
   searched per connected component of the mask);
5. watershed on -distance from the seeds, restricted to the mask (a component that got
   no seed keeps its own label);
6. objects smaller than 15 pixels are removed, labels renumbered 1..n.

Run as a script it segments one image file and prints the time of the call alone as
JSON; ``benchmarks.segmentation`` uses that to time it in a fresh process::

    python -m benchmarks.baselines IMAGE [-o LABELS.tif]
"""
from __future__ import annotations

import numpy as np

METHOD = "Gaussian + Otsu + distance-transform watershed"


def classical_segment(image, sigma: float = 1.0, min_distance: int = 5, min_size: int = 15) -> np.ndarray:
    """Instance labels (int32, 0 = background) for a 2D gray image or an RGB(A) image (Y, X, 3|4)."""
    from scipy import ndimage as ndi
    from skimage.filters import threshold_otsu

    from napari_tower.io.normalize import percentile_normalize, to_single_channel

    img = np.asarray(image)
    if img.ndim not in (2, 3):
        raise ValueError(f"classical_segment takes a 2D or RGB image, got shape {img.shape}")
    x = percentile_normalize(to_single_channel(img, rgb=img.ndim == 3))
    x = ndi.gaussian_filter(x, sigma)
    if float(x.max()) - float(x.min()) < 1e-6:
        return np.zeros(x.shape, np.int32)
    t = threshold_otsu(x)
    mask = x > t
    if mask.mean() > 0.5:  # dark objects on a bright background
        mask = x < t
    return distance_watershed(mask, min_distance, min_size)


def distance_watershed(mask: np.ndarray, min_distance: int = 5, min_size: int = 15) -> np.ndarray:
    """Steps 3-6 above on a foreground mask of any dimension (2D images, 3D stacks)."""
    from scipy import ndimage as ndi
    from skimage.feature import peak_local_max
    from skimage.segmentation import relabel_sequential, watershed

    components, n_comp = ndi.label(mask)
    if n_comp == 0:
        return np.zeros(mask.shape, np.int32)
    dist = ndi.distance_transform_edt(mask)
    peaks = peak_local_max(dist, min_distance=min_distance, labels=components, exclude_border=False)
    markers = np.zeros(mask.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1, dtype=np.int32)
    labels = watershed(-dist, markers, mask=mask).astype(np.int32)
    # components without any seed would stay 0: give them their own labels
    orphan = mask & (labels == 0)
    if orphan.any():
        labels[orphan] = components[orphan] + len(peaks)
    sizes = np.bincount(labels.ravel())
    small = sizes < min_size
    small[0] = False
    labels[small[labels]] = 0
    return relabel_sequential(labels)[0].astype(np.int32)


def _main(argv=None) -> int:
    import argparse
    import json
    import time
    from pathlib import Path

    ap = argparse.ArgumentParser(prog="python -m benchmarks.baselines", description=f"{METHOD} on one image")
    ap.add_argument("image", help="image file (read with napari_tower.io.files.read_image, like the CLI)")
    ap.add_argument("-o", "--output", default=None, help="write the labels here (tif), like the CLI does")
    args = ap.parse_args(argv)

    from napari_tower.io.files import read_image, write_labels

    image, _ = read_image(args.image)
    t0 = time.perf_counter()
    labels = classical_segment(image)
    seconds = time.perf_counter() - t0
    if args.output:
        write_labels(Path(args.output), labels.astype(np.uint32 if labels.max() > 65535 else np.uint16))
    print(json.dumps({"call_seconds": seconds, "objects": int(labels.max()), "shape": list(image.shape)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
