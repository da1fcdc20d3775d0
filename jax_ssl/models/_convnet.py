"""A tiny all-convolutional backbone for smoke tests (fast to compile, nothing from a paper)."""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp


class ConvNet(nn.Module):
  """`len(widths)` stride-2 3x3 convolutions (no bias), each followed by BatchNorm and ReLU.

  Same call interface as `ResNet`: images [N, H, W, C] -> globally averaged features
  [N, widths[-1]] float32; `return_map=True` gives the last map [N, H / 2**k, W / 2**k, widths[-1]]
  (SAME padding: 16 px -> 4x4 with two layers); `return_blocks=True` gives {"final": pooled}.
  BatchNorm uses momentum 0.9 and the global batch's statistics (see `ResNet`), or the statistics
  `pmean`-ed over `bn_axis_name` under shard_map/pmap.

  >>> import jax
  >>> model = ConvNet(widths=(4, 6))
  >>> x = jnp.zeros((2, 16, 16, 3))
  >>> variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))  # shapes only
  >>> jax.eval_shape(lambda v: model.apply(v, x, train=False), variables).shape, model.num_features
  ((2, 6), 6)
  """

  widths: Sequence[int] = (8, 8)
  bn_axis_name: Any = None
  dtype: Any = jnp.float32

  @property
  def num_features(self) -> int:
    return self.widths[-1]

  @nn.compact
  def __call__(self, x, *, train: bool, return_map: bool = False, return_blocks: bool = False):
    x = jnp.asarray(x, self.dtype)
    for i, w in enumerate(self.widths):
      x = nn.Conv(w, (3, 3), (2, 2), use_bias=False, dtype=self.dtype, name=f"conv{i}")(x)
      x = nn.BatchNorm(use_running_average=not train, momentum=0.9, axis_name=self.bn_axis_name,
                       dtype=self.dtype, name=f"bn{i}")(x)
      x = nn.relu(x)
    pooled = jnp.mean(x, axis=(1, 2)).astype(jnp.float32)
    if return_blocks:
      return {"final": pooled}
    if return_map:
      return x.astype(jnp.float32)
    return pooled
