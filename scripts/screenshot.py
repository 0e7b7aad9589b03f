"""Screenshots of the widgets from real runs (run under Xvfb: xvfb-run -s '-screen 0 1600x1000x24').

    python scripts/screenshot.py segment docs/screenshot_segment.png
    python scripts/screenshot.py finetune docs/screenshot_finetune.png [--minutes 1]
    python scripts/screenshot.py pretrain OUT.png [--minutes 1]   # continues 'tower' on the sample
    python scripts/screenshot.py sharing docs/screenshot_sharing.png  # export for bioimage.io, segment from the zip
    python scripts/screenshot.py cells docs/screenshot_cells.png  # whole cells: the result's warning
"""
from __future__ import annotations

import argparse



def wait_for(worker, app):
    done = []
    worker.finished.connect(lambda: done.append(1))
    while not done:
        app.processEvents()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("which", choices=["segment", "finetune", "pretrain", "sharing", "cells"])
    ap.add_argument("out")
    ap.add_argument("--minutes", type=float, default=1.0)
    args = ap.parse_args()
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_tower._sample_data import sample_image, sample_labels
    from napari_tower._widgets.finetune_widget import FinetuneWidget
    from napari_tower._widgets.segment_widget import SegmentWidget

    viewer = napari.Viewer(title="napari-tower")
    viewer.window._qt_window.resize(1500, 950)
    app = QApplication.instance()
    if args.which == "cells":
        from napari_tower._sample_data import cells_movie

        viewer.add_image(cells_movie(), name="cells", axis_labels=("t", "y", "x"))  # as File > Open Sample loads it
    else:
        viewer.add_image(sample_image(), name="nuclei")
    if args.which == "pretrain":
        from napari_tower._widgets.pretrain_widget import PretrainWidget

        pt = PretrainWidget(viewer)
        viewer.window.add_dock_widget(pt, name="Pretrain TOWER on my images", area="right")
        pt._layers.value = [viewer.layers["nuclei"]]
        pt._start_from.value = "tower"
        pt._minutes.value = args.minutes
        pt._name.value = "screenshot-tower"
        wait_for(pt.start(), app)
    elif args.which == "sharing":
        import tempfile
        from pathlib import Path

        pkg = Path(tempfile.mkdtemp()) / "my-model.zip"
        ft = FinetuneWidget(viewer)
        viewer.window.add_dock_widget(ft, name="Fine-tune TOWER", area="right")
        ft._export_path.value = pkg
        wait_for(ft.export_bioimageio(), app)  # the button's own code path: the `default` model, the nuclei layer
        seg = SegmentWidget(viewer)
        viewer.window.add_dock_widget(seg, name="Segment with TOWER", area="right", tabify=False)
        seg._model_file.value = pkg
        wait_for(seg.start(), app)
    else:
        seg = SegmentWidget(viewer)
        viewer.window.add_dock_widget(seg, name="Segment with TOWER", area="right")
        wait_for(seg.start(), app)
    if args.which == "finetune":
        viewer.layers["nuclei TOWER labels"].visible = False
        truth = sample_labels()
        viewer.add_labels(truth, name="my annotations")
        ft = FinetuneWidget(viewer)
        viewer.window.add_dock_widget(ft, name="Fine-tune TOWER", area="right", tabify=False)
        ft._image.value = viewer.layers["nuclei"]
        ft._annotations.value = viewer.layers["my annotations"]
        ft._minutes.value = args.minutes
        ft._name.value = "sample-finetuned"
        viewer.layers["my annotations"].visible = False
        wait_for(ft.start(), app)
    for _ in range(20):
        app.processEvents()
    viewer.screenshot(args.out, canvas_only=False)
    print("wrote", args.out)
    viewer.close()


if __name__ == "__main__":
    main()
