"""The benchmarks room: every module but the shared helpers is a command a user can run, and
every number on the benchmark pages has its raw results under docs/results/, not loose in docs/."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HELPERS = {"__init__", "common", "failures", "peers"}  # imported by the commands, not run
COMMANDS = sorted(p.stem for p in (REPO / "benchmarks").glob("*.py") if p.stem not in HELPERS)


@pytest.mark.slow
@pytest.mark.parametrize("name", COMMANDS)
def test_each_benchmark_is_a_command(name):
    run = subprocess.run([sys.executable, "-m", f"benchmarks.{name}", "--help"], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "usage:" in run.stdout


def test_every_command_is_listed_in_the_readme():
    readme = (REPO / "benchmarks" / "README.md").read_text()
    assert [n for n in COMMANDS if f"`{n}`" not in readme] == []


def test_raw_results_live_under_docs_results():
    assert sorted(p.name for p in (REPO / "docs").glob("*.json")) == []
    pages = list((REPO / "docs" / "benchmarks").glob("*.md"))
    assert {p.name for p in pages} >= {"2d.md", "3d.md", "any-size.md", "few-shot.md", "self-supervised.md", "speed.md"}
    for page in pages:
        for ref in re.findall(r"docs/[\w./-]+\.json", page.read_text()):
            assert ref.startswith("docs/results/"), f"{page.name}: {ref}"


def test_retired_benchmarks_name_their_commit():
    """A page that cites a benchmark module no longer in benchmarks/ says which commit ran it."""
    for page in (REPO / "docs" / "benchmarks").glob("*.md"):
        text = page.read_text()
        for name in set(re.findall(r"python -m benchmarks\.(\w+)", text)):
            if name in COMMANDS or name.isupper():  # NAME: a placeholder in prose
                continue
            assert re.search(rf"benchmarks\.{name}[^`]*` at commit [0-9a-f]{{7,}}", text), f"{page.name}: {name}"
