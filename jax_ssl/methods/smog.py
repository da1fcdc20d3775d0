"""SMoG (Pang et al. 2022, "Unsupervised Visual Representation Learning by Synchronous Momentum
Grouping", ECCV 2022).

Contrastive learning whose unit is a group, not an instance. The networks are BYOL's
(`jax_ssl.methods._parts.Bootstrap`): an online backbone -> projector -> predictor and a
momentum (EMA) copy of backbone -> projector. Each step, for two views of every image:

* every momentum feature ``t`` is assigned to its nearest group by cosine
  (`losses.smog_assign`, under the groups before the step);
* the groups move synchronously with learning (`losses.smog_group_update`): each group with
  members in the global batch becomes ``normalize(beta * g + (1 - beta) * mean of its
  members)``, ``beta`` 0.99, the members being both views' momentum features;
* each view's prediction is scored against every (updated) group by cosine at temperature
  0.1 and trained by cross-entropy towards the group of the OTHER view's momentum feature
  (`losses.smog_loss`), symmetrised: ``(L(p1, a2) + L(p2, a1)) / 2``;
* the momentum features are written into a ring-buffer memory bank (`bank_size` rows).

Every `reset_every` steps (the trainer's dataset pass, before that step) the groups are reset
to the centroids of spherical k-means on the memory bank (`jax_ssl.cluster.spherical_kmeans`,
`kmeans_iters` iterations from `num_groups` distinct random rows of it). Before the first step
the bank is empty: the groups start as k-means centroids of the momentum projections of the
evaluation view of every training image (that pass is the only one that extracts features).

Sources and where they disagree: the authors released no code. The group-level loss, the
momentum 0.99, the temperature 0.1 and the periodic k-means reset on a memory bank are the
paper's (Sec. 3, Table 7); the issue fixes the group update to use the assigned *momentum*
features. lightly's ``SMoGPrototypes`` / benchmark (the one public implementation) differs:
it updates the groups with the *online* projections assigned by themselves, stores online
projections in its bank, re-copies the online weights into the momentum encoder at every
reset, uses sklearn's k-means++ on the bank, and starts from uniform random groups; here the
groups are updated and reset from the momentum features (the space they are assigned in) and
the momentum encoder is never re-copied. As lightly, the logits use the groups after the
step's update. Details the paper leaves to the architecture it builds on follow BYOL: the
projector and predictor (Linear -> BN -> ReLU -> Linear, with BN on the projector's output as
the paper's Sec. 4.1 says), the EMA of the momentum encoder rising from `tau_base` to 1 on a
cosine, BYOL's asymmetric view augmentations.

Under data parallelism the assignment is per row, the group update sums members and counts
over the global batch, and the bank is replicated state (the same on every device): 8 devices
give the same groups as one device holding the global batch (the contract test).

Collapse watch: the groups the global batch uses (``groups_in_use``) and after every reset the
groups k-means leaves non-empty (``kmeans_groups``); a run whose batch falls into
`collapse_groups` or fewer groups stops with a message.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jax_ssl import cluster, losses, parallel
from jax_ssl.data import ops
from jax_ssl.methods._base import Method
from jax_ssl.methods._common import BackboneWithHead, Normalizer, eval_input, module_signature
from jax_ssl.methods._parts import Bootstrap, l2_normalize
from jax_ssl.methods.byol import BYOL_VIEW1, BYOL_VIEW2, bootstrap_metrics, two_views
from jax_ssl.models import MLP


class SMoG(Method):
  """SMoG.

  Args:
    backbone: a Flax module mapping images [N, H, W, 3] to features [N, F] (`train=` kwarg).
    image_size: side of the training views.
    proj_hidden_dims, proj_dim: projector MLP with BN on its output (ImageNet 2048 hidden, 128 out).
    pred_hidden_dims: predictor MLP hidden sizes (2048); its output has `proj_dim` dimensions.
    num_groups: K (3,000 on ImageNet); at most the number of training images.
    beta: momentum of the group update (0.99).
    temperature: of the cosine logits (0.1).
    tau_base: EMA decay of the momentum encoder at step 0 (cosine to 1 over the run).
    reset_every: steps between k-means resets of the groups (the first reset is before step 0).
    bank_size: rows of the memory bank of momentum features (two per image per step; at least
      one step's worth and `num_groups`). ``2 x batch x reset_every`` holds exactly the
      features since the previous reset.
    kmeans_iters: spherical k-means iterations of a reset (10).
    collapse_groups: stop the run when the global batch uses this many or fewer groups.
    bank_dtype: storage of the bank (bfloat16 halves it).
    seed: the reset's initial centroids and the groups at initialization (with the step).
    view_kwargs, view1_kwargs, view2_kwargs: `jax_ssl.data.ops.simclr_view` arguments (shared,
      then per view; default BYOL's blur / solarize asymmetry).
    mean, std: per-channel normalization of the views.
    eval_crop_fraction: centre-crop fraction of the evaluation view (ImageNet 0.875).

  Params: {"encoder": online backbone + projector, "predictor"}.
  State: {"batch_stats", "target" (the momentum encoder), "groups" [K, D], "bank" [M, D],
  "bank_ptr", "bank_filled", "kmeans_groups"}.
  """

  name = "smog"
  pass_changes_inputs = False  # a reset touches only the groups: the input pipeline goes on as it was

  def __init__(self, *, backbone: nn.Module, image_size: int, proj_hidden_dims: Sequence[int] = (2048,),
               proj_dim: int = 128, pred_hidden_dims: Sequence[int] = (2048,), num_groups: int = 3000,
               beta: float = 0.99, temperature: float = 0.1, tau_base: float = 0.996, reset_every: int = 300,
               bank_size: int = 300 * 2 * 256, kmeans_iters: int = 10, collapse_groups: int = 1,
               bank_dtype: str = "float32", seed: int = 0, view_kwargs: dict | None = None,
               view1_kwargs: dict | None = None, view2_kwargs: dict | None = None,
               mean=ops.IMAGENET_MEAN, std=ops.IMAGENET_STD, eval_crop_fraction: float = 0.875):
    if int(num_groups) < 2:
      raise ValueError(f"num_groups must be at least 2, got {num_groups}")
    if not 0.0 <= beta <= 1.0:
      raise ValueError(f"beta must be in [0, 1], got {beta}")
    if not temperature > 0:
      raise ValueError(f"temperature must be positive, got {temperature}")
    if int(reset_every) < 1:
      raise ValueError(f"reset_every must be a number of steps >= 1, got {reset_every}")
    if int(bank_size) < int(num_groups):
      raise ValueError(f"bank_size {bank_size} is smaller than num_groups {num_groups}: k-means on the bank "
                       "could not start from distinct rows")
    if int(kmeans_iters) < 1:
      raise ValueError(f"kmeans_iters must be >= 1, got {kmeans_iters}")
    self.net = Bootstrap(BackboneWithHead(backbone, MLP(tuple(proj_hidden_dims), proj_dim, use_bn=True, last_bn=True)),
                         MLP(tuple(pred_hidden_dims), proj_dim, use_bn=True), tau_base=tau_base)
    self.encoder, self.predictor = self.net.encoder, self.net.predictor
    self.image_size = int(image_size)
    self.proj_dim = int(proj_dim)
    self.num_groups = int(num_groups)
    self.beta, self.temperature, self.tau_base = float(beta), float(temperature), float(tau_base)
    self.reset_every = int(reset_every)
    self.dataset_pass_every = ("steps", self.reset_every)
    self.bank_size = int(bank_size)
    self.kmeans_iters = int(kmeans_iters)
    self.collapse_groups = int(collapse_groups)
    self.bank_dtype = jnp.dtype(bank_dtype)
    self.seed = int(seed)
    base = dict(view_kwargs or {})
    self.view_kwargs = ({**base, **BYOL_VIEW1, **dict(view1_kwargs or {})},
                        {**base, **BYOL_VIEW2, **dict(view2_kwargs or {})})
    self.normalize = Normalizer(mean, std)
    self.eval_crop_fraction = eval_crop_fraction
    self._reset = jax.jit(self._reset_groups)

  # -- data
  def make_views(self, example, seed):
    return two_views(example, seed, size=self.image_size, view_kwargs=self.view_kwargs, normalize=self.normalize)

  def eval_view(self, image):
    return eval_input(image, size=self.image_size, normalize=None, crop_fraction=self.eval_crop_fraction)

  # -- model
  def init(self, rng, batch):
    if self.num_examples is not None and self.num_groups > self.num_examples:
      raise ValueError(f"num_groups {self.num_groups} is more than the {self.num_examples} training images")
    params, state = self.net.init(rng, jnp.asarray(batch["view1"]))
    # Replaced by k-means before the first step (the trainer's pass at step 0); steps taken
    # outside the trainer start from random unit groups.
    groups = l2_normalize(jax.random.normal(jax.random.key(self.seed), (self.num_groups, self.proj_dim)))
    state = dict(state, groups=groups, bank=jnp.zeros((self.bank_size, self.proj_dim), self.bank_dtype),
                 bank_ptr=jnp.zeros((), jnp.int32), bank_filled=jnp.zeros((), jnp.int32),
                 kmeans_groups=jnp.asarray(float(self.num_groups), jnp.float32))
    return params, state

  def loss(self, params, state, batch, rng, step):
    del rng
    (z1, p1, t1), (_, p2, t2), net_state = self.net.two_views(params, state, (batch["view1"],), (batch["view2"],))
    b = t1.shape[0]
    t = l2_normalize(jnp.concatenate([t1, t2], axis=0))  # [2B, D], stop-gradient (the momentum encoder)
    assign = losses.smog_assign(t, state["groups"])
    groups = losses.smog_group_update(state["groups"], t, assign, beta=self.beta)
    a1, a2 = assign[:b], assign[b:]
    loss = 0.5 * (losses.smog_loss(p1, groups, a2, temperature=self.temperature)
                  + losses.smog_loss(p2, groups, a1, temperature=self.temperature))
    bank, ptr, filled = self._write_bank(state, t)
    hist = jnp.sum(jax.nn.one_hot(assign, self.num_groups, dtype=jnp.float32), axis=0)
    metrics = dict(bootstrap_metrics(self.net, z1, step, self.total_steps),
                   groups_in_use=jnp.sum(hist > 0).astype(jnp.float32),
                   largest_group=jnp.max(hist) / (2 * b),
                   kmeans_groups=state["kmeans_groups"])
    new_state = dict(state, **net_state, groups=groups, bank=bank, bank_ptr=ptr, bank_filled=filled)
    return loss, (new_state, metrics)

  def _write_bank(self, state, t):
    rows = t.shape[0]
    if rows > self.bank_size:
      raise ValueError(f"SMoG's memory bank ({self.bank_size} rows) is smaller than one step's {rows} momentum "
                       "features (2 x batch): raise bank_size")
    idx = (state["bank_ptr"] + jnp.arange(rows, dtype=jnp.int32)) % self.bank_size
    bank = state["bank"].at[idx].set(t.astype(self.bank_dtype))
    return (bank, (state["bank_ptr"] + rows) % self.bank_size,
            jnp.minimum(state["bank_filled"] + rows, self.bank_size))

  def update_state(self, params, state, step):
    return self.net.update_state(params, state, step, self.total_steps)

  def embed(self, params, state, images):
    return self.net.embed(params, state, images)

  def embed_blocks(self, params, state, images):
    return self.net.embed(params, state, images, blocks=True)

  def momentum_projection(self, params, state, images):
    """L2-normalized momentum-encoder projections of preprocessed images (inference mode)."""
    del params
    t, _ = self.net.target(state["target"], images, train=False)
    return l2_normalize(t)

  def cluster_logits(self, params, state, images):
    """Cosine of each image's momentum projection to every group (the clustering report)."""
    return self.momentum_projection(params, state, images) @ l2_normalize(state["groups"]).T

  # -- the periodic reset (the trainer's dataset pass)
  def pass_features(self, params, state, images):
    return self.momentum_projection(params, state, images)

  def pass_needs_features(self, step):
    return step == 0  # afterwards the steps have filled the bank

  def _reset_groups(self, state, features, step):
    key = jax.random.fold_in(jax.random.key(self.seed), step)
    if features is not None:  # before the first step: every training image's evaluation view
      x = l2_normalize(parallel.per_example(features, features.features, self.num_examples))
      valid = jnp.ones((x.shape[0],), bool)
    else:
      x = state["bank"].astype(jnp.float32)
      valid = jnp.arange(self.bank_size) < state["bank_filled"]
    # `num_groups` distinct random valid rows start k-means (invalid rows sort last).
    order = jnp.argsort(jnp.where(valid, jax.random.uniform(key, (x.shape[0],)), 2.0))
    centroids, labels = cluster.spherical_kmeans(x, x[order[:self.num_groups]], num_iters=self.kmeans_iters,
                                                 valid=valid)
    used = jnp.sum(jnp.zeros((self.num_groups,), jnp.float32).at[labels].add(valid.astype(jnp.float32)) > 0)
    enough = jnp.sum(valid) >= self.num_groups  # too few rows yet: keep the groups
    return dict(state, groups=jnp.where(enough, centroids, state["groups"]),
                kmeans_groups=jnp.where(enough, used.astype(jnp.float32), state["kmeans_groups"]))

  def dataset_pass(self, params, state, features, *, step):
    del params
    return self._reset(state, features, jnp.asarray(step, jnp.int32))

  # -- run hooks
  def check_metrics(self, metrics):
    in_use = metrics.get("groups_in_use")
    if in_use is not None and in_use <= self.collapse_groups:
      return (f"SMoG collapsed: the batch's momentum features fell into {in_use:.1f} group(s) of "
              f"{self.num_groups}; lower the learning rate, raise the temperature or reset the groups more often")
    return None

  def signature(self):
    return {"method": self.name, "model": module_signature(self.encoder),
            "predictor": module_signature(self.predictor), "groups": [self.num_groups, self.proj_dim],
            "bank": self.bank_size}
