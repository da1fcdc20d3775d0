"""The network shared by the pretext-classification methods (RotNet, Context Prediction, Jigsaw).

`TiledClassifier` runs ONE trunk on every tile of an example (tiles concatenated along the
batch axis, so the towers share weights by construction and BatchNorm sees all tiles), an
optional per-tile embedding ("fc6", Dense -> BN -> ReLU), concatenates the tiles' embeddings in
order and classifies them with an MLP head:

* RotNet: 1 tile (the rotated image), no fc6, a linear head over 4 rotations.
* Context Prediction (Doersch et al. 2015, Fig. 3): 2 tiles, fc6 per patch, fc7 + fc8 on
  the concatenation, 8 classes.
* Jigsaw (Noroozi & Favaro 2016, Fig. 3, the "context-free network"): 9 tiles, fc6 per
  tile, fc7 + fc8 on the concatenation, P classes.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from jax_ssl.models import MLP


class TiledClassifier(nn.Module):
  """x [B, T, h, w, 3] -> logits [B, num_classes].

  Attributes:
    backbone: trunk mapping images [N, h, w, 3] to pooled features [N, F] (`train=`).
    num_classes: pretext classes (4, 8, P).
    embed_dim: per-tile fc6 width; None feeds the pooled trunk features directly.
    head_hidden_dims: hidden layers of the head on the concatenation (fc7...); () is linear.
  """

  backbone: nn.Module
  num_classes: int
  embed_dim: int | None = None
  head_hidden_dims: Sequence[int] = ()
  dtype: Any = jnp.float32

  def setup(self):
    if self.embed_dim is not None:
      self.fc6 = nn.Dense(self.embed_dim, use_bias=False, dtype=self.dtype, name="fc6")
      self.fc6_bn = nn.BatchNorm(momentum=0.9, epsilon=1e-5, dtype=self.dtype, name="fc6_bn")
    self.head = MLP(tuple(self.head_hidden_dims), self.num_classes, use_bn=True, dtype=self.dtype)

  def tile_embedding(self, x, *, train: bool):
    """Per-tile embedding [N, D] of images [N, h, w, 3]: fc6 output (or pooled trunk features)."""
    f = self.backbone(x, train=train)
    if self.embed_dim is None:
      return f
    return nn.relu(self.fc6_bn(self.fc6(f), use_running_average=not train))

  def __call__(self, x, *, train: bool):
    if x.ndim != 5:
      raise ValueError(f"TiledClassifier expects tiles [B, T, h, w, C], got {x.shape}")
    b, t = x.shape[:2]
    e = self.tile_embedding(x.reshape((b * t,) + x.shape[2:]), train=train)
    e = e.reshape(b, t * e.shape[-1])  # tile order preserved: the head must see positions
    return self.head(e, train=train)

  def features(self, x):
    return self.backbone(x, train=False)

  def block_features(self, x):
    return self.backbone(x, train=False, return_blocks=True)

  def embedding(self, x):
    return self.tile_embedding(x, train=False)
