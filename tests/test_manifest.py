"""The npe2 manifest ships with the installed package and declares every contribution."""
from npe2 import PluginManifest


def test_manifest_is_valid_and_complete():
    pm = PluginManifest.from_distribution("napari-tower")
    widgets = {w.display_name for w in pm.contributions.widgets}
    assert widgets == {"Segment with TOWER", "Fine-tune TOWER", "Pretrain TOWER on my images"}
    assert [s.key for s in pm.contributions.sample_data] == ["nuclei", "nuclei3d", "cells"]
    for cmd in pm.contributions.commands:
        module, _, attr = cmd.python_name.partition(":")
        assert hasattr(__import__(module, fromlist=[attr]), attr), cmd.python_name


def test_the_whole_cell_sample_is_a_labelled_movie():
    from napari_tower._sample_data import cells_sample

    (img, meta, kind), (lab, _, lkind) = cells_sample()
    assert (kind, lkind) == ("image", "labels") and img.shape == lab.shape == (10, 210, 576)
    assert all(len(set(frame.ravel().tolist())) > 60 for frame in lab)  # 66-103 cells a frame
