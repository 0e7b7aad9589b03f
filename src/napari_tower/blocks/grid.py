"""The block grid: interiors that tile the image, each read with a halo of context."""
from __future__ import annotations

import itertools
from dataclasses import dataclass


@dataclass(frozen=True)
class Block:
    index: int
    position: tuple[int, ...]  # grid coordinates
    interior: tuple[slice, ...]  # in image coordinates; the interiors tile the image
    outer: tuple[slice, ...]  # interior grown by the halo, clipped to the image

    @property
    def crop(self) -> tuple[slice, ...]:
        """The interior in the coordinates of the array read with ``outer``."""
        return tuple(slice(i.start - o.start, i.stop - o.start) for i, o in zip(self.interior, self.outer))

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(s.stop - s.start for s in self.interior)


def grid_shape(shape, block_shape) -> tuple[int, ...]:
    return tuple(-(-n // b) for n, b in zip(shape, block_shape))


def block_grid(shape, block_shape, halo, min_outer=(), align=()) -> list[Block]:
    """Blocks of ``block_shape`` (the last ones smaller) covering ``shape``, in C order.
    ``min_outer`` (per axis, optional) grows a small outer block towards the image start so
    that the network never sees a plane narrower than it accepts. ``align`` (per axis,
    optional) moves each outer start down to a multiple of it: a strided CNN gives the same
    maps for the same pixels only when its window sits on the same grid of strides."""
    if not (len(shape) == len(block_shape) == len(halo)):
        raise ValueError(f"shape {shape}, block shape {block_shape} and halo {halo} differ in length")
    if any(b < 1 for b in block_shape) or any(h < 0 for h in halo):
        raise ValueError(f"block shape {block_shape} must be positive and halo {halo} non-negative")
    blocks = []
    for i, pos in enumerate(itertools.product(*(range(g) for g in grid_shape(shape, block_shape)))):
        interior = tuple(slice(p * b, min((p + 1) * b, n)) for p, b, n in zip(pos, block_shape, shape))
        outer = [slice(max(0, s.start - h), min(n, s.stop + h)) for s, h, n in zip(interior, halo, shape)]
        for ax, a in enumerate(align):
            outer[ax] = slice(outer[ax].start // a * a, outer[ax].stop)
        for ax, m in enumerate(min_outer):
            o = outer[ax]
            if o.stop - o.start < m:
                outer[ax] = slice(max(0, o.stop - m), max(o.stop, min(shape[ax], m)))
        outer = tuple(outer)
        blocks.append(Block(i, pos, interior, outer))
    return blocks


def chunk_shape(block_shape, target) -> tuple[int, ...]:
    """Largest chunk per axis that divides the block side and is at most ``target``, so
    that every chunk of the output belongs to exactly one block (no two writers share one)."""
    out = []
    for b, t in zip(block_shape, target):
        out.append(max(d for d in range(1, min(b, t) + 1) if b % d == 0))
    return tuple(out)
