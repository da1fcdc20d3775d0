"""BYOL (Grill et al. 2020, "Bootstrap Your Own Latent: A New Approach to Self-Supervised Learning").

An online network (backbone -> projector -> predictor) regresses, for each of two views, the
target network's projection of the other view (Eq. 2, symmetrised: ``L + L~``). The target
network (backbone -> projector) gets no gradient; after each optimizer step it moves towards
the online weights by an exponential moving average whose decay rises from ``tau_base``
(0.996) to 1 with a cosine schedule (`jax_ssl.methods._ema`). The EMA lives in this method's
non-trainable state and is applied by `update_state`, so the trainer knows nothing about it;
the networks are the `jax_ssl.methods._parts.Bootstrap` part (shared with DetCon-B).

Conventions of the official google-deepmind/byol code (``byol_experiment.py``):

* the projector and predictor are MLPs Linear -> BN -> ReLU -> Linear (4096 hidden, 256 out
  on ImageNet);
* each view goes through the networks in its own forward pass (BatchNorm statistics per
  view), in training mode for the target too; the target keeps its own BN statistics;
* asymmetric augmentations: blur with probability 1.0 / 0.1 and solarization 0.0 / 0.2 for
  views 1 / 2 (``view1_kwargs`` / ``view2_kwargs``);
* frozen evaluation uses the online backbone.

Unlike the official code (which initializes the target with a different seed) the target
starts as an exact copy of the online network, as the paper describes.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jax_ssl import losses
from jax_ssl.data import ops
from jax_ssl.methods._base import Method, ParamGroup
from jax_ssl.methods._common import BackboneWithHead, Normalizer, eval_input, module_signature
from jax_ssl.methods._parts import Bootstrap
from jax_ssl.models import MLP

# BYOL's asymmetric view augmentations (Grill et al. 2020, Table 6).
BYOL_VIEW1 = {"blur_p": 1.0, "solarize_p": 0.0}
BYOL_VIEW2 = {"blur_p": 0.1, "solarize_p": 0.2}


class BYOL(Method):
  """BYOL.

  Args:
    backbone: a Flax module mapping images [N, H, W, 3] to features [N, F] (`train=` kwarg).
    image_size: side of the training views.
    proj_hidden_dims, proj_dim: projector MLP (ImageNet: 4096 hidden, 256 out).
    pred_hidden_dims: predictor MLP hidden sizes; its output has `proj_dim` dimensions.
    tau_base: the EMA decay at step 0 (0.996 on ImageNet; shorter runs want a lower value).
    predictor_lr_mult: the predictor's learning rate relative to the rest (1 in BYOL; Tian et
      al. 2021, "Understanding self-supervised learning dynamics without contrastive pairs",
      Sec. 6, find a larger predictor learning rate speeds up learning). Scales the
      optimizer's update of the predictor (decoupled weight decay included).
    view_kwargs: arguments of `jax_ssl.data.ops.simclr_view` shared by both views.
    view1_kwargs, view2_kwargs: per-view overrides (default: BYOL's blur / solarize asymmetry).
    mean, std: per-channel normalization of the views.
    eval_crop_fraction: centre-crop fraction of the evaluation view (ImageNet 0.875).

  Params: {"encoder": online backbone + projector, "predictor": ...}.
  State: {"batch_stats": {"encoder", "predictor"}, "target": {"params", "batch_stats"}}.
  """

  name = "byol"

  def __init__(self, *, backbone: nn.Module, image_size: int, proj_hidden_dims: Sequence[int] = (4096,),
               proj_dim: int = 256, pred_hidden_dims: Sequence[int] = (4096,), tau_base: float = 0.996,
               predictor_lr_mult: float = 1.0,
               view_kwargs: dict | None = None, view1_kwargs: dict | None = None,
               view2_kwargs: dict | None = None, mean=ops.IMAGENET_MEAN, std=ops.IMAGENET_STD,
               eval_crop_fraction: float = 0.875):
    if not predictor_lr_mult > 0:
      raise ValueError(f"predictor_lr_mult must be positive, got {predictor_lr_mult}")
    self.predictor_lr_mult = float(predictor_lr_mult)
    self.net = Bootstrap(BackboneWithHead(backbone, MLP(tuple(proj_hidden_dims), proj_dim, use_bn=True)),
                         MLP(tuple(pred_hidden_dims), proj_dim, use_bn=True), tau_base=tau_base)
    self.encoder, self.predictor = self.net.encoder, self.net.predictor
    self.image_size = image_size
    self.tau_base = float(tau_base)
    base = dict(view_kwargs or {})
    self.view_kwargs = (
        {**base, **BYOL_VIEW1, **dict(view1_kwargs or {})},
        {**base, **BYOL_VIEW2, **dict(view2_kwargs or {})},
    )
    self.normalize = Normalizer(mean, std)
    self.eval_crop_fraction = eval_crop_fraction

  # -- data
  def make_views(self, example, seed):
    return two_views(example, seed, size=self.image_size, view_kwargs=self.view_kwargs, normalize=self.normalize)

  def eval_view(self, image):
    return eval_input(image, size=self.image_size, normalize=None, crop_fraction=self.eval_crop_fraction)

  # -- model
  def init(self, rng, batch):
    return self.net.init(rng, *jax.tree.map(jnp.asarray, (batch["view1"],)))

  def online(self, params, batch_stats, *inputs, train=True):
    """One view through the online network: (projection z, prediction p, new batch_stats)."""
    return self.net.online(params, batch_stats, *inputs, train=train)

  def target(self, target_state, *inputs, train=True):
    """One view through the target network (stop-gradient): (projection, new target state)."""
    return self.net.target(target_state, *inputs, train=train)

  def loss(self, params, state, batch, rng, step):
    """Eq. 2 symmetrised: ``byol_loss(p1, t2) + byol_loss(p2, t1)`` (targets under stop-gradient)."""
    del rng
    (z1, p1, t1), (_, p2, t2), new_state = self.net.two_views(params, state, (batch["view1"],), (batch["view2"],))
    loss = losses.byol_loss(p1, t2) + losses.byol_loss(p2, t1)
    return loss, (new_state, bootstrap_metrics(self.net, z1, step, self.total_steps))

  def param_groups(self):
    if self.predictor_lr_mult == 1.0:
      return super().param_groups()
    return {"default": ParamGroup(), "predictor": ParamGroup(lr_mult=self.predictor_lr_mult)}

  def param_labels(self, params):
    return {k: jax.tree.map(lambda _, k=k: "predictor" if k == "predictor" else "default", v)
            for k, v in params.items()}

  def update_state(self, params, state, step):
    return self.net.update_state(params, state, step, self.total_steps)

  def embed(self, params, state, images):
    return self.net.embed(params, state, images)

  def embed_blocks(self, params, state, images):
    return self.net.embed(params, state, images, blocks=True)

  def signature(self):
    return {"method": self.name, "model": module_signature(self.encoder),
            "predictor": module_signature(self.predictor)}


def two_views(example, seed, *, size: int, view_kwargs, normalize) -> dict:
  """TensorFlow: {"view1", "view2"}, `simclr_view`s with their own arguments (BYOL, SMoG)."""
  s1, s2 = ops.split_seed(seed, 2)
  img = ops.to_float(example["image"])
  view = lambda s, kw: normalize(ops.simclr_view(img, s, size=size, **kw))
  return {"view1": view(s1, view_kwargs[0]), "view2": view(s2, view_kwargs[1])}


def bootstrap_metrics(net: Bootstrap, z1, step, total_steps) -> dict:
  """The EMA decay of the step and the spread of the online projections (collapse watch)."""
  return {"tau": net.target.decay(step, total_steps),
          "proj_std": _featurewise_std(losses.l2_normalize(z1.reshape(-1, z1.shape[-1])))}


def _featurewise_std(x):
  """Mean over features of the batch std of L2-normalized vectors (~1/sqrt(D) healthy, 0 collapsed)."""
  return jnp.mean(jnp.std(x, axis=0))
