"""RegNet backbones (Radosavovic et al., CVPR 2020, "Designing Network Design Spaces"), the trunks
of SEER (Goyal et al. 2021: SwAV on RegNetY up to 256 GF / 1.3B parameters).

The pycls definition, as torchvision's and timm's: a 3x3 stride-2 stem of 32 channels, four
stages of residual bottleneck blocks (1x1 -> grouped 3x3 (strided in the first block of a
stage) [-> squeeze-excitation] -> 1x1, bottleneck ratio 1), a 1x1 projection (+ BN) on the
shortcut where the shape changes, ReLU after the sum. RegNetY adds squeeze-excitation whose
hidden width is `se_ratio` (0.25) of the BLOCK INPUT width. Per-stage widths and depths come
from the quantized linear rule (`regnet_stages`): u_j = w_0 + w_a j for the d blocks, widths
w_0 w_m^round(log(u_j / w_0) / log w_m) rounded to multiples of 8, consecutive equal widths form
a stage; each stage's bottleneck width is then made a multiple of its group width (the
nearest, halves rounded up, as torchvision; with Python's half-to-even rounding RegNetY-800MF's
second stage would be 128 wide instead of the published 144).

Initialization as torchvision / pycls: convolutions normal(0, sqrt(2 / fan_out)), BatchNorm
scale 1, bias 0 (no zero-initialized residual scale: pycls's default).
"""

from __future__ import annotations

import functools
import math
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from jax_ssl.models._norm import GroupedBatchNorm

# name -> (depth, w_0, w_a, w_m, group_width): the pycls RegNetY models (torchvision's constructors),
# and SEER's 256 GF (VISSL's RegNet-256Gf config: "1.3B params").
REGNETY = {
    "Y-400MF": (16, 48, 27.89, 2.09, 8),
    "Y-800MF": (14, 56, 38.84, 2.4, 16),
    "Y-1.6GF": (27, 48, 20.71, 2.65, 24),
    "Y-3.2GF": (21, 80, 42.63, 2.66, 24),
    "Y-8GF": (17, 192, 76.82, 2.19, 56),
    "Y-16GF": (18, 200, 106.23, 2.48, 112),
    "Y-32GF": (20, 232, 115.89, 2.53, 232),
    "Y-128GF": (27, 456, 160.83, 2.52, 264),
    "Y-256GF": (27, 640, 230.83, 2.53, 373),
}

_PAD1 = ((1, 1), (1, 1))  # torchvision's padding=1 (see _resnet.py)


