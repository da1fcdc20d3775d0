"""Context Prediction (Doersch, Gupta & Efros, ICCV 2015, "Unsupervised Visual Representation
Learning by Context Prediction").

From each image the input pipeline draws a pair of patches on a 3x3 grid (patch 96 px, gap
48 px, jitter up to 7 px per axis, images rescaled to 150K-450K pixels; Sec. 3-4) with the
second patch's position relative to the first as the label (8 classes, raster order skipping
the centre: `jax_ssl.losses.CONTEXT_OFFSETS`). Shortcuts are blocked per patch by colour
dropping or colour projection and random down-and-up-sampling (Sec. 4; `ops.context_pair`).

The network is siamese (Fig. 3): the same trunk and fc6 embedding are applied to both patches
(one module on the concatenated batch, so the weights are shared by construction), and a head
(fc7, fc8) classifies the concatenation [fc6(first), fc6(second)].

Evaluation: `embed` gives the trunk's pooled features of the whole image (`eval_preprocess`:
shorter side to `eval_size / eval_crop_fraction`, centre crop). `write_artifacts` saves the
paper's Fig. 4-style picture: query patches and their nearest patches in fc6 space.
"""

from __future__ import annotations

import os
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import tensorflow as tf

from jax_ssl import losses
from jax_ssl.data import ops
from jax_ssl.methods._base import Method
from jax_ssl.methods._common import Normalizer, eval_input, module_signature
from jax_ssl.methods._pretext import TiledClassifier, nearest_patch_grid


class ContextPrediction(Method):
  """Relative patch position prediction.

  Args:
    backbone: trunk, patches [N, p, p, 3] -> pooled features [N, F].
    patch, gap, jitter: the grid geometry in pixels (paper: 96, 48, 7).
    area_range: images are rescaled to a total area in this range first (paper: 150K-450K);
      None keeps the image (only enlarging it when the pair would not fit).
    color: "drop" (keep one channel, noise in the others), "projection" (remove the
      green-magenta axis) or "none".
    downsample_p: probability of down-and-up-sampling each patch (to as little as
      `min_area` pixels).
    embed_dim: fc6 width per patch (paper 4096 with AlexNet).
    head_hidden_dims: fc7... on the concatenated pair (paper: one 4096 layer).
    eval_size, eval_crop_fraction: the whole-image evaluation view.
    mean, std: per-channel normalization of patches and evaluation views.
  """

  name = "context"

  def __init__(self, *, backbone: nn.Module, patch: int = 96, gap: int = 48, jitter: int = 7,
               area_range: Sequence[float] | None = (150_000, 450_000), color: str = "drop",
               downsample_p: float = 0.5, min_area: int = 100, embed_dim: int = 512,
               head_hidden_dims: Sequence[int] = (512,), eval_size: int = 96, eval_crop_fraction: float = 0.875,
               mean=ops.IMAGENET_MEAN, std=ops.IMAGENET_STD):
    if color not in ("drop", "projection", "none"):
      raise ValueError(f"color must be 'drop', 'projection' or 'none', got {color!r}")
    self.model = TiledClassifier(backbone, num_classes=8, embed_dim=embed_dim,
                                 head_hidden_dims=tuple(head_hidden_dims))
    self.geometry = dict(patch=patch, gap=gap, jitter=jitter)
    self.area_range = tuple(area_range) if area_range is not None else None
    self.color = color
    self.downsample_p = downsample_p
    self.min_area = min_area
    self.eval_size = eval_size
    self.eval_crop_fraction = eval_crop_fraction
    self.normalize = Normalizer(mean, std)

  # -- data
  def make_views(self, example, seed):
    out = ops.context_pair(ops.to_float(example["image"]), seed, area_range=self.area_range, color=self.color,
                           downsample_p=self.downsample_p, min_area=self.min_area, **self.geometry)
    return {"patches": self.normalize(out["patches"]), "context_label": out["label"]}

  def eval_view(self, image):
    return eval_input(image, size=self.eval_size, normalize=None, crop_fraction=self.eval_crop_fraction)

  # -- model
  def init(self, rng, batch):
    variables = self.model.init(rng, jnp.asarray(batch["patches"]), train=True)
    return variables["params"], {"batch_stats": variables["batch_stats"]}

  def loss(self, params, state, batch, rng, step):
    del rng, step
    logits, updates = self.model.apply({"params": params, **state}, batch["patches"], train=True,
                                       mutable=["batch_stats"])
    labels = batch["context_label"]
    loss = losses.classification_loss(logits, labels)
    return loss, ({"batch_stats": updates["batch_stats"]}, {"context_acc": losses.accuracy(logits, labels)})

  def logits(self, params, state, batch):
    """Inference-mode logits [B, 8] and labels [B] of a `make_views` batch."""
    return self.model.apply({"params": params, **state}, batch["patches"], train=False), batch["context_label"]

  def embed(self, params, state, images):
    return self.model.apply({"params": params, **state}, images, method=TiledClassifier.features)

  def embed_blocks(self, params, state, images):
    return self.model.apply({"params": params, **state}, images, method=TiledClassifier.block_features)

  def patch_embedding(self, params, state, patches):
    """fc6 features [N, D] of normalized patches [N, p, p, 3] (inference mode)."""
    return self.model.apply({"params": params, **state}, patches, method=TiledClassifier.embedding)

  def write_artifacts(self, workdir, *, params, state, source, heldout=None):
    """Doersch et al. Fig. 4: query patches (left column) and their nearest patches in fc6 space."""
    path = os.path.join(workdir, "nearest_patches.png")
    embed = jax.jit(lambda x: self.patch_embedding(params, state, x))
    return [nearest_patch_grid(source, embed, path, patch=self.geometry["patch"], normalize=self.normalize,
                               prepare=self._prepare_for_patches)]

  def _prepare_for_patches(self, image):
    """The training-time rescaling (mid-range area), so grid patches have the training scale."""
    img = ops.to_float(image)
    if self.area_range is None:
      return img
    mid = float(np.mean(self.area_range))
    return ops.resize_to_area(img, tf.constant([0, 0], tf.int64), area_range=(mid, mid))

  def signature(self):
    return {"method": self.name, "model": module_signature(self.model)}
