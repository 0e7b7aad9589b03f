"""Validated configuration, checked once at the edge (API, CLI, widget)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Device = Literal["auto", "cpu", "cuda", "mps"]


class PostprocessConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prob_threshold: float = Field(0.5, ge=0.0, le=1.0, description="foreground probability cut-off")
    split_depth: float = Field(0.2, ge=0.0, le=1.0, description="how deep the centerness must dip between two "
                               "peaks to keep them as separate objects (lower splits more; 0: use seed_threshold)")
    seed_threshold: float = Field(0.4, ge=0.0, le=1.0, description="centerness cut-off for watershed seeds "
                                  "when split_depth is 0")
    nonconvex_split_depth: float = Field(0.0, ge=0.0, le=1.0, description="objects that are not convex (likely "
                                         "several touching nuclei) are split again where the centerness dips by "
                                         "this much (below split_depth; 0: off)")
    min_size: int = Field(15, ge=0, le=100_000, description="objects smaller than this (pixels) are removed")
    method: Literal["watershed", "flows"] = Field("watershed", description="how touching objects are separated: "
                                                  "watershed on centerness (nuclei), or following the predicted "
                                                  "flows (irregular cells; models with flow maps only)")


class PredictConfig(PostprocessConfig):
    tile: int = Field(1024, ge=64, le=8192, description="tile side in pixels; memory scales with its square")
    overlap: int = Field(64, ge=0, le=512)
    precision: Literal["auto", "fp32"] = "auto"
    scale: Literal["auto"] | float = Field(1.0, description="resize planes by this factor (0.25-4) before the "
                                         "network, or 'auto': a second pass at ~20 px when the objects found are under 14 or over 30 px across; labels "
                                         "come back at the input's size")
    denoise: Literal["auto", "off"] = Field("auto", description="auto: photon-limited (grainy) images are smoothed "
                                            "before the network, until their noise is that of a well-exposed image; "
                                            "others are left as they are, and so are all images for a model trained on photon-limited "
                                            "images (its card's input.photon_noise; io.noise)")
    object_diameter: float | None = Field(None, ge=4, le=1000, description="with scale 'auto': the object size "
                                          "(pixels) the model was trained at; a first pass at half size measures the "
                                          "objects and a second brings them to this size (the cells model)")
    tta: bool = Field(False, description="average the maps over the four 90-degree rotations (4x slower; "
                      "dense histology gains most)")
    stitch_threshold: float = Field(0.25, ge=0.0, le=1.0, description="IoU linking objects between z planes")
    z_assembly: Literal["3d", "stitch"] = Field("3d", description="Z stacks: '3d' segments the volume as a whole "
                                                "(maps of the XY, XZ and YZ planes averaged, then a 3D watershed or "
                                                "3D flows); 'stitch' segments each XY plane and links them by IoU")
    views_3d: Literal["all", "xy"] = Field("all", description="'3d' assembly: predict on XY, XZ and YZ planes "
                                           "('all', ~3x the network time) or on XY planes only ('xy')")
    voxel_size: tuple[float, float, float] | None = Field(None, description="(Z, Y, X) voxel size in any one "
                                                          "unit; Z is resampled to the XY pixel size before '3d' "
                                                          "assembly (None: isotropic)")
    min_volume_fraction: float = Field(0.25, ge=0.0, le=1.0, description="'3d' assembly: objects smaller than "
                                       "this fraction of the stack's typical object volume are removed")
    track: bool = Field(False, description="time-lapses: link each frame's objects to the previous frame's so "
                        "that an object keeps its id (new objects get new ids)")
    norm_range: tuple[float, float] | None = Field(None, description="intensities mapped to 0 and 1 instead of "
                                                   "each plane's 1st and 99.8th percentiles; block-wise "
                                                   "segmentation sets it from the whole image so that every "
                                                   "block sees the same intensities")

    @field_validator("scale")
    @classmethod
    def _scale_range(cls, v):
        if v != "auto" and not 0.25 <= v <= 4.0:
            raise ValueError("scale must be 'auto' or between 0.25 and 4")
        return v

    @field_validator("voxel_size")
    @classmethod
    def _voxel_positive(cls, v):
        if v is not None and not all(s > 0 and s == s and s != float("inf") for s in v):
            raise ValueError("voxel_size needs three positive numbers (Z, Y, X)")
        return v
