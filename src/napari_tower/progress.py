"""Typed progress reports for long operations (predict, fine-tune, pretrain).

Long work is a generator yielding ``Progress``; the widget wraps it in a thread worker,
the CLI prints it to stderr. Cancellation: the consumer stops iterating (or calls
``generator.close()``), or passes a ``should_stop`` callable the work polls.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, TypeVar

T = TypeVar("T")


@dataclass
class Progress:
    step: int
    total: int
    message: str = ""
    loss: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    result: Any = None  # set on the final report of a generator
    preview: Any = None  # optional intermediate output (e.g. labels from the current weights)

    @property
    def fraction(self) -> float:
        return self.step / self.total if self.total else 0.0


def run_to_end(gen: Iterator[Progress], callback: Callable[[Progress], None] | None = None):
    """Drive a progress generator to completion and return its final ``result``."""
    result = None
    for p in gen:
        if callback is not None:
            callback(p)
        if p.result is not None:
            result = p.result
    return result
