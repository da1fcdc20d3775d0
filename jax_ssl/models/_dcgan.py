"""DCGAN networks (Radford, Metz & Chintala 2015), as the DCGAN and Context Encoders code build them.

* `DCGANEncoder`: stride-2 4x4 convolutions (padding 1, no bias), BatchNorm on every layer but
  the first, LeakyReLU 0.2: the discriminator's trunk (``netD`` of soumith/dcgan.torch without
  its last layer) and the Context Encoder's encoder (``netE`` of pathak22/context-encoder). It
  is a library backbone (`build_backbone("dcgan", ...)`, the `ResNet` call interface): its
  pooled features are the DCGAN paper's (Sec. 5.1): every layer's activations max-pooled to a
  4 x 4 grid, flattened and concatenated.
* `DCGANDiscriminator`: the encoder plus a last convolution over the whole final map to one
  logit (the official ``SpatialConvolution(ndf * 8, 1, 4, 4)``; the sigmoid lives in the loss).
* `DCGANGenerator`: a vector (z, or the Context Encoder's bottleneck) -> a 4 x 4 map (the
  official 4x4 full convolution of a 1x1 input, i.e. a dense layer), then stride-2 4x4
  transposed convolutions with BatchNorm and ReLU up to `image_size`, and a tanh.

Initialization as the official code's ``weights_init``: convolution kernels N(0, 0.02), BatchNorm
scales N(1, 0.02), offsets 0. The official code zeroes every convolution bias before each step,
so the convolutions here have none. BatchNorm: momentum 0.9 in Flax terms (Torch's 0.1), eps 1e-5.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

_INIT = nn.initializers.normal(0.02)


def _bn_scale_init(key, shape, dtype=jnp.float32):
  return 1.0 + 0.02 * jax.random.normal(key, shape, dtype)


def _batch_norm(train: bool, axis_name, dtype, name: str) -> nn.BatchNorm:
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, scale_init=_bn_scale_init,
                      axis_name=axis_name, dtype=dtype, name=name)


def max_pool_to_grid(x, grid: int):
  """Max-pools a map [N, H, W, C] to [N, grid, grid, C] with non-overlapping windows (H, W multiples of grid)."""
  h, w = x.shape[1:3]
  if h % grid or w % grid:
    raise ValueError(f"a {h}x{w} map does not pool to a {grid}x{grid} grid (DCGAN features need every layer's "
                     f"side a multiple of {grid}: a larger input or fewer layers)")
  return nn.max_pool(x, (h // grid, w // grid), strides=(h // grid, w // grid))


class DCGANEncoder(nn.Module):
  """`len(widths)` stride-2 4x4 convolutions: [N, S, S, C] -> last map [N, S / 2^k, S / 2^k, widths[-1]].

  Pooled features: each layer max-pooled to `pool_grid` x `pool_grid` and concatenated,
  [N, sum(widths) * pool_grid^2] (the DCGAN paper's discriminator features); `return_blocks`
  gives each layer's pooled part ("layer1", ...) and "final" (their concatenation).

  >>> import jax
  >>> enc = DCGANEncoder(widths=(4, 8, 16))
  >>> x = jnp.zeros((2, 32, 32, 3))
  >>> v = jax.eval_shape(lambda: enc.init(jax.random.key(0), x, train=False))
  >>> jax.eval_shape(lambda v: enc.apply(v, x, train=False), v).shape, enc.num_features
  ((2, 448), 448)
  """

  widths: Sequence[int] = (64, 128, 256)
  first_norm: bool = False
  negative_slope: float = 0.2
  pool_grid: int = 4
  bn_axis_name: Any = None
  dtype: Any = jnp.float32

  @property
  def num_features(self) -> int:
    return int(sum(self.widths)) * self.pool_grid ** 2

  @property
  def map_features(self) -> int:
    """Channels of the `return_map` output (the pooled features are not its average)."""
    return int(self.widths[-1])

  @nn.compact
  def __call__(self, x, *, train: bool, return_map: bool = False, return_blocks: bool = False):
    x = jnp.asarray(x, self.dtype)
    maps = []
    for i, w in enumerate(self.widths):
      x = nn.Conv(int(w), (4, 4), (2, 2), padding=((1, 1), (1, 1)), use_bias=False, kernel_init=_INIT,
                  dtype=self.dtype, name=f"conv{i}")(x)
      if i > 0 or self.first_norm:
        x = _batch_norm(train, self.bn_axis_name, self.dtype, f"bn{i}")(x)
      x = nn.leaky_relu(x, self.negative_slope)
      maps.append(x)
    if return_map:
      return x.astype(jnp.float32)
    blocks = {f"layer{i + 1}": max_pool_to_grid(m, self.pool_grid).reshape(len(m), -1).astype(jnp.float32)
              for i, m in enumerate(maps)}
    final = jnp.concatenate(list(blocks.values()), axis=-1)
    return {**blocks, "final": final} if return_blocks else final


class DCGANDiscriminator(nn.Module):
  """`backbone` (a `DCGANEncoder`) and a convolution over its whole last map -> logits [N] (float32)."""

  backbone: nn.Module

  @nn.compact
  def __call__(self, x, *, train: bool):
    fmap = self.backbone(x, train=train, return_map=True)
    logit = nn.Conv(1, fmap.shape[1:3], padding="VALID", use_bias=False, kernel_init=_INIT, name="logit")(fmap)
    return logit.reshape(len(x)).astype(jnp.float32)

  def features(self, x):
    return self.backbone(x, train=False)

  def block_features(self, x):
    return self.backbone(x, train=False, return_blocks=True)


class DCGANGenerator(nn.Module):
  """A vector [N, D] -> images [N, image_size, image_size, channels] in (-1, 1) (tanh).

  A dense layer to a 4 x 4 x `width * 2^(k-1)` map (k = log2(image_size / 4) upsamplings), then
  stride-2 4x4 transposed convolutions halving the width; BatchNorm + ReLU after every layer
  but the last (official ``netG``: 512 -> 256 -> 128 -> 64 -> 3 for 64 px at width 64).
  """

  image_size: int = 32
  width: int = 64
  channels: int = 3
  bn_axis_name: Any = None
  dtype: Any = jnp.float32

  @property
  def num_upsamplings(self) -> int:
    k = int(round(math.log2(self.image_size / 4)))
    if k < 1 or 4 * 2 ** k != self.image_size:
      raise ValueError(f"DCGANGenerator image_size must be 4 * 2^k (8, 16, 32, 64, 128...), got {self.image_size}")
    return k

  @nn.compact
  def __call__(self, z, *, train: bool):
    k = self.num_upsamplings
    w = self.width * 2 ** (k - 1)
    x = nn.Dense(4 * 4 * w, use_bias=False, kernel_init=_INIT, dtype=self.dtype, name="project")(jnp.asarray(z, self.dtype))
    x = x.reshape(len(z), 4, 4, w)
    x = nn.relu(_batch_norm(train, self.bn_axis_name, self.dtype, "bn_project")(x))
    for i in range(k):
      last = i == k - 1
      out = self.channels if last else w // 2 ** (i + 1)
      # Torch's SpatialFullConvolution(k=4, s=2, p=1) doubles the side: 'SAME' transposed padding does the same.
      x = nn.ConvTranspose(out, (4, 4), (2, 2), padding="SAME", use_bias=False, kernel_init=_INIT,
                           dtype=self.dtype, name=f"deconv{i}")(x)
      if not last:
        x = nn.relu(_batch_norm(train, self.bn_axis_name, self.dtype, f"bn{i}")(x))
    return jnp.tanh(x).astype(jnp.float32)
