"""Recipes for the bundled models: data, augmentation, schedule and validation, as data.

A recipe is a YAML file (``train/recipes/*.yaml``); ``python -m napari_tower.train.recipe NAME``
trains from one. Data sources name folders of ../shared/data (given at run time as
``--data-root``); validation splits are fixed by the sources' own rules, so a run resumed
in another session, on another machine, validates on the same images.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field

from .microscope import MicroscopeAugment

RECIPES_DIR = Path(__file__).parent / "recipes"


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["dsb2018", "polyp_nuclei", "bbbc030", "synthetic_cells"]
    modalities: list[str] | None = None  # dsb2018: which of its modalities
    upsample: float = 1.0  # resize training images by this (labels by nearest neighbour)
    render: float = 0.0  # whole cells: share of crops rendered in another modality
    count: int = 0  # synthetic_cells: how many layouts
    size: int = 256


class Schedule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    steps: int = Field(100_000, ge=1)
    batch_size: int = 8
    crop: int = 128
    lr: float = 1e-3
    min_lr_fraction: float = 0.02
    warmup_steps: int = 500
    weight_decay: float = 1e-4
    scale_range: tuple[float, float] = (0.5, 2.0)
    # validate and ship an exponential moving average of the weights (0: the raw weights);
    # single steps at batch 8 on CPU make the raw weights' validation swing by several points
    ema_decay: float = Field(0.0, ge=0.0, lt=1.0)


class Validation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    every_steps: int = 3000
    low_light_photons: list[float] = []  # noisy copies of dsb fluorescence validation images
    low_light_images: int = 20
    rendered: list[str] = []  # whole cells: validation images rendered in these modalities
    rendered_images: int = 8
    # a checkpoint is "best" by the mean AP@0.5 over these groups (all when empty)
    select_on: list[str] = []


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    description: str
    task: str
    base: str = "none"
    arch: Literal["unet", "fast"] = "fast"
    sources: list[Source]
    group_weights: dict[str, float]
    augment: MicroscopeAugment = MicroscopeAugment()
    schedule: Schedule = Schedule()
    validation: Validation = Validation()
    postprocess: dict = {}
    seed: int = 0
    checkpoint_minutes: float = 5.0
    threads: int = 1


def load_recipe(path_or_name: str | Path) -> Recipe:
    p = Path(path_or_name)
    if not p.suffix:
        p = RECIPES_DIR / f"{p}.yaml"
    return Recipe(**yaml.safe_load(p.read_text()))


class ValItem:
    """One validation image as a user has it (raw, not normalised) with its ground truth."""

    def __init__(self, image: np.ndarray, labels: np.ndarray, rgb: bool, group: str, name: str):
        self.image, self.labels, self.rgb, self.group, self.name = image, labels, rgb, group, name

