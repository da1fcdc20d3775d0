"""BatchNorm over groups of the batch: SyncBN with process groups (SEER, Goyal et al. 2021: BN
statistics synchronized over groups of 64 GPUs instead of all 512) in the global-batch view.

Under `jax.jit` with the batch sharded over devices in order, BatchNorm's statistics are those
of the whole global batch (`nn.BatchNorm`). `GroupedBatchNorm(group_size=g)` computes them
over consecutive groups of `g` examples instead: with `g` = examples per device x devices per
group, each group is exactly the examples that group of devices holds (for a batch passed to
the network as sharded; a concatenation of multi-crop views mixes the devices' shares, and
there the groups are groups of `g` consecutive examples of the concatenation). The running
statistics move by the mean over groups of the groups' mean and (biased) variance, as
`nn.BatchNorm` moves by the batch's. Parameters and statistics are named as `nn.BatchNorm`'s
(scale, bias; mean, var), so checkpoints and exported backbones read the same.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp


class GroupedBatchNorm(nn.Module):
  """BatchNorm with statistics per group of `group_size` consecutive examples.

  Same call as `nn.BatchNorm` built with `use_running_average` (`momentum`, `epsilon`, `dtype`,
  `scale_init`). The whole-batch case is `nn.BatchNorm` itself (backbones pick it when no group
  size is set).
  """

  use_running_average: bool = False
  group_size: int = 1024
  momentum: float = 0.9
  epsilon: float = 1e-5
  dtype: Any = jnp.float32
  scale_init: Any = nn.initializers.ones

  @nn.compact
  def __call__(self, x):
    if self.group_size < 1:
      raise ValueError(f"GroupedBatchNorm group_size must be positive, got {self.group_size}")
    c = x.shape[-1]
    scale = self.param("scale", self.scale_init, (c,), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, (c,), jnp.float32)
    ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((c,), jnp.float32))
    ra_var = self.variable("batch_stats", "var", lambda: jnp.ones((c,), jnp.float32))
    if self.use_running_average:
      y = (x - ra_mean.value) * (scale / jnp.sqrt(ra_var.value + self.epsilon)) + bias
      return y.astype(self.dtype)
    n = x.shape[0]
    if n % self.group_size:
      raise ValueError(f"GroupedBatchNorm: a batch of {n} is not a multiple of group_size {self.group_size}")
    g = x.reshape((n // self.group_size, self.group_size) + x.shape[1:]).astype(jnp.float32)
    axes = tuple(range(1, g.ndim - 1))  # per group: over its examples and positions
    mean = jnp.mean(g, axis=axes, keepdims=True)
    var = jnp.mean(jnp.square(g - mean), axis=axes, keepdims=True)
    y = (g - mean) * (scale / jnp.sqrt(var + self.epsilon)) + bias
    if not self.is_initializing():
      over = tuple(range(g.ndim - 1))
      ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * jnp.mean(mean, axis=over)
      ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * jnp.mean(var, axis=over)
    return y.reshape(x.shape).astype(self.dtype)
