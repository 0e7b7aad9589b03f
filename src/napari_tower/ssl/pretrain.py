"""TOWER self-supervised pretraining, and the SimCLR and BYOL baselines, in one loop.

Methods (``PretrainConfig.method``):

``tower``
    Two corrupted views (``ssl.proxy.corrupt``) of the same crop. Encoder and decoder are
    optimised together ("correlated optimisation"):
    ``L = MSE(restore(view1), clean1) + MSE(restore(view2), clean2) + lambda * InfoNCE(proj(view1), proj(view2))``,
    where ``clean_i`` is view i before corruption (same crop, flip, rotation and intensity
    jitter), ``restore = restore_head(decode(encoder(.)))`` and ``proj = proj_head(pool(encoder(.)))``.
    Ablations: ``use_proxy=False`` feeds the plain augmented views (restoring them is then
    the identity, a trivial task that teaches the decoder little: the ablation measures
    what the proxy tasks add), ``use_nce=False`` drops the InfoNCE term,
    ``use_restore=False`` drops the restoration term (the decoder is then not trained).
``simclr``
    InfoNCE only, on two views made by standard augmentation (independent random resized
    crops of one region, flips, rotations, contrast, blur, noise); the decoder is not
    trained.
``byol``
    An online encoder + projector + predictor regresses a target (EMA) encoder +
    projector's projection of the other view (``2 - 2 cos``, symmetrised). The predictor
    and the target live here; only the online ``TowerNet`` is saved.

Work is a generator of ``Progress``; a time budget and ``should_stop`` end it cleanly.
Checkpoints (``checkpoint.safetensors`` with network, optimiser and, for BYOL, predictor
and target state, and ``checkpoint.json``, a readable copy of the run's state) are
written every ``checkpoint_every_s`` seconds and at the end, atomically. The finished
network is saved with ``model.weights.save_model`` (``weights.safetensors`` + ``card.json``
with ``"kind": "pretrained"``) and loads as a fine-tuning base.
"""
from __future__ import annotations

import copy
import json
import math
import os
import time
from pathlib import Path
from typing import Callable, Iterator, Literal, Sequence

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from torch import nn

from ..config import PostprocessConfig
from ..errors import InputError, ModelError
from ..model.network import TowerNet, count_parameters, head_names
from ..model.weights import load_network, resolve_device, resolve_model_dir, save_model
from ..progress import Progress
from .batches import BatchMaker, BatchPool, default_workers, two_views
from .data import ViewSampler
from .losses import byol_loss, info_nce, restore_loss
from .proxy import ProxyConfig

CHECKPOINT = "checkpoint.safetensors"
CHECKPOINT_JSON = "checkpoint.json"
CHECKPOINT_FORMAT = "napari-tower-pretrain-checkpoint/1"
# fields that may change between a run and its resumption (they do not change the maths)
_RESUMABLE_CHANGES = {"log_every", "checkpoint_every_s", "precision"}


