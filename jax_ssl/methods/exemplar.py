"""Exemplar-CNN (Dosovitskiy, Springenberg, Riedmiller & Brox, NIPS 2014).

N seed patches taken from high-gradient regions of the training images (`data.exemplar_seeds`)
each define a surrogate class: the seed under random translations, scalings, rotations,
principal-component contrast, HSV contrast and hue shifts with the paper's ranges
(`data.ops.exemplar_transform`). The network classifies a transformed patch into its N-way
seed class (softmax cross-entropy; the head's size is the number of seeds). The paper
generates K transformed copies of each seed once; here every epoch draws new transformations
(stateless in the run seed, epoch and example), i.e. K grows with the epochs.

The training source becomes the seeds (`prepare_source`: an epoch is one pass over the N
seeds); the principal components are those of all seed-patch pixels. Evaluation: the trunk's
pooled features of whole images (`eval_preprocess`), as every other method; the paper pools
each layer over image quadrants for its SVM. `write_artifacts` draws 8 seeds with 7 members of
their classes (surrogate_classes.png) and writes the held-out surrogate accuracy (new
transformations of every seed, `surrogate_accuracy`) to surrogate.json.

`per_image=True` keeps the training source as it is, one seed per image (class i = the seed of
image i, `data.exemplar_seeds(one_per_image=True)`, held in memory: N x (2 patch)^2 x 3 bytes,
13 MB for 4,153 CIFAR images at 16 px): an example's index names its class, so Exemplar can
share a trunk with tasks that read the images themselves (`MultiTask`, Doersch & Zisserman
2017's rotation + exemplar). `num_seeds` must then equal the training set's size.
"""

from __future__ import annotations

import functools
import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import tensorflow as tf

from jax_ssl import data, losses, models
from jax_ssl.data import ops
from jax_ssl.methods._base import Method
from jax_ssl.methods._common import BackboneWithHead, Normalizer, eval_input, module_signature, save_image_grid


