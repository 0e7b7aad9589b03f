"""Inference backends: who runs the network, behind one small interface.

``predict/`` hands a backend a batch of normalised planes and gets the maps back, never
knowing which one ran:

- ``TorchBackend``: the reference (and the one training uses), on CPU, CUDA or MPS;
- ``OnnxBackend``: ONNX Runtime on the CPU (the optional ``onnx`` extra). On 2 CPU cores it
  ran the bundled networks 1.3-3x faster than torch (docs/benchmarks/throughput.md), and a command that uses it never
  imports torch (1.5-2 s of start-up). The network is exported once per model and machine,
  with torch, into the user cache, and checked against torch before it is used.

``wants_onnx`` decides: ``NAPARI_TOWER_BACKEND`` = ``torch`` or ``onnx`` forces one; by default
ONNX Runtime runs where the device is the CPU (``auto`` without a GPU) and onnxruntime is
installed, torch elsewhere.
Both return float32 maps (N, C, H, W): probabilities (foreground, boundary, centerness) and,
for models with flows, unit-length flows.
"""
from __future__ import annotations

import functools
import importlib.util
import os
import re
import sys
import warnings
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from .arch import FLOW_SCALE

ENV = "NAPARI_TOWER_BACKEND"
# bump when the exported graph changes, so that stale cached exports are not reused
EXPORT_VERSION = 1
OPSET = 17


@functools.lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
        return "avx512_bf16" in flags or "amx_bf16" in flags
    except OSError:
        import platform

        return platform.machine() == "arm64"  # Apple silicon CPUs have bf16 arithmetic


def autocast_for(device, precision: str):
    import torch

    if precision == "fp32":
        return nullcontext()
    if device.type == "cpu":
        # bf16 helps only where the CPU has native bf16 (AVX512-BF16/AMX); elsewhere it is
        # emulated and ~10x slower than fp32 (measured on an AVX2-only EPYC)
        return torch.autocast("cpu", dtype=torch.bfloat16) if cpu_has_bf16() else nullcontext()
    if device.type == "cuda":
        dt = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dt)
    if device.type == "mps":
        return torch.autocast("mps", dtype=torch.float16)
    return nullcontext()


class TorchBackend:
    """The torch network as it is (the caller folds BatchNorm and picks the memory format)."""

    name = "torch"

    def __init__(self, net, device):
        self.net = net
        self.device = device

    def maps(self, planes: np.ndarray, precision: str = "auto") -> np.ndarray:
        import torch

        with torch.inference_mode():
            t = torch.from_numpy(np.ascontiguousarray(planes, dtype=np.float32))[:, None].to(self.device)
            t = t.contiguous(memory_format=torch.channels_last)
            with autocast_for(self.device, precision):
                logits = self.net(t).float()
            return torch.cat([torch.sigmoid(logits[:, :3]), logits[:, 3:] / FLOW_SCALE], 1).cpu().numpy()


class OnnxBackend:
    """An exported network run by ONNX Runtime on the CPU (float32; ``precision`` has no effect)."""

    name = "onnxruntime"

    def __init__(self, path: Path):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        # ORT's worker threads spin between runs by default; on a busy 2-core machine that spin
        # takes the CPU from the other work (1024x1024 tile, load 8: 0.63 s -> 0.52 s wall,
        # 0.64 -> 0.48 s CPU, median of 5 alternating)
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.path = Path(path)

    def maps(self, planes: np.ndarray, precision: str = "auto") -> np.ndarray:
        x = np.ascontiguousarray(planes, dtype=np.float32)[:, None]
        return self.session.run(None, {"image": x})[0]


def requested() -> str:
    value = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if value not in ("auto", "torch", "onnx"):
        from ..errors import ModelError

        raise ModelError(f"{ENV}={value!r}: use auto, torch or onnx")
    return value


def onnxruntime_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def torch_may_accelerate() -> bool:
    """Whether ``device="auto"`` could mean a GPU, answered without importing torch when possible.

    A CPU-only torch build says so in ``torch/version.py``; reading that file takes
    microseconds, importing torch to ask ``torch.cuda.is_available()`` 1.5 s.
    """
    if "torch" in sys.modules or sys.platform == "darwin":  # MPS needs torch to answer
        return True
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.origin:
        return False
    try:
        text = (Path(spec.origin).parent / "version.py").read_text()
    except OSError:
        return True
    builds = [re.search(rf"^{key}\s*(?::[^=\n]*)?=\s*(.+)$", text, re.MULTILINE) for key in ("cuda", "hip", "xpu")]
    return not all(m is not None and m.group(1).strip() == "None" for m in builds)