class PretrainConfig(BaseModel):
    """How to pretrain. ``lambda_nce`` and ``temperature`` are inferred from the closest
    published methods (PCRL: temperature 0.2), not taken from the TOWER paper's text."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["tower", "simclr", "byol"] = "tower"
    lambda_nce: float = Field(0.1, ge=0, le=100, description="weight of InfoNCE against restoration MSE (tower)")
    temperature: float = Field(0.2, ge=0.01, le=10, description="InfoNCE temperature")
    crop: int = Field(128, ge=32, le=512, multiple_of=16, description="view side in pixels (multiple of 16)")
    batch_size: int = Field(16, ge=2, le=1024, description="regions per step (each gives two views)")
    lr: float = Field(1e-3, gt=0, le=1, description="peak learning rate (AdamW, warm-up then cosine)")
    weight_decay: float = Field(1e-4, ge=0, le=1)
    use_proxy: bool = Field(True, description="tower ablation: corrupt the views with the proxy tasks")
    use_nce: bool = Field(True, description="tower ablation: InfoNCE term")
    use_restore: bool = Field(True, description="tower ablation: restoration term")
    byol_momentum: float = Field(0.99, ge=0, le=1, description="BYOL target EMA momentum (raised to 1 by a cosine schedule)")
    seed: int = Field(0, ge=0)
    proxy: ProxyConfig = Field(default_factory=ProxyConfig)
    log_every: int = Field(5, ge=1, le=100_000, description="report progress every this many steps")
    checkpoint_every_s: float = Field(60.0, gt=0, description="write a checkpoint this often (seconds)")
    precision: Literal["auto", "fp32"] = "auto"

    @model_validator(mode="after")
    def _check(self):
        if self.method != "tower" and not (self.use_proxy and self.use_nce and self.use_restore):
            raise ValueError("use_proxy / use_nce / use_restore are ablations of the 'tower' method only")
        if self.proxy.transmitted_p and (self.method != "tower" or not self.use_proxy):
            raise ValueError("proxy.transmitted_p is one of TOWER's proxy tasks: it needs the 'tower' method "
                             "(--method tower) with the proxy tasks on (no --no-proxy)")
        if self.method == "tower" and not self.use_restore and not (self.use_nce and self.lambda_nce > 0):
            raise ValueError("nothing to train: the tower method needs the restoration term or the InfoNCE term (lambda_nce > 0)")
        return self


def make_config(cfg: PretrainConfig | dict | None = None, **overrides) -> PretrainConfig:
    """Validate a config (or dict, plus keyword overrides), raising ``InputError`` with one line."""
    if isinstance(cfg, PretrainConfig):
        data = cfg.model_dump()
    else:
        data = dict(cfg or {})
    data.update(overrides)
    try:
        return PretrainConfig.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err.get("loc", ())) or "config"
        raise InputError(f"invalid pretraining setting {loc}: {err.get('msg', e)}") from None


# --------------------------------------------------------------------------- method state


class _Byol(nn.Module):
    """BYOL's predictor and target network (never saved with the model)."""

    def __init__(self, net: TowerNet):
        super().__init__()
        d = net.cfg.proj_dim
        self.predictor = nn.Sequential(nn.Linear(d, 4 * d), nn.BatchNorm1d(4 * d), nn.ReLU(inplace=True), nn.Linear(4 * d, d))
        self.target_encoder = copy.deepcopy(net.encoder)
        self.target_proj = copy.deepcopy(net.proj_head)
        for p in list(self.target_encoder.parameters()) + list(self.target_proj.parameters()):
            p.requires_grad_(False)

    @torch.no_grad()
    def update_target(self, net: TowerNet, tau: float) -> None:
        for online, target in ((net.encoder, self.target_encoder), (net.proj_head, self.target_proj)):
            for po, pt in zip(online.parameters(), target.parameters()):
                pt.mul_(tau).add_(po.detach(), alpha=1 - tau)
            for bo, bt in zip(online.buffers(), target.buffers()):
                bt.copy_(bo)

    @torch.no_grad()
    def target_projection(self, x: torch.Tensor) -> torch.Tensor:
        return self.target_proj(self.target_encoder(x)[-1].mean(dim=(2, 3)))


def _project(net: TowerNet, feats) -> torch.Tensor:
    return net.proj_head(feats[-1].mean(dim=(2, 3)))


# --------------------------------------------------------------------------- checkpoints


def _fsync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:  # some file systems do not support it; the rename is still atomic
        pass


def _flatten(modules: dict[str, nn.Module], opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    tensors: dict[str, torch.Tensor] = {}
    for prefix, m in modules.items():
        for k, v in m.state_dict().items():
            tensors[f"{prefix}.{k}"] = v.detach().to("cpu").contiguous().clone()
    osd = opt.state_dict()
    scalars: dict[str, object] = {}
    for idx, st in osd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"optim.{idx}.{k}"] = v.detach().to("cpu").contiguous().clone()
            else:
                scalars[f"{idx}.{k}"] = v
    return tensors, {"param_groups": osd["param_groups"], "scalars": scalars}


