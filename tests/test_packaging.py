"""Hub-ready packaging: the npe2 manifest, its menus, and the project metadata."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
WIDGETS = {"napari-tower.segment_widget", "napari-tower.finetune_widget", "napari-tower.pretrain_widget"}

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")


@pytest.fixture(scope="module")
def manifest():
    from npe2 import PluginManifest

    return PluginManifest.from_file(REPO / "napari.yaml")


@pytest.fixture(scope="module")
def project():
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def test_manifest_is_valid_and_its_commands_import(manifest):
    manifest.validate_imports()  # every python_name resolves, as `npe2 validate --imports` checks
    assert manifest.name == "napari-tower" and manifest.display_name
    assert {w.command for w in manifest.contributions.widgets} == WIDGETS
    assert all(w.display_name for w in manifest.contributions.widgets)


def test_widgets_are_in_the_layers_segment_menu(manifest):
    menus = manifest.contributions.menus
    assert {item.command for item in menus["napari/layers/segment"]} == WIDGETS


def test_installed_manifest_is_the_repository_one():
    from importlib.metadata import entry_points

    (ep,) = [e for e in entry_points(group="napari.manifest") if e.name == "napari-tower"]
    from importlib.resources import files

    pkg, _, res = ep.value.partition(":")
    assert (files(pkg) / res).read_text() == (REPO / "napari.yaml").read_text()


def test_licence_is_pep639_and_the_files_exist(project):
    assert project["license"] == "BSD-3-Clause"  # an SPDX expression, not a table
    for f in project["license-files"]:
        assert (REPO / f).is_file(), f
    assert "BSD 3-Clause" in (REPO / "LICENSE").read_text()
    # PEP 639: no licence classifiers beside an SPDX expression (build back-ends reject the mix)
    assert not [c for c in project["classifiers"] if c.startswith("License ::")]


def test_classifiers_name_napari_and_the_supported_pythons(project):
    cls = project["classifiers"]
    assert "Framework :: napari" in cls
    minimum = tuple(int(x) for x in re.search(r">=\s*(\d+)\.(\d+)", project["requires-python"]).groups())
    versions = [tuple(map(int, c.rsplit(":: ", 1)[1].split("."))) for c in cls
                if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)]
    assert versions and min(versions) == minimum
    assert sys.version_info[:2] in versions  # the Python running the tests is a claimed one


def test_no_placeholder_urls(project):
    urls = project.get("urls", {})
    assert not [u for u in urls.values() if "example" in u or ".invalid" in u]


def test_docs_extra_and_site_config_agree():
    import yaml

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(d.startswith("mkdocs-material") for d in extras["docs"])
    assert any(d.startswith("mkdocstrings[python]") for d in extras["docs"])
    site = yaml.safe_load((REPO / "mkdocs.yml").read_text().replace("!!python", "#"))
    assert site["strict"] is True

    def pages(nav):
        for item in nav:
            for v in item.values():
                yield from pages(v) if isinstance(v, list) else [v]

    for page in pages(site["nav"]):
        assert (REPO / "docs" / page).is_file(), page


@pytest.mark.gui
def test_napari_shows_the_widgets_under_layers_segment(make_napari_viewer):
    from napari._app_model import get_app_model  # napari's own menu registry (private, but what the menu bar reads)

    make_napari_viewer()
    titles = [i.command.title for i in get_app_model().menus.get_menu("napari/layers/segment") if hasattr(i, "command")]
    for name in ("Segment with TOWER", "Fine-tune TOWER", "Pretrain TOWER on my images"):
        assert any(t.startswith(name) for t in titles), titles
