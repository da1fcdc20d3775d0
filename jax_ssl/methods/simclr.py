"""SimCLR (Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual Representations").

Two augmented views of each image go through one backbone and a projection MLP in a single
forward pass (so BatchNorm sees both views, as in the official code); the projections are
contrasted with NT-Xent over the global batch. Evaluation uses the backbone's pooled features.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp
import tensorflow as tf

from jax_ssl import losses
from jax_ssl.data import ops
from jax_ssl.methods._base import Method
from jax_ssl.methods._common import BackboneWithHead, Normalizer, eval_input, module_signature, split_views
from jax_ssl.models import MLP


class SimCLR(Method):
  """SimCLR.

  Args:
    backbone: a Flax module mapping images [N, H, W, 3] to features [N, F] (`train=` kwarg).
    image_size: side of the training views.
    proj_hidden_dims, proj_dim: projection MLP (SimCLR v2: 2048-2048 hidden, 128 out on ImageNet).
    temperature: NT-Xent temperature (0.1 for ImageNet at batch 4096; 0.5 is common on CIFAR).
    view_kwargs: arguments of `jax_ssl.data.ops.simclr_view` (crop scale, jitter strength, blur...).
    mean, std: per-channel normalization of the views.
    eval_crop_fraction: centre-crop fraction of the evaluation view (ImageNet 0.875).
  """

  name = "simclr"

  def __init__(self, *, backbone: nn.Module, image_size: int, proj_hidden_dims: Sequence[int] = (2048,),
               proj_dim: int = 128, proj_use_bn: bool = True, temperature: float = 0.1,
               view_kwargs: dict | None = None, mean=ops.CIFAR10_MEAN, std=ops.CIFAR10_STD,
               eval_crop_fraction: float = 0.875):
    self.model = BackboneWithHead(backbone, MLP(tuple(proj_hidden_dims), proj_dim, use_bn=proj_use_bn))
    self.image_size = image_size
    self.temperature = temperature
    self.view_kwargs = dict(view_kwargs or {})
    self.normalize = Normalizer(mean, std)
    self.eval_crop_fraction = eval_crop_fraction

  # -- data
  def make_views(self, example, seed):
    s1, s2 = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    img = ops.to_float(example["image"])
    view = lambda s: self.normalize(ops.simclr_view(img, s, size=self.image_size, **self.view_kwargs))
    return {"view1": view(s1), "view2": view(s2)}

  def eval_view(self, image):
    return eval_input(image, size=self.image_size, normalize=None, crop_fraction=self.eval_crop_fraction)

  # -- model
  def init(self, rng, batch):
    variables = self.model.init(rng, jnp.asarray(batch["view1"]), train=True)
    return variables["params"], {"batch_stats": variables["batch_stats"]}

  def loss(self, params, state, batch, rng, step):
    del rng, step
    x = jnp.concatenate([batch["view1"], batch["view2"]], axis=0)
    (_, z), updates = self.model.apply({"params": params, **state}, x, train=True, mutable=["batch_stats"])
    z1, z2 = split_views(z, 2)
    loss = losses.nt_xent(z1, z2, temperature=self.temperature)
    metrics = {"contrast_acc": _positive_top1(z1, z2)}
    return loss, ({"batch_stats": updates["batch_stats"]}, metrics)

  def embed(self, params, state, images):
    return self.model.apply({"params": params, **state}, images, method=BackboneWithHead.features)

  def embed_blocks(self, params, state, images):
    return self.model.apply({"params": params, **state}, images, method=BackboneWithHead.block_features)

  def signature(self):
    return {"method": self.name, "model": module_signature(self.model)}


def _positive_top1(z1, z2):
  """Fraction of anchors whose most similar other row is their positive (a learning signal)."""
  z = jnp.concatenate([z1, z2])
  z = z / jnp.linalg.norm(z, axis=-1, keepdims=True)
  sim = z @ z.T
  n = z1.shape[0]
  sim = jnp.where(jnp.eye(2 * n, dtype=bool), -jnp.inf, sim)
  target = jnp.concatenate([jnp.arange(n, 2 * n), jnp.arange(n)])
  return jnp.mean(jnp.argmax(sim, axis=-1) == target)
