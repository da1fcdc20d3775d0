"""Jigsaw puzzles (Noroozi & Favaro, ECCV 2016, "Unsupervised Learning of Visual Representations
by Solving Jigsaw Puzzles").

The input pipeline cuts a 225x225 window from the image (shorter side resized to 256), splits
it into 3x3 cells of 75 px and takes a 64x64 tile at a random place in each cell (gaps and
jitter between tiles), shuffles the tiles by one of P permutations chosen for large Hamming
distance (Algorithm 1, `ops.hamming_permutations`, computed once from a seed) and blocks
shortcuts per tile: 30% grayscale puzzles, colour channels jittered by up to 2 px, every tile
standardized on its own (Sec. 4; `ops.jigsaw_tiles`). The label is the permutation's index.

The network is the paper's context-free network (Fig. 3): one trunk and fc6 applied to every
tile (weights shared by construction), the nine fc6 outputs concatenated in order, then fc7 and
the P-way classifier.

Evaluation: `embed` gives the trunk's pooled features of the whole image, standardized per
image and channel like the training tiles (`eval_preprocess`).
"""

from __future__ import annotations

import os
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jax_ssl import losses
from jax_ssl.data import ops
from jax_ssl.data import center_view
from jax_ssl.methods._base import Method
from jax_ssl.methods._common import module_signature
from jax_ssl.methods._pretext import TiledClassifier, nearest_patch_grid


class Jigsaw(Method):
  """Permutation classification of shuffled tiles.

  Args:
    backbone: trunk, tiles [N, t, t, 3] -> pooled features [N, F].
    num_permutations: P (paper: 1000 best; 100 in its ablation).
    permutation_seed, permutation_criterion: see `ops.hamming_permutations` ("mean" = the
      paper's Algorithm 1).
    resize, crop, grid, tile: geometry (paper: 256, 225, 3, 64).
    gray_p, channel_jitter: shortcut prevention (paper code: 0.3 and 2 px).
    embed_dim: fc6 width per tile (paper 512); head_hidden_dims: fc7 (paper 4096).
    eval_size, eval_crop_fraction: the whole-image evaluation view.
    mean, std: unused (tiles and evaluation views are standardized per image); accepted so
      the entry point can pass the dataset's statistics to every method alike.
  """

  name = "jigsaw"
  input_description = "RGB in [0, 1], each image standardized per channel (zero mean, unit std): [N, H, W, 3]"

  def __init__(self, *, backbone: nn.Module, num_permutations: int = 100, permutation_seed: int = 0,
               permutation_criterion: str = "mean", resize: int = 256, crop: int = 225, grid: int = 3,
               tile: int = 64, gray_p: float = 0.3, channel_jitter: int = 2, embed_dim: int = 512,
               head_hidden_dims: Sequence[int] = (1024,), eval_size: int = 96, eval_crop_fraction: float = 0.875,
               mean=None, std=None):
    del mean, std
    self.permutations = ops.hamming_permutations(num_permutations, grid=grid, seed=permutation_seed,
                                                 criterion=permutation_criterion)
    self.model = TiledClassifier(backbone, num_classes=num_permutations, embed_dim=embed_dim,
                                 head_hidden_dims=tuple(head_hidden_dims))
    self.geometry = dict(resize=resize, crop=crop, grid=grid, tile=tile)
    self.gray_p = gray_p
    self.channel_jitter = channel_jitter
    self.eval_size = eval_size
    self.eval_crop_fraction = eval_crop_fraction
    self.permutation_args = dict(num=num_permutations, seed=permutation_seed, criterion=permutation_criterion)

  # -- data
  def make_views(self, example, seed):
    out = ops.jigsaw_tiles(ops.to_float(example["image"]), seed, self.permutations, gray_p=self.gray_p,
                           channel_jitter=self.channel_jitter, **self.geometry)
    return {"tiles": out["tiles"], "jigsaw_label": out["label"]}

  def eval_view(self, image):
    return center_view(image, size=self.eval_size, crop_fraction=self.eval_crop_fraction)

  def eval_preprocess(self, image):
    return ops.standardize_tile(self.eval_view(image))

  # -- model
  def init(self, rng, batch):
    variables = self.model.init(rng, jnp.asarray(batch["tiles"]), train=True)
    return variables["params"], {"batch_stats": variables["batch_stats"]}

  def loss(self, params, state, batch, rng, step):
    del rng, step
    logits, updates = self.model.apply({"params": params, **state}, batch["tiles"], train=True,
                                       mutable=["batch_stats"])
    labels = batch["jigsaw_label"]
    loss = losses.classification_loss(logits, labels)
    return loss, ({"batch_stats": updates["batch_stats"]}, {"jigsaw_acc": losses.accuracy(logits, labels)})

  def logits(self, params, state, batch):
    """Inference-mode logits [B, P] and labels [B] of a `make_views` batch."""
    return self.model.apply({"params": params, **state}, batch["tiles"], train=False), batch["jigsaw_label"]

  def embed(self, params, state, images):
    return self.model.apply({"params": params, **state}, images, method=TiledClassifier.features)

  def embed_blocks(self, params, state, images):
    return self.model.apply({"params": params, **state}, images, method=TiledClassifier.block_features)

  def write_artifacts(self, workdir, *, params, state, source, heldout=None):
    """Nearest tiles in fc6 space (as Context Prediction's figure), tiles at the training scale."""
    path = os.path.join(workdir, "nearest_tiles.png")
    embed = jax.jit(lambda x: self.model.apply({"params": params, **state}, x, method=TiledClassifier.embedding))
    resize = self.geometry["resize"]

    def prepare(image):
      return center_view(image, size=resize, crop_fraction=1.0)

    return [nearest_patch_grid(source, embed, path, patch=self.geometry["tile"], normalize=ops.standardize_tile,
                               prepare=prepare)]

  def signature(self):
    return {"method": self.name, "model": module_signature(self.model), "permutations": self.permutation_args}

