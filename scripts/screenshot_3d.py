"""Screenshot of a 3D result in napari's 3D view, from a real run of the segment widget.

    xvfb-run -s '-screen 0 1600x1000x24' .venv/bin/python scripts/screenshot_3d.py docs/screenshot_3d.png
"""
from __future__ import annotations

import sys


def main(out: str) -> None:
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_tower._sample_data import sample_stack
    from napari_tower._widgets.segment_widget import SegmentWidget

    viewer = napari.Viewer(title="napari-tower")
    viewer.window._qt_window.resize(1500, 950)
    app = QApplication.instance()
    viewer.add_image(sample_stack(), name="nuclei 3D", colormap="gray", blending="additive")
    seg = SegmentWidget(viewer)
    viewer.window.add_dock_widget(seg, name="Segment with TOWER", area="right")
    worker = seg.start()
    done = []
    worker.finished.connect(lambda: done.append(1))
    while not done:
        app.processEvents()
    viewer.dims.ndisplay = 3
    viewer.layers["nuclei 3D"].visible = False
    viewer.camera.angles = (-20, 35, 145)
    viewer.camera.zoom = 1.6
    for _ in range(20):
        app.processEvents()
    viewer.screenshot(out, canvas_only=False)
    print(f"{out}: {seg._status.value}")
    viewer.close()


if __name__ == "__main__":
    main(sys.argv[1])