def gpu_available() -> bool:
    """Whether ``device="auto"`` means a GPU. torch is imported only when its build could use one
    (pip's default Linux torch is a CUDA build, also on machines without a GPU)."""
    if not torch_may_accelerate():
        return False
    import torch

    mps = getattr(torch.backends, "mps", None)
    return torch.cuda.is_available() or (mps is not None and mps.is_available())


def wants_onnx(device: str) -> bool:
    """ONNX Runtime for this device request? (The CPU only; a forced ``onnx`` on a GPU request is an error.)"""
    choice = requested()
    device = (device or "auto").lower()
    on_cpu = device == "cpu" or (device == "auto" and not gpu_available())
    if choice == "onnx":
        if not onnxruntime_available():
            from ..errors import ModelError

            raise ModelError(f"{ENV}=onnx, but onnxruntime is not installed (pip install onnxruntime)")
        if not on_cpu:
            from ..errors import ModelError

            raise ModelError(f"{ENV}=onnx runs on the CPU: use --device cpu, or {ENV}=torch for a GPU")
        return True
    return choice == "auto" and on_cpu and onnxruntime_available()


def cache_dir() -> Path:
    root = os.environ.get("NAPARI_TOWER_CACHE")
    if root:
        return Path(root)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("napari-tower", appauthor=False))


def onnx_path(weights_sha256: str) -> Path:
    """Where the export of the weights with this sha256 is cached (a derived file: safe to delete)."""
    return cache_dir() / "onnx" / f"{weights_sha256[:24]}-v{EXPORT_VERSION}.onnx"


class _Maps:
    """The folded network plus its output transform, so the exported graph returns maps."""

    def __new__(cls, net):
        import torch

        class Maps(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, x):
                logits = self.inner(x)
                return torch.cat([torch.sigmoid(logits[:, :3]), logits[:, 3:] / FLOW_SCALE], 1)

        return Maps(net)


def export_onnx(net, path: Path, divisor: int) -> Path:
    """Export a folded, eval-mode network (torch) to ``path`` and check it against torch first.

    Raises RuntimeError when ONNX Runtime's maps differ from torch's by more than 1e-3.
    """
    import io

    import torch

    module = _Maps(net).eval()
    side = 4 * divisor
    probe = torch.rand(2, 1, side, side + divisor, generator=torch.Generator().manual_seed(0))
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (probe,), buf, input_names=["image"], output_names=["maps"], opset_version=OPSET,
                          dynamic_axes={"image": {0: "n", 2: "h", 3: "w"}, "maps": {0: "n", 2: "h", 3: "w"}},
                          dynamo=False)
        ref = module(probe).numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.part")
    tmp.write_bytes(buf.getvalue())
    try:
        got = OnnxBackend(tmp).maps(probe.numpy()[:, 0])
        err = float(np.abs(got - ref).max())
        if not err < 1e-3:
            raise RuntimeError(f"ONNX Runtime's maps differ from torch's by {err:.2e}")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def onnx_backend(weights_sha256: str, build_net, divisor: int) -> OnnxBackend | None:
    """The cached export for these weights (made now with ``build_net()`` if missing), or None
    when it cannot be made here: the caller then runs torch."""
    path = onnx_path(weights_sha256)
    if not path.is_file():
        net = build_net()  # a model that does not load is the model's error (ModelError), not the backend's
    try:
        if not path.is_file():
            export_onnx(net, path, divisor)
        return OnnxBackend(path)
    except Exception as e:  # noqa: BLE001 (an optional speed-up: any failure falls back to the reference)
        if requested() == "onnx":
            from ..errors import ModelError

            raise ModelError(f"cannot run the model with ONNX Runtime: {e}") from None
        warnings.warn(f"ONNX Runtime unavailable for this model ({e}); using torch", RuntimeWarning, stacklevel=2)
        return None
