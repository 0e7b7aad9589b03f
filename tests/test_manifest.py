"""The npe2 manifest ships with the installed package and declares every contribution."""
from npe2 import PluginManifest


def test_manifest_is_valid_and_complete():
    pm = PluginManifest.from_distribution("napari-tower")
    widgets = {w.display_name for w in pm.contributions.widgets}
    assert widgets == {"Segment with TOWER", "Fine-tune TOWER", "Pretrain TOWER on my images"}
    assert [s.key for s in pm.contributions.sample_data] == ["nuclei", "nuclei3d"]
    for cmd in pm.contributions.commands:
        module, _, attr = cmd.python_name.partition(":")
        assert hasattr(__import__(module, fromlist=[attr]), attr), cmd.python_name