class Exemplar(Method):
  """Exemplar-CNN.

  Args:
    backbone: the trunk. patch: seed patch side (32 in the paper). num_seeds: N surrogate
      classes (the paper: 8,000 to 32,000 on STL-10). max_region: seeds' region side up to this
      fraction of an image's shorter side (resized to `patch`). seed_rng: the seeds' draw.
    translation, scale, rotation, pc_scale, sv_power, sv_mult, sv_add, hue: the transformation
      ranges (paper Sec. 2.1; `ops.exemplar_transform`).
    head_hidden_dims: hidden layers of the classifier (the paper's 512-unit fully connected layer).
    eval_size, eval_crop_fraction: the evaluation view of whole images.
    min_pca_images: sources of fewer images (the two-example batches that build networks) leave
      the principal components as they are.
    per_image: one seed per training image, the source left as it is (see above).
    mean, std: input normalization.
  """

  name = "exemplar"

  def __init__(self, *, backbone: nn.Module, patch: int = 32, num_seeds: int = 8000, max_region: float = 0.5,
               seed_rng: int = 0, translation: float = 0.2, scale=(0.7, 1.4), rotation: float = 20.0,
               pc_scale=(0.5, 2.0), sv_power=(0.25, 4.0), sv_mult=(0.7, 1.4), sv_add=(-0.1, 0.1), hue: float = 0.1,
               head_hidden_dims=(512,), eval_size: int = 32, eval_crop_fraction: float = 1.0,
               min_pca_images: int = 16, per_image: bool = False, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)):
    self.patch, self.num_seeds, self.max_region, self.seed_rng = patch, num_seeds, max_region, seed_rng
    self.transform_kw = dict(translation=translation, scale=tuple(scale), rotation=rotation, pc_scale=tuple(pc_scale),
                             sv_power=tuple(sv_power), sv_mult=tuple(sv_mult), sv_add=tuple(sv_add), hue=hue)
    self.eval_size, self.eval_crop_fraction, self.min_pca_images = eval_size, eval_crop_fraction, min_pca_images
    self.normalize = Normalizer(mean, std)
    self.model = BackboneWithHead(backbone, models.MLP(tuple(head_hidden_dims), num_seeds))
    self.pca = (np.full(3, 0.5, np.float32), np.eye(3, dtype=np.float32))  # until `prepare_source`
    self.per_image = per_image
    self.windows = None  # per_image: the seeds' windows [N, 2 patch, 2 patch, 3] uint8, by image index

  # -- data
  def prepare_source(self, source):
    """The surrogate dataset: `num_seeds` seed windows of `source` (class i = seed i); with
    `per_image`, `source` itself (its seeds kept in `windows`)."""
    seeds = self.surrogate_source(source)
    if self.per_image:
      if self.windows is None or len(source) >= self.min_pca_images:  # not the two-example init batches
        self.windows = seeds.images
      return source
    return seeds

  def surrogate_source(self, source):
    """The seeds of `source` as a source of windows (label i = seed i); the principal components
    are set from them (sources of at least `min_pca_images`)."""
    if source.name.endswith("exemplar seeds of %d px]" % self.patch):
      return source
    full = len(source) >= self.min_pca_images
    seeds = data.exemplar_seeds(source, self.num_seeds if full else len(source), patch=self.patch,
                                max_region=self.max_region, seed=self.seed_rng, one_per_image=self.per_image)
    if full:
      q = self.patch // 2
      self.pca = ops.pixel_pca(seeds.images[:, q:q + self.patch, q:q + self.patch] / 255.0)
    return seeds

  def transform(self, window_uint8, seed):
    """One member of the window's surrogate class, float [patch, patch, 3] in [0, 1]."""
    return ops.exemplar_transform(ops.to_float(window_uint8), seed, size=self.patch, pca_mean=self.pca[0],
                                  pca_axes=self.pca[1], **self.transform_kw)

  def make_views(self, example, seed):
    if self.per_image:  # the example's own seed (class = its index)
      if self.windows is None:
        raise ValueError("exemplar per_image: prepare_source must see the training images first")
      index = tf.cast(example["index"], tf.int32)
      return {"patch": self.normalize(self.transform(tf.gather(tf.constant(self.windows), index), seed)),
              "target": index}
    return {"patch": self.normalize(self.transform(example["image"], seed)),
            "target": tf.cast(example["label"], tf.int32)}

  def eval_view(self, image):
    return eval_input(image, size=self.eval_size, normalize=None, crop_fraction=self.eval_crop_fraction)

  # -- model
  def init(self, rng, batch):
    variables = self.model.init(rng, jnp.asarray(batch["patch"]), train=True)
    return variables["params"], {"batch_stats": variables["batch_stats"]}

  def surrogate_logits(self, params, state, patches):
    """Inference-mode N-way logits of normalized patches."""
    return self.model.apply({"params": params, "batch_stats": state["batch_stats"]}, patches, train=False)[1]

  def loss(self, params, state, batch, rng, step):
    del rng, step
    (_, logits), updates = self.model.apply({"params": params, "batch_stats": state["batch_stats"]}, batch["patch"],
                                            train=True, mutable=["batch_stats"])
    loss = losses.classification_loss(logits, batch["target"])
    return loss, ({"batch_stats": updates["batch_stats"]}, {"surrogate_acc": losses.accuracy(logits, batch["target"])})

  def embed(self, params, state, images):
    return self.model.apply({"params": params, "batch_stats": state["batch_stats"]}, images,
                            method=BackboneWithHead.features)

  def embed_blocks(self, params, state, images):
    return self.model.apply({"params": params, "batch_stats": state["batch_stats"]}, images,
                            method=BackboneWithHead.block_features)

  # -- held out
  def surrogate_accuracy(self, params, state, seeds, *, seed: int = 12345, epochs: int = 1,
                         batch_size: int = 256) -> float:
    """Top-1 (%) on new transformations (pipeline seed `seed`) of every seed of the surrogate
    source `seeds`: the surrogate task's held-out accuracy (chance 100 / N)."""
    ds = data.train_dataset(seeds, self.make_views, global_batch=min(batch_size, len(seeds)), seed=seed)
    fn = _hits_fn(self)
    hits = total = 0
    for b in ds.take(epochs * data.steps_per_epoch(len(seeds), min(batch_size, len(seeds)))).as_numpy_iterator():
      hits += int(fn(params, state, b["patch"], b["target"]))
      total += len(b["target"])
    return 100.0 * hits / total

  def write_artifacts(self, workdir, *, params, state, source, heldout=None):
    """surrogate_classes.png (8 seeds, each with 7 members of its class) and surrogate.json
    (held-out surrogate accuracy on new transformations of the `source` seeds, and chance)."""
    del heldout
    seeds = self.surrogate_source(source)
    acc = self.surrogate_accuracy(params, state, seeds)
    out = {"heldout_surrogate_top1": acc, "chance_top1": 100.0 / len(seeds), "num_seeds": len(seeds)}
    json_path = os.path.join(workdir, "surrogate.json")
    os.makedirs(workdir, exist_ok=True)
    with open(json_path, "w") as f:
      json.dump(out, f, indent=2)
    idx = np.linspace(0, len(seeds) - 1, min(8, len(seeds))).round().astype(int)
    p, q = self.patch, self.patch // 2
    rows = [[seeds.images[i][q:q + p, q:q + p] / 255.0] +
            [self.transform(tf.constant(seeds.images[i]), tf.constant([int(i), k], tf.int64)).numpy() for k in range(7)]
            for i in idx]
    png = save_image_grid(np.asarray(rows), os.path.join(workdir, "surrogate_classes.png"))
    return [png, json_path]

  def signature(self):
    return {"method": self.name, "model": module_signature(self.model), "patch": self.patch}


@functools.lru_cache(maxsize=8)
def _hits_fn(method: Exemplar):
  return jax.jit(lambda p, s, x, y: jnp.sum(jnp.argmax(method.surrogate_logits(p, s, x), -1) == y))
