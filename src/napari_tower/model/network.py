"""TOWER network: residual CNN encoder + U-Net decoder + task heads.

The segmentation head predicts three or five maps per pixel:
0. foreground logit, 1. boundary logit, 2. centerness logit (distance to the object's
edge, normalised per object to [0, 1]); 3-4. flow (dy, dx) towards the object's centre,
at FLOW_SCALE times unit length. Seeded watershed on centerness separates touching
nuclei (``predict/postprocess.py``); following the flows separates irregular cells
(``predict/flow_dynamics.py``).

The restoration head (1 channel) and the projection head (MLP on pooled bottleneck
features) serve self-supervised pretraining; fine-tuning and inference ignore them.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
import torch.nn.functional as F

SEG_CHANNELS = ("foreground", "boundary", "centerness", "flow y", "flow x")
# flows are regressed at this length, so their error weighs like the other maps' in the loss
FLOW_SCALE = 5.0


@dataclass
class ArchConfig:
    in_channels: int = 1
    widths: tuple[int, ...] = (16, 32, 64, 128)
    blocks_per_level: int = 1
    seg_channels: int = 3  # 5 adds the flow maps
    proj_dim: int = 64
    # "resblock": concat skip + residual block per level; "light": projected skip added,
    # one conv per level (about half the decoder's compute, for fast CPU inference)
    decoder: str = "resblock"
    # 2: the encoder/decoder trunk runs at half resolution and a light full-resolution
    # branch refines its upsampled features (about 3x faster on CPU than stride 1)
    stem_stride: int = 1
    refine_width: int = 8

    def to_dict(self) -> dict:
        d = asdict(self)
        d["widths"] = list(self.widths)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ArchConfig":
        d = dict(d)
        d["widths"] = tuple(d["widths"])
        return cls(**d)

    @property
    def divisor(self) -> int:
        """Input sides must be multiples of this (one 2x pooling per level below the first)."""
        return self.stem_stride * 2 ** (len(self.widths) - 1)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip = None
        if stride != 1 or cin != cout:
            self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        y = self.bn2(self.conv2(y))
        s = x if self.skip is None else self.skip(x)
        return F.relu(y + s, inplace=True)


class Encoder(nn.Module):
    """Residual encoder; returns the feature map of every level (fine to coarse)."""

    def __init__(self, cfg: ArchConfig):
        super().__init__()
        w = cfg.widths
        self.stem = nn.Sequential(
            nn.Conv2d(cfg.in_channels, w[0], 3, cfg.stem_stride, 1, bias=False), nn.BatchNorm2d(w[0]), nn.ReLU(inplace=True)
        )
        levels = []
        for i, c in enumerate(w):
            cin = w[0] if i == 0 else w[i - 1]
            blocks = [ResBlock(cin, c, stride=1 if i == 0 else 2)]
            blocks += [ResBlock(c, c) for _ in range(cfg.blocks_per_level - 1)]
            levels.append(nn.Sequential(*blocks))
        self.levels = nn.ModuleList(levels)

    def forward(self, x):
        x = self.stem(x)
        feats = []
        for level in self.levels:
            x = level(x)
            feats.append(x)
        return feats


class UpBlock(nn.Module):
    def __init__(self, cin: int, cskip: int, cout: int):
        super().__init__()
        self.reduce = nn.Conv2d(cin, cout, 1, bias=False)
        self.block = ResBlock(cout + cskip, cout)

    def forward(self, x, skip):
        x = F.interpolate(self.reduce(x), size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.block(torch.cat([x, skip], dim=1))


class LightUpBlock(nn.Module):
    def __init__(self, cin: int, cskip: int, cout: int):
        super().__init__()
        self.reduce = nn.Conv2d(cin, cout, 1, bias=False)
        self.skip = nn.Conv2d(cskip, cout, 1, bias=False) if cskip != cout else nn.Identity()
        self.conv = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    def forward(self, x, skip):
        x = F.interpolate(self.reduce(x), size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv(x + self.skip(skip))


class Decoder(nn.Module):
    def __init__(self, cfg: ArchConfig):
        super().__init__()
        w = cfg.widths
        block = {"resblock": UpBlock, "light": LightUpBlock}[cfg.decoder]
        self.ups = nn.ModuleList(block(w[i + 1], w[i], w[i]) for i in reversed(range(len(w) - 1)))

    def forward(self, feats):
        x = feats[-1]
        for up, skip in zip(self.ups, reversed(feats[:-1])):
            x = up(x, skip)
        return x


class TowerNet(nn.Module):
    def __init__(self, cfg: ArchConfig | None = None):
        super().__init__()
        self.cfg = cfg or ArchConfig()
        w = self.cfg.widths
        self.encoder = Encoder(self.cfg)
        self.decoder = Decoder(self.cfg)
        if self.cfg.stem_stride > 1:
            r = self.cfg.refine_width
            self.fullres = nn.Sequential(nn.Conv2d(self.cfg.in_channels, r, 3, 1, 1, bias=False), nn.BatchNorm2d(r), nn.ReLU(inplace=True))
            self.refine = nn.Sequential(nn.Conv2d(w[0] + r, w[0], 3, 1, 1, bias=False), nn.BatchNorm2d(w[0]), nn.ReLU(inplace=True))
        self.seg_head = nn.Conv2d(w[0], self.cfg.seg_channels, 1)
        self.restore_head = nn.Conv2d(w[0], self.cfg.in_channels, 1)
        self.proj_head = nn.Sequential(nn.Linear(w[-1], w[-1]), nn.ReLU(inplace=True), nn.Linear(w[-1], self.cfg.proj_dim))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def decode(self, x, feats):
        """Decoder features at the input's resolution (what every pixel head reads)."""
        return self._decode(x, feats)

    def _decode(self, x, feats):
        dec = self.decoder(feats)
        if self.cfg.stem_stride > 1:
            up = F.interpolate(dec, size=x.shape[-2:], mode="bilinear", align_corners=False)
            dec = self.refine(torch.cat([up, self.fullres(x)], dim=1))
        return dec

    def forward(self, x):
        """Segmentation logits, shape (N, seg_channels, H, W)."""
        return self.seg_head(self._decode(x, self.encoder(x)))

    def forward_all(self, x):
        """All heads at once, for pretraining: (seg logits, restoration, projection)."""
        feats = self.encoder(x)
        dec = self._decode(x, feats)
        pooled = feats[-1].mean(dim=(2, 3))
        return self.seg_head(dec), self.restore_head(dec), self.proj_head(pooled)


