"""mkdocs hook: fill docs/cli.md with the ``--help`` of every subcommand, from the parser itself,
so the CLI reference cannot drift from the code."""
from __future__ import annotations

import argparse
import re

MARKER = re.compile(r"<!--\s*cli-help\s*-->")


def _help() -> str:
    from napari_tower.cli import build_parser

    parser = build_parser()
    parts = ["## napari-tower", "", "```text", parser.format_help().rstrip(), "```", ""]
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, p in sub.choices.items():
        parts += [f"## napari-tower {name}", "", "```text", p.format_help().rstrip(), "```", ""]
    return "\n".join(parts)


def on_page_markdown(markdown: str, page, **kwargs) -> str:
    if page.file.src_uri == "cli.md" and MARKER.search(markdown):
        import os

        os.environ.setdefault("COLUMNS", "100")  # argparse wraps to the terminal; fix it for the page
        return MARKER.sub(lambda _: _help(), markdown)
    return markdown