def save_checkpoint(out: Path, modules: dict[str, nn.Module], opt: torch.optim.Optimizer, info: dict) -> Path:
    """Write ``checkpoint.safetensors`` (tensors; the run's state in its metadata) and
    ``checkpoint.json`` (a readable copy), each to a temporary file first, then renamed
    over the old one: a run killed at any moment leaves the previous checkpoint intact."""
    from safetensors.torch import save_file

    tensors, optim_info = _flatten(modules, opt)
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    state = dict(info, optimizer=optim_info)
    text = json.dumps(state, indent=1, default=str)
    tmp = out / (CHECKPOINT + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": CHECKPOINT_FORMAT, "state": text})
    _fsync(tmp)
    os.replace(tmp, out / CHECKPOINT)
    tmpj = out / (CHECKPOINT_JSON + ".tmp")
    tmpj.write_text(text)
    _fsync(tmpj)
    os.replace(tmpj, out / CHECKPOINT_JSON)
    return out / CHECKPOINT


def load_checkpoint(out: Path) -> tuple[dict[str, torch.Tensor], dict] | None:
    """(tensors, state) of the checkpoint in ``out``, or None if there is none. The state
    is read from the safetensors file itself, so the pair is always consistent."""
    from safetensors import safe_open

    path = Path(out) / CHECKPOINT
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        if meta.get("format") != CHECKPOINT_FORMAT:
            raise ValueError("not a napari-tower pretraining checkpoint")
        state = json.loads(meta["state"])
    except Exception as e:  # damaged or foreign file
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ModelError(f"cannot resume from {path}: {msg}") from None
    return tensors, state


def _restore(tensors: dict, state: dict, modules: dict[str, nn.Module], opt: torch.optim.Optimizer) -> None:
    for prefix, m in modules.items():
        sub = {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
        m.load_state_dict(sub, strict=True)
    ostate: dict[int, dict] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, idx, name = k.split(".", 2)
            ostate.setdefault(int(idx), {})[name] = v
    for k, v in state["optimizer"]["scalars"].items():
        idx, name = k.split(".", 1)
        ostate.setdefault(int(idx), {})[name] = v
    opt.load_state_dict({"state": ostate, "param_groups": state["optimizer"]["param_groups"]})
    if "rng.torch" in tensors:
        torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])


# --------------------------------------------------------------------------- the loop


def _gpu_info(dev: torch.device) -> dict:
    """The CUDA card's name and the run's peak allocated memory, for the card (throughput notes)."""
    if dev.type != "cuda":
        return {}
    return {"gpu": torch.cuda.get_device_name(dev), "peak_gpu_mb": round(torch.cuda.max_memory_allocated(dev) / 2**20, 1)}


def _default_net() -> TowerNet:
    from ..train.finetune import default_arch

    return TowerNet(default_arch())


def _check_planes(planes: Sequence[np.ndarray]) -> list[np.ndarray]:
    if isinstance(planes, np.ndarray):
        planes = [planes] if planes.ndim == 2 else list(planes)
    out = []
    for i, p in enumerate(planes):
        a = np.asarray(p, dtype=np.float32)
        if a.ndim != 2:
            raise InputError(f"plane {i} has shape {a.shape}: pretraining takes 2D (Y, X) planes (see ssl.data.collect_planes)")
        if not np.isfinite(a).all():
            raise InputError(f"plane {i} contains NaN or infinite values")
        out.append(a)
    if not out:
        raise InputError("no image planes to pretrain on")
    return out