def regnet_stages(depth: int, w_0: int, w_a: float, w_m: float, group_width: int,
                  bottleneck: float = 1.0) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
  """(stage widths, stage depths, stage group widths) of the quantized linear rule (see the module doc).

  >>> regnet_stages(*REGNETY["Y-400MF"])
  ((48, 104, 208, 440), (1, 3, 6, 6), (8, 8, 8, 8))
  """
  if w_a < 0 or w_0 <= 0 or w_m <= 1 or w_0 % 8:
    raise ValueError(f"invalid RegNet parameters w_0={w_0}, w_a={w_a}, w_m={w_m}")
  u = [w_0 + w_a * j for j in range(depth)]
  block = [int(round(w_0 * w_m ** round(math.log(x / w_0) / math.log(w_m)) / 8) * 8) for x in u]
  widths, depths = [], []
  for w in block:
    if widths and widths[-1] == w:
      depths[-1] += 1
    else:
      widths.append(w)
      depths.append(1)
  groups = []
  for i, w in enumerate(widths):  # bottleneck widths a multiple of the (capped) group width
    w_b = int(w * bottleneck)
    g = min(group_width, w_b)
    w_b2 = max(g, int(w_b + g / 2) // g * g)  # to the nearest multiple, halves up (torchvision's
    if w_b2 < 0.9 * w_b:                       # _make_divisible), never 10% below
      w_b2 += g
    widths[i] = int(w_b2 / bottleneck)
    groups.append(g)
  return tuple(widths), tuple(depths), tuple(groups)


class RegNetBlock(nn.Module):
  """x -> relu(shortcut(x) + c(se(b(a(x))))) (torchvision's ResBottleneckBlock)."""

  width: int
  strides: int
  group_width: int
  se_ratio: float
  bottleneck: float
  conv: Any
  norm: Any

  @nn.compact
  def __call__(self, x):
    w_in = x.shape[-1]
    w_b = int(round(self.width * self.bottleneck))
    y = nn.relu(self.norm(name="a_bn")(self.conv(w_b, (1, 1), name="a")(x)))
    y = self.conv(w_b, (3, 3), (self.strides, self.strides), padding=_PAD1, feature_group_count=w_b // self.group_width,
                  name="b")(y)
    y = nn.relu(self.norm(name="b_bn")(y))
    if self.se_ratio:
      s = jnp.mean(y, axis=(1, 2), keepdims=True)
      s = nn.relu(self.conv(int(round(self.se_ratio * w_in)), (1, 1), use_bias=True, name="se_reduce")(s))
      y = y * nn.sigmoid(self.conv(w_b, (1, 1), use_bias=True, name="se_expand")(s))
    y = self.norm(name="c_bn")(self.conv(self.width, (1, 1), name="c")(y))
    if w_in != self.width or self.strides != 1:
      x = self.norm(name="proj_bn")(self.conv(self.width, (1, 1), (self.strides, self.strides), name="proj")(x))
    return nn.relu(x + y)


class RegNet(nn.Module):
  """RegNet trunk returning globally average-pooled features [N, widths[-1]] (the `ResNet` interface).

  Attributes:
    widths, depths, group_widths: per stage (`regnet_stages`; `regnet(variant)` fills them).
    se_ratio: squeeze-excitation width over the block input width (0.25: RegNetY; 0: RegNetX).
    bottleneck: bottleneck ratio (1 for the published RegNets).
    stem: "imagenet" (3x3 stride 2, the paper's) or "cifar" (3x3 stride 1, for 32 px images).
    stem_width: 32. bn_axis_name, bn_momentum, dtype: as `ResNet`.
    bn_group_size: BatchNorm statistics over groups of this many consecutive examples
      (`GroupedBatchNorm`: SEER's SyncBN groups); None: over the whole batch.
  """

  widths: Sequence[int] = (48, 104, 208, 440)
  depths: Sequence[int] = (1, 3, 6, 6)
  group_widths: Sequence[int] = (8, 8, 8, 8)
  se_ratio: float = 0.25
  bottleneck: float = 1.0
  stem: str = "imagenet"
  stem_width: int = 32
  bn_axis_name: Any = None
  bn_momentum: float = 0.9
  bn_group_size: int | None = None
  dtype: Any = jnp.float32

  @property
  def num_features(self) -> int:
    return int(self.widths[-1])

  @nn.compact
  def __call__(self, x, *, train: bool, return_map: bool = False, return_blocks: bool = False):
    if not len(self.widths) == len(self.depths) == len(self.group_widths):
      raise ValueError(f"RegNet widths, depths and group_widths differ in length: {self.widths}, "
                       f"{self.depths}, {self.group_widths}")
    if self.stem not in ("cifar", "imagenet"):
      raise ValueError(f"RegNet stem must be 'cifar' or 'imagenet', got {self.stem!r}")
    conv = functools.partial(nn.Conv, use_bias=False, dtype=self.dtype,
                             kernel_init=nn.initializers.variance_scaling(2.0, "fan_out", "normal"))
    if self.bn_group_size is None:
      norm = functools.partial(nn.BatchNorm, use_running_average=not train, momentum=self.bn_momentum,
                               epsilon=1e-5, dtype=self.dtype, axis_name=self.bn_axis_name)
    elif self.bn_axis_name is not None:
      raise ValueError("RegNet: bn_group_size groups the global batch; it does not combine with bn_axis_name")
    else:
      norm = functools.partial(GroupedBatchNorm, use_running_average=not train, group_size=int(self.bn_group_size),
                               momentum=self.bn_momentum, epsilon=1e-5, dtype=self.dtype)
    x = jnp.asarray(x, self.dtype)
    stride = 2 if self.stem == "imagenet" else 1
    x = nn.relu(norm(name="stem_bn")(conv(self.stem_width, (3, 3), (stride, stride), padding=_PAD1,
                                          name="stem_conv")(x)))
    blocks = {}
    for i, (w, d, g) in enumerate(zip(self.widths, self.depths, self.group_widths)):
      for j in range(d):
        x = RegNetBlock(int(w), 2 if j == 0 else 1, int(g), self.se_ratio, self.bottleneck, conv=conv, norm=norm,
                        name=f"stage{i + 1}_block{j + 1}")(x)
      blocks[f"stage{i + 1}"] = jnp.mean(x, axis=(1, 2)).astype(jnp.float32)
    if return_blocks:
      return blocks
    if return_map:
      return x.astype(jnp.float32)
    return blocks[f"stage{len(self.widths)}"]


def regnet(variant: str, **kw) -> RegNet:
  """A published RegNetY by name ("Y-400MF" ... "Y-128GF", SEER's "Y-256GF"); `kw` as `RegNet`."""
  if variant not in REGNETY:
    raise ValueError(f"unknown RegNet variant {variant!r}; available: {', '.join(REGNETY)}")
  widths, depths, groups = regnet_stages(*REGNETY[variant])
  return RegNet(widths=widths, depths=depths, group_widths=groups, **kw)