@torch.no_grad()
def add_flow_maps(net: TowerNet) -> TowerNet:
    """Give a three-map network the two flow maps (zero-initialised), keeping its other maps."""
    if net.cfg.seg_channels >= 5:
        return net
    old = net.seg_head
    new = nn.Conv2d(old.in_channels, 5, 1).to(old.weight.device)
    new.weight.zero_()
    new.bias.zero_()
    new.weight[: old.out_channels] = old.weight
    new.bias[: old.out_channels] = old.bias
    net.seg_head = new
    net.cfg.seg_channels = 5
    return net


def head_names(net: TowerNet) -> list[str]:
    """Names of the maps this network's segmentation head predicts (for model cards)."""
    return list(SEG_CHANNELS[: net.cfg.seg_channels])


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Fold an eval-mode BatchNorm into the convolution before it (exact up to rounding)."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    conv.weight.copy_(conv.weight * scale[:, None, None, None])
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    conv.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias)


@torch.no_grad()
def fold_batchnorm(net: TowerNet) -> TowerNet:
    """Inference-only network: every BatchNorm folded into its convolution.

    Each BatchNorm is a full pass over the activations, memory-bound on CPU; folding them
    cuts whole-image prediction time without changing the output. The result must not
    be trained (statistics are gone).
    """
    net.eval()
    for m in list(net.modules()):
        if isinstance(m, ResBlock):
            _fold(m.conv1, m.bn1)
            _fold(m.conv2, m.bn2)
            m.bn1, m.bn2 = nn.Identity(), nn.Identity()
        if isinstance(m, nn.Sequential):
            for i in range(len(m) - 1):
                if isinstance(m[i], nn.Conv2d) and isinstance(m[i + 1], nn.BatchNorm2d):
                    _fold(m[i], m[i + 1])
                    m[i + 1] = nn.Identity()
    return net