def pretrain_iter(
    planes: Sequence[np.ndarray],
    cfg: PretrainConfig | dict | None,
    device: str | torch.device,
    output_dir: str | os.PathLike,
    max_steps: int | None = None,
    max_minutes: float | None = None,
    resume: bool = False,
    should_stop: Callable[[], bool] | None = None,
    manifest: list[dict] | None = None,
    base: str | os.PathLike | None = None,
    workers: int | None = None,
) -> Iterator[Progress]:
    """Pretrain a ``TowerNet`` on unlabelled ``planes``, yielding ``Progress``.

    Parameters
    ----------
    planes : list of float32 (Y, X) arrays, normalised (``ssl.data.collect_planes``).
    cfg : PretrainConfig or dict (validated here; bad values raise ``InputError``).
    device : "auto", "cpu", "cuda", "mps" or a ``torch.device``.
    output_dir : model folder: checkpoints, then ``weights.safetensors`` + ``card.json``.
    max_steps, max_minutes : stop at whichever comes first (at least one is needed). Both
        count the whole run: a resumed run continues the step count and the elapsed time.
    resume : continue from ``output_dir/checkpoint.safetensors`` (same step, optimiser and
        random state; the config must match the checkpoint's). Without a checkpoint the
        run starts from scratch (and says so).
    should_stop : polled after every step; True ends training cleanly (checkpoint + model).
    manifest : file names and sha256 of the input files, recorded in the card.
    base : start from these weights ("tower", "default", a model folder) instead of a random
        network (the bundled TOWER weights took 45 minutes from scratch; on the whole-cells
        benchmark, 5 minutes of continuing them on its frames did not improve fine-tuning).
        The architecture is the base's.
    workers : processes that make batches ahead (``ssl.batches``); None: none on the CPU,
        up to 8 on a GPU. With workers each batch has its own random stream, so the run
        differs from one without (but not between worker counts).

    Reports carry ``loss`` and ``metrics`` (``restore``, ``nce`` or ``byol``: the terms
    computed) every ``cfg.log_every`` steps; the final report's ``result`` is the model
    folder (``Path``).
    """
    cfg = make_config(cfg)
    if max_steps is None and max_minutes is None:
        raise InputError("give a number of steps (max_steps) or a time budget (max_minutes)")
    if max_steps is not None and max_steps < 0:
        raise InputError("max_steps must be >= 0")
    if max_minutes is not None and max_minutes <= 0:
        raise InputError("max_minutes must be > 0")
    if workers is not None and workers < 0:
        raise InputError("workers must be >= 0")
    planes = _check_planes(planes)
    base_dir = resolve_model_dir(base) if base is not None else None  # before anything is written
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in (CHECKPOINT + ".tmp", CHECKPOINT_JSON + ".tmp"):  # left by a killed run
        (out / stale).unlink(missing_ok=True)

    torch.manual_seed(cfg.seed)
    net, base_card = (_default_net(), {}) if base_dir is None else load_network(base_dir)
    restore_trained = base_card.get("pretraining", {}).get("config", {}).get("use_restore", False)
    if not restore_trained:
        # the restoration head's default (Kaiming, fan-out of 1) init starts with outputs ~10x the
        # image range and an MSE ~20; a small init starts restoration near the image scale
        nn.init.normal_(net.restore_head.weight, std=0.01)
        nn.init.zeros_(net.restore_head.bias)
    net = net.to(dev).to(memory_format=torch.channels_last)
    byol = _Byol(net).to(dev) if cfg.method == "byol" else None
    modules: dict[str, nn.Module] = {"net": net}
    params = list(net.parameters())
    if byol is not None:
        modules["byol"] = byol
        params += list(byol.predictor.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(cfg.seed)
    step, elapsed0, history = 0, 0.0, []
    total = max_steps or 0

    if resume:
        ck = load_checkpoint(out)
        if ck is None:
            yield Progress(0, total, f"no checkpoint in {out}: starting from scratch")
        else:
            tensors, state = ck
            saved = state.get("config", {})
            mine = cfg.model_dump(mode="json")
            diff = sorted(k for k in set(saved) | set(mine) if k not in _RESUMABLE_CHANGES and saved.get(k) != mine.get(k))
            if diff:
                raise InputError(
                    f"cannot resume: the checkpoint in {out} was made with other settings ({', '.join(diff)}); "
                    "use the same settings, or another output folder")
            try:
                _restore(tensors, state, modules, opt)
            except (RuntimeError, KeyError, ValueError) as e:
                raise ModelError(f"cannot resume from {out / CHECKPOINT}: {str(e).splitlines()[0]}") from None
            rng.bit_generator.state = state["numpy_rng"]
            step, elapsed0, history = int(state["step"]), float(state["elapsed"]), list(state.get("history", []))
            yield Progress(step, total or step, f"resumed from step {step}")

    sampler = ViewSampler(planes, cfg.crop, rng, independent_crops=cfg.method != "tower")
    if cfg.method == "tower":
        view_cfg = cfg.proxy if cfg.use_proxy else None
    else:
        view_cfg = ProxyConfig.standard_augmentation()
    if workers is None:
        workers = default_workers(dev.type)
    use_restore = cfg.method == "tower" and cfg.use_restore
    use_nce = cfg.method == "simclr" or (cfg.method == "tower" and cfg.use_nce and cfg.lambda_nce > 0)
    from ..predict.tiling import autocast_for

    t0 = time.monotonic()
    budget = max_minutes * 60 if max_minutes else None
    warmup = 0.05 if not max_steps else min(0.3, max(0.05, 3 / max_steps))

    def elapsed() -> float:
        return elapsed0 + time.monotonic() - t0

    def progress_frac(s: int) -> float:
        frac = s / max_steps if max_steps else 0.0
        if budget:
            frac = max(frac, elapsed() / budget)
        return min(1.0, frac)

    def total_now() -> int:
        if max_steps:
            return max_steps
        e = elapsed()
        return max(step, int(round(step * budget / e))) if e > 0 and step else max(step, 1)

    def info(stopped_early: bool) -> dict:
        return {
            "step": step, "elapsed": round(elapsed(), 3), "numpy_rng": rng.bit_generator.state,
            "config": cfg.model_dump(mode="json"), "max_steps": max_steps, "max_minutes": max_minutes,
            "n_planes": len(planes), "device": str(dev), "stopped_early": stopped_early, "history": history[-200:],
            "data_workers": workers,
        }

    def to_dev(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a))[:, None].to(dev).contiguous(memory_format=torch.channels_last)

    last_ckpt = time.monotonic()
    window: dict[str, list[float]] = {}
    stopped = False
    b = cfg.batch_size
    net.train()
    pool = None
    if workers:
        maker = BatchMaker(planes, cfg.crop, b, cfg.seed, cfg.method != "tower", view_cfg)
        pool = BatchPool(maker, workers, start=step)
    try:
        while not (max_steps is not None and step >= max_steps) and not (budget and elapsed() >= budget):
            frac = progress_frac(step)
            f = frac / warmup if frac < warmup else 0.5 * (1 + math.cos(math.pi * min(1.0, (frac - warmup) / (1 - warmup))))
            for g in opt.param_groups:
                g["lr"] = cfg.lr * max(f, 0.02)
            if pool is not None:
                xv, clean = pool.get()
            else:  # one random stream for the whole run, as before workers existed
                xv, clean = two_views(sampler, b, view_cfg, rng)
            x = to_dev(xv)
            parts: dict[str, torch.Tensor] = {}
            with autocast_for(dev, cfg.precision):
                feats = net.encoder(x)
                if cfg.method == "byol":
                    p = byol.predictor(_project(net, feats).float())
                    z = byol.target_projection(x)
                else:
                    proj = _project(net, feats)
                    rest = net.restore_head(net.decode(x, feats)) if use_restore else None
            if cfg.method == "byol":
                parts["byol"] = byol_loss(p[:b], z[b:]) + byol_loss(p[b:], z[:b])
                loss = parts["byol"]
            else:
                loss = torch.zeros((), device=dev)
                if use_restore:
                    parts["restore"] = restore_loss(rest, to_dev(clean))
                    loss = loss + parts["restore"]
                if use_nce:
                    parts["nce"] = info_nce(proj[:b], proj[b:], cfg.temperature)
                    loss = loss + (1.0 if cfg.method == "simclr" else cfg.lambda_nce) * parts["nce"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if byol is not None:
                tau = 1 - (1 - cfg.byol_momentum) * (math.cos(math.pi * progress_frac(step + 1)) + 1) / 2
                byol.update_target(net, tau)
            step += 1
            lv = float(loss.detach())
            if not math.isfinite(lv):
                raise InputError(f"the loss became {lv} at step {step}; lower the learning rate (lr={cfg.lr})")
            window.setdefault("loss", []).append(lv)
            for k, v in parts.items():
                window.setdefault(k, []).append(float(v.detach()))
            stopped = bool(should_stop is not None and should_stop())
            out_of_time = bool(budget and elapsed() >= budget)
            done = max_steps is not None and step >= max_steps
            if step % cfg.log_every == 0 or stopped or out_of_time or done:
                means = {k: float(np.mean(v)) for k, v in window.items()}
                window = {}
                rec = {"step": step, "seconds": round(elapsed(), 2), **{k: round(v, 6) for k, v in means.items()}}
                history.append(rec)
                loss_mean = means.pop("loss")
                tot = total_now()
                msg = f"step {step}/{tot}" if max_steps else f"step {step} ({elapsed() / 60:.1f}/{max_minutes:g} min)"
                yield Progress(step, tot, msg, loss=loss_mean, metrics=means)
            if time.monotonic() - last_ckpt >= cfg.checkpoint_every_s and not (stopped or out_of_time or done):
                save_checkpoint(out, modules, opt, info(False))
                last_ckpt = time.monotonic()
            if stopped:
                break
    finally:
        if pool is not None:
            pool.close()

    net.eval()
    seconds = elapsed()
    save_checkpoint(out, modules, opt, info(stopped))
    card = {
        "name": out.name,
        "kind": "pretrained",
        "description": (f"self-supervised pretraining ({cfg.method}) on {len(planes)} unlabelled plane(s); "
                        "a base for fine-tuning, not a segmentation model by itself"),
        "task": "self-supervised pretraining (fine-tune before segmenting)",
        "heads": head_names(net),
        "input": {"channels": 1, "normalization": "percentile 1-99.8", "rgb": "hematoxylin (rgb2hed) unless gray"},
        "postprocess": PostprocessConfig().model_dump(),
        "parameters": count_parameters(net),
        "pretraining": {
            "method": cfg.method, "config": cfg.model_dump(mode="json"), "n_planes": len(planes),
            "base": None if base is None else str(base_card.get("name", base)),
            "data": list(manifest or []), "steps": step, "seconds": round(seconds, 1),
            "stopped_early": stopped, "max_steps": max_steps, "max_minutes": max_minutes, "device": str(dev),
            "data_workers": workers, **_gpu_info(dev), "history": history[-50:],
        },
        "training": {"steps": step, "seconds": round(seconds, 1)},
        "metrics": {},
    }
    save_model(net, out, card)
    yield Progress(step, max(step, max_steps or 0), f"saved {out}", result=out)


def pretrain(planes, cfg=None, device="auto", output_dir=".", **kwargs) -> Path:
    """``pretrain_iter`` run to the end; returns the model folder."""
    from ..progress import run_to_end

    return run_to_end(pretrain_iter(planes, cfg, device, output_dir, **kwargs))
