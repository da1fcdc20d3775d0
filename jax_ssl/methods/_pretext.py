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
import numpy as np
import tensorflow as tf

from jax_ssl.models import MLP


class TiledClassifier(nn.Module):
  """x [B, T, h, w, 3] -> logits [B, num_classes].

  Attributes:
    backbone: trunk mapping images [N, h, w, 3] to pooled features [N, F] (`train=`).
    num_classes: pretext classes (4, 8, P).
    embed_dim: per-tile fc6 width; None feeds the pooled trunk features directly.
    head_hidden_dims: hidden layers of the head on the concatenation (fc7...); () is linear.
    spatial_fc6: fc6 reads the flattened last feature map (as AlexNet's fc6 reads pool5 in
      both papers), so the head knows *where* in a tile things are; global average pooling
      would throw away exactly the layout these tasks are about. False: fc6 on pooled features.
  """

  backbone: nn.Module
  num_classes: int
  embed_dim: int | None = None
  head_hidden_dims: Sequence[int] = ()
  spatial_fc6: bool = True
  dtype: Any = jnp.float32

  def setup(self):
    if self.embed_dim is not None:
      self.fc6 = nn.Dense(self.embed_dim, use_bias=False, dtype=self.dtype, name="fc6")
      self.fc6_bn = nn.BatchNorm(momentum=0.9, epsilon=1e-5, dtype=self.dtype, name="fc6_bn")
    self.head = MLP(tuple(self.head_hidden_dims), self.num_classes, use_bn=True, dtype=self.dtype)

  def tile_embedding(self, x, *, train: bool):
    """Per-tile embedding [N, D] of images [N, h, w, 3]: fc6 output (or pooled trunk features)."""
    if self.embed_dim is None:
      return self.backbone(x, train=train)
    if self.spatial_fc6:
      return self.tile_map_and_embedding(x, train=train)[1]
    return self.fc6_embed(self.backbone(x, train=train), train=train)

  def tile_map_and_embedding(self, x, *, train: bool):
    """(the trunk's last map [N, h', w', C], fc6 of it flattened [N, D]) of tiles [N, h, w, 3]."""
    fmap = self.backbone(x, train=train, return_map=True)
    return fmap, self.fc6_embed(fmap.reshape(fmap.shape[0], -1), train=train)

  def fc6_embed(self, f, *, train: bool):
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


def grid_patches(image, *, patch: int, max_patches: int = 16) -> tuple[np.ndarray, np.ndarray]:
  """Non-overlapping ``patch x patch`` patches of a float image on a regular grid (raster order).

  Returns (patches [n, patch, patch, 3], corners [n, 2]); at most ``max_patches``, evenly
  spread over the grid.
  """
  image = np.asarray(image)
  h, w = image.shape[:2]
  corners = [(y, x) for y in range(0, h - patch + 1, patch) for x in range(0, w - patch + 1, patch)]
  if len(corners) > max_patches:
    keep = np.linspace(0, len(corners) - 1, max_patches).round().astype(int)
    corners = [corners[i] for i in keep]
  patches = np.stack([image[y:y + patch, x:x + patch] for y, x in corners]) if corners else np.zeros(
      (0, patch, patch, 3), np.float32)
  return patches, np.array(corners, np.int32).reshape(-1, 2)


def nearest_patch_grid(source, embed_fn, path: str, *, patch: int, normalize, prepare, num_images: int = 120,
                       per_image: int = 12, num_queries: int = 6, num_neighbours: int = 7,
                       batch: int = 64) -> str:
  """Saves a PNG: each row a query patch and its nearest patches (cosine, other images only).

  Doersch et al. 2015, Fig. 4. Patches are cut on a regular grid from the first
  ``num_images`` images of ``source`` after ``prepare`` (uint8 image -> float [0, 1] image at
  the training scale), embedded with ``embed_fn`` (normalized patches [batch, p, p, 3] ->
  [batch, D]). Queries are the most textured patches (largest pixel std) of evenly spaced
  images, so flat sky/background does not fill the figure. Returns ``path``.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top

  pats, owner = [], []
  for i in range(min(num_images, len(source))):
    img = tf.constant(source.image(i))
    p, _ = grid_patches(prepare(img).numpy(), patch=patch, max_patches=per_image)
    pats.append(p)
    owner += [i] * len(p)
  pats = np.concatenate(pats).astype(np.float32)
  owner = np.asarray(owner)
  if len(pats) < num_neighbours + 1:
    raise ValueError(f"only {len(pats)} patches of {patch} px in the first {num_images} images: too few for a grid")
  normed = normalize(tf.constant(pats)).numpy()
  feats = []
  for s in range(0, len(normed), batch):
    chunk = normed[s:s + batch]
    padded = np.concatenate([chunk, np.zeros((batch - len(chunk),) + chunk.shape[1:], np.float32)])
    feats.append(np.asarray(embed_fn(padded))[:len(chunk)])
  feats = np.concatenate(feats)
  feats = feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)
  images_used = np.unique(owner)
  query_images = images_used[np.linspace(0, len(images_used) - 1, num_queries).round().astype(int)]
  texture = pats.std(axis=(1, 2, 3))
  queries = [int(np.flatnonzero(owner == im)[np.argmax(texture[owner == im])]) for im in query_images]
  pad = 4
  cell = patch + pad
  canvas = np.ones((num_queries * cell, (num_neighbours + 1) * cell + pad, 3), np.float32)
  for r, q in enumerate(queries):
    sim = feats @ feats[q]
    sim[owner == owner[q]] = -np.inf  # neighbours from other photographs only
    nn_idx = np.argsort(-sim)[:num_neighbours]
    for c, j in enumerate([q] + list(nn_idx)):
      x0 = c * cell + (pad if c else 0)
      canvas[r * cell:r * cell + patch, x0:x0 + patch] = pats[j]
  Image.fromarray((np.clip(canvas, 0, 1) * 255).round().astype(np.uint8)).save(path)
  return path
