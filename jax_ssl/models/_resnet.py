"""ResNet backbones (He et al. 2016) with the CIFAR and ImageNet stems.

The CIFAR stem is the 3x3 stride-1 convolution without max-pooling used by SimCLR's CIFAR
experiments (Chen et al. 2020, appendix B.9); the ImageNet stem is the 7x7 stride-2
convolution followed by a 3x3 stride-2 max-pool.

BatchNorm statistics are those of the *global* batch: under `jax.jit` with a batch-sharded
input the compiler reduces over every device; under `shard_map`/`pmap` pass
`bn_axis_name` so the statistics are `pmean`-ed over that axis.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import flax.linen as nn
import jax.numpy as jnp

ModuleDef = Any

STAGE_SIZES = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}


# torchvision's padding=1 for every 3x3 convolution. For stride 1 it is "SAME"; for stride 2 on an
# even input "SAME" pads (0, 1), which shifts every window by a pixel relative to torchvision.
_PAD1 = ((1, 1), (1, 1))


class BasicBlock(nn.Module):
  """Two 3x3 convolutions; the residual branch's last BN starts at zero scale."""

  filters: int
  strides: int
  conv: ModuleDef
  norm: ModuleDef
  act: Callable = nn.relu

  @nn.compact
  def __call__(self, x):
    residual = x
    y = self.conv(self.filters, (3, 3), (self.strides, self.strides), padding=_PAD1)(x)
    y = self.act(self.norm()(y))
    y = self.conv(self.filters, (3, 3), padding=_PAD1)(y)
    y = self.norm(scale_init=nn.initializers.zeros)(y)
    if residual.shape != y.shape:
      residual = self.conv(self.filters, (1, 1), (self.strides, self.strides), name="proj_conv")(residual)
      residual = self.norm(name="proj_bn")(residual)
    return self.act(residual + y)


class Bottleneck(nn.Module):
  """1x1 -> 3x3 (strided, as torchvision "ResNet v1.5") -> 1x1 with 4x expansion."""

  filters: int
  strides: int
  conv: ModuleDef
  norm: ModuleDef
  act: Callable = nn.relu

  @nn.compact
  def __call__(self, x):
    residual = x
    y = self.act(self.norm()(self.conv(self.filters, (1, 1))(x)))
    y = self.conv(self.filters, (3, 3), (self.strides, self.strides), padding=_PAD1)(y)
    y = self.act(self.norm()(y))
    y = self.conv(self.filters * 4, (1, 1))(y)
    y = self.norm(scale_init=nn.initializers.zeros)(y)
    if residual.shape != y.shape:
      residual = self.conv(self.filters * 4, (1, 1), (self.strides, self.strides), name="proj_conv")(residual)
      residual = self.norm(name="proj_bn")(residual)
    return self.act(residual + y)


class ResNet(nn.Module):
  """ResNet trunk returning globally average-pooled features [N, C].

  Attributes:
    depth: 18, 34, 50, 101 or 152.
    width: channels of the first stage (64 in the paper); stages use width * 2**i
      (times 4 for bottleneck outputs).
    stem: "cifar" (3x3/1, no pool) or "imagenet" (7x7/2 + 3x3/2 max-pool).
    bn_axis_name: axis to average BatchNorm statistics over under shard_map/pmap.
    bn_momentum: running-average decay (0.9, i.e. torch momentum 0.1).
    dtype: computation dtype (parameters stay float32).

  Call with `return_map=True` to get the last feature map [N, h, w, C] instead of the pooled
  vector (used by dense methods such as DetCon), or `return_blocks=True` for a dict of the
  pooled output of every stage (per-block probes).
  """

  depth: int = 18
  width: int = 64
  stem: str = "cifar"
  bn_axis_name: Any = None
  bn_momentum: float = 0.9
  dtype: Any = jnp.float32

  @property
  def num_features(self) -> int:
    return self.width * 8 * (4 if self.depth >= 50 else 1)

  @nn.compact
  def __call__(self, x, *, train: bool, return_map: bool = False, return_blocks: bool = False):
    if self.depth not in STAGE_SIZES:
      raise ValueError(f"ResNet depth must be one of {sorted(STAGE_SIZES)}, got {self.depth}")
    if self.stem not in ("cifar", "imagenet"):
      raise ValueError(f"ResNet stem must be 'cifar' or 'imagenet', got {self.stem!r}")
    conv = functools.partial(nn.Conv, use_bias=False, dtype=self.dtype,
                             kernel_init=nn.initializers.variance_scaling(2.0, "fan_out", "normal"))
    norm = functools.partial(nn.BatchNorm, use_running_average=not train, momentum=self.bn_momentum,
                             epsilon=1e-5, dtype=self.dtype, axis_name=self.bn_axis_name)
    block = Bottleneck if self.depth >= 50 else BasicBlock
    x = jnp.asarray(x, self.dtype)
    if self.stem == "cifar":
      x = conv(self.width, (3, 3), padding=_PAD1, name="stem_conv")(x)
      x = nn.relu(norm(name="stem_bn")(x))
    else:
      x = conv(self.width, (7, 7), (2, 2), padding=[(3, 3), (3, 3)], name="stem_conv")(x)
      x = nn.relu(norm(name="stem_bn")(x))
      # torchvision's MaxPool2d(3, 2, padding=1): one -inf row/column on every side. "SAME"
      # would pad only after (0, 1) and shift every window by a pixel, so torchvision weights
      # converted either way would not give the same features.
      x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    blocks = {}
    for i, num_blocks in enumerate(STAGE_SIZES[self.depth]):
      for j in range(num_blocks):
        strides = 2 if i > 0 and j == 0 else 1
        x = block(self.width * 2**i, strides, conv=conv, norm=norm, name=f"stage{i + 1}_block{j + 1}")(x)
      blocks[f"stage{i + 1}"] = jnp.mean(x, axis=(1, 2)).astype(jnp.float32)
    if return_blocks:
      return blocks
    if return_map:
      return x.astype(jnp.float32)
    return blocks[f"stage{len(STAGE_SIZES[self.depth])}"]


def resnet18(**kw) -> ResNet:
  return ResNet(depth=18, **kw)


def resnet34(**kw) -> ResNet:
  return ResNet(depth=34, **kw)


def resnet50(**kw) -> ResNet:
  return ResNet(depth=50, **kw)
