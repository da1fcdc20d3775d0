"""Heads: projection / prediction MLPs and classifiers."""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp


class MLP(nn.Module):
  """Projection MLP: (Linear -> BN -> ReLU) x len(hidden_dims) -> Linear [-> BN].

  `activation="gelu"`: exact GELU instead of ReLU (MSN's / DINO's ViT heads).

  SimCLR v1 uses one hidden layer without BN in the head; SimCLR v2, BYOL and SwAV use BN
  in the hidden layers (`use_bn=True`). `last_bn` adds a BN without learned scale on the output
  (SimCLR v2's projector).
  """

  hidden_dims: Sequence[int]
  out_dim: int
  use_bn: bool = True
  last_bn: bool = False
  bn_axis_name: Any = None
  # Left out of checkpoint signatures while at its default (checkpoints from before it existed).
  activation: str = dataclasses.field(default="relu", metadata={"signature_omit_default": True})
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, *, train: bool):
    if self.activation not in ("relu", "gelu"):
      raise ValueError(f"MLP activation must be 'relu' or 'gelu' (exact), got {self.activation!r}")
    act = nn.relu if self.activation == "relu" else lambda v: nn.gelu(v, approximate=False)
    for i, h in enumerate(self.hidden_dims):
      x = nn.Dense(h, use_bias=not self.use_bn, dtype=self.dtype, name=f"hidden{i}")(x)
      if self.use_bn:
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                         axis_name=self.bn_axis_name, dtype=self.dtype, name=f"bn{i}")(x)
      x = act(x)
    x = nn.Dense(self.out_dim, use_bias=not self.last_bn, dtype=self.dtype, name="out")(x)
    if self.last_bn:
      x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, use_scale=False,
                       axis_name=self.bn_axis_name, dtype=self.dtype, name="out_bn")(x)
    return x.astype(jnp.float32)
