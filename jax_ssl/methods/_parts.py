"""Reusable parts of methods (compose, don't inherit).

* `EMATarget`: a target network that follows an online network by an exponential moving
  average with BYOL's cosine schedule (BYOL, DetCon-B; MSN, DINO, MoCo next).
* `Bootstrap`: online encoder + predictor + its `EMATarget`: the network of BYOL and DetCon-B
  (the encoder may take extra inputs, e.g. DetCon's masks).
* `Prototypes`: unit-norm prototypes (SwAV; SMoG, MSN, DeepCluster-v2 next): projection after
  every update, a frozen parameter group for the first steps, collapse statistics.
* `encode_multicrop`: multi-crop encoding grouped by resolution (SwAV; DINO, MSN next).
* `Adversary`: a discriminator's BCE phase on real vs generated batches and the generator's
  adversarial loss (Context Encoders, DCGAN).

A method holds the parts it needs as attributes and keeps its own parameter / state layout.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jax_ssl import losses
from jax_ssl.data import ops
from jax_ssl.methods._base import ParamGroup
from jax_ssl.methods._ema import ema_decay, ema_decay_linear, ema_update


def l2_normalize(x, axis=-1, eps=1e-12):
  """As torch.nn.functional.normalize (SwAV's official code): x / max(||x||, eps)."""
  return x / jnp.maximum(jnp.linalg.norm(x, axis=axis, keepdims=True), eps)


def apply_bn(module: nn.Module, variables: dict, *args, train: bool, **kwargs):
  """``module.apply`` that returns ``(out, batch_stats)`` (batch_stats unchanged in eval mode;
  ``{}`` for a module without BatchNorm)."""
  if not train:
    return module.apply(variables, *args, train=False, **kwargs), variables.get("batch_stats", {})
  out, upd = module.apply(variables, *args, train=True, mutable=["batch_stats"], **kwargs)
  return out, upd.get("batch_stats", {})


def with_batch_stats(state: dict, name: str, stats) -> dict:
  """`state` with ``state["batch_stats"][name]`` replaced by `stats`."""
  return {**state, "batch_stats": {**state["batch_stats"], name: stats}}


class Adversary:
  """A discriminator as a method part (Context Encoders, DCGAN).

  Its parameters live under ``params["discriminator"]``, its training-mode statistics under
  ``state["batch_stats"]["discriminator"]``. Every pass is in training mode on its own batch (the
  official Torch code's separate forward passes for real and generated images).
  """

  def __init__(self, module: nn.Module):
    self.module = module

  def init(self, rng, x):
    """(params, batch_stats) of the discriminator for inputs shaped like `x`."""
    v = self.module.init(rng, x, train=True)
    return v["params"], v.get("batch_stats", {})

  def logits(self, params, stats, x):
    return apply_bn(self.module, {"params": params["discriminator"], "batch_stats": stats}, x, train=True)

  def discriminator_loss(self, params, state, real, fake):
    """`losses.gan_discriminator_loss` of `real` vs `stop_gradient(fake)` -> (loss, (state with the
    discriminator's statistics moved by both passes, {"d_real", "d_fake"}: mean D outputs))."""
    real_logits, stats = self.logits(params, state["batch_stats"]["discriminator"], real)
    fake_logits, stats = self.logits(params, stats, jax.lax.stop_gradient(fake))
    metrics = {"d_real": jnp.mean(jax.nn.sigmoid(real_logits)), "d_fake": jnp.mean(jax.nn.sigmoid(fake_logits))}
    return (losses.gan_discriminator_loss(real_logits, fake_logits),
            (with_batch_stats(state, "discriminator", stats), metrics))

  def generator_loss(self, params, state, fake):
    """(`losses.gan_generator_loss` of `fake`, mean D output on it); the discriminator's
    statistics are left as they are (they move in its own phase)."""
    logits, _ = self.logits(params, state["batch_stats"]["discriminator"], fake)
    return losses.gan_generator_loss(logits), jnp.mean(jax.nn.sigmoid(logits))


class EMATarget:
  """A target copy of `network` (a module returning ``(features, projection)``) moved by EMA.

  State: ``{"params", "batch_stats"}``. The decay rises from `tau_base` to 1 over the run with
  BYOL's cosine schedule (`jax_ssl.methods._ema.ema_decay`), or linearly over `span` times
  the run (`schedule="linear"`, MSN's `ema_decay_linear`); the target runs in training mode
  with its own BatchNorm statistics, as the official BYOL code, and gives no gradient.
  """

  def __init__(self, network: nn.Module, *, tau_base: float, schedule: str = "cosine", span: float = 1.0):
    if not 0.0 <= tau_base <= 1.0:
      raise ValueError(f"tau_base must be in [0, 1], got {tau_base}")
    if schedule not in ("cosine", "linear"):
      raise ValueError(f"EMA schedule must be 'cosine' (BYOL) or 'linear' (MSN), got {schedule!r}")
    if not span >= 1.0:
      raise ValueError(f"EMA span must be >= 1 (a multiple of the run), got {span}")
    self.network = network
    self.tau_base = float(tau_base)
    self.schedule, self.span = schedule, float(span)

  @staticmethod
  def init(params, batch_stats) -> dict:
    """An exact copy of the online variables (own buffers, not aliases)."""
    copy = lambda t: jax.tree.map(jnp.array, t)
    return {"params": copy(params), "batch_stats": copy(batch_stats)}

  def __call__(self, state: dict, *inputs, train: bool = True):
    """(stop-gradient projection, new state) of one input batch."""
    (_, z), bs = apply_bn(self.network, state, *inputs, train=train)
    return jax.lax.stop_gradient(z), {"params": state["params"], "batch_stats": bs}

  def decay(self, step, total_steps: int):
    if self.schedule == "linear":
      return ema_decay_linear(step, base=self.tau_base, total_steps=total_steps, span=self.span)
    return ema_decay(step, base=self.tau_base, total_steps=total_steps)

  def update(self, state: dict, online_params, step, total_steps: int) -> dict:
    tau = self.decay(step, total_steps)
    return dict(state, params=ema_update(state["params"], online_params, tau))


class Bootstrap:
  """BYOL's networks: online `encoder` (-> features, projection), `predictor`, EMA target.

  Params: ``{"encoder", "predictor"}``; state: ``{"batch_stats": {"encoder", "predictor"},
  "target": EMATarget state}``. Each view goes through the networks in its own forward pass
  (BatchNorm statistics per view), the target in training mode too.
  """

  def __init__(self, encoder: nn.Module, predictor: nn.Module, *, tau_base: float):
    self.encoder = encoder
    self.predictor = predictor
    self.target = EMATarget(encoder, tau_base=tau_base)

  def init(self, rng, *inputs):
    enc = self.encoder.init(rng, *inputs, train=True)
    _, z = self.encoder.apply(enc, *inputs, train=False)
    pred = self.predictor.init(jax.random.fold_in(rng, 1), z, train=True)
    params = {"encoder": enc["params"], "predictor": pred["params"]}
    # The target starts as an exact copy of the online encoder, as the paper describes.
    state = {"batch_stats": {"encoder": enc["batch_stats"], "predictor": pred["batch_stats"]},
             "target": EMATarget.init(enc["params"], enc["batch_stats"])}
    return params, state

  def online(self, params, batch_stats, *inputs, train=True):
    """One view through the online network: (projection z, prediction p, new batch_stats)."""
    (_, z), bs_enc = apply_bn(self.encoder, {"params": params["encoder"], "batch_stats": batch_stats["encoder"]},
                              *inputs, train=train)
    p, bs_pred = apply_bn(self.predictor, {"params": params["predictor"], "batch_stats": batch_stats["predictor"]},
                          z, train=train)
    return z, p, {"encoder": bs_enc, "predictor": bs_pred}

  def two_views(self, params, state, x1: Sequence, x2: Sequence):
    """Both views through online and target: ((z1, p1, t1), (z2, p2, t2), new state)."""
    bs, tgt = state["batch_stats"], state["target"]
    z1, p1, bs = self.online(params, bs, *x1)
    z2, p2, bs = self.online(params, bs, *x2)
    t1, tgt = self.target(tgt, *x1)
    t2, tgt = self.target(tgt, *x2)
    return (z1, p1, t1), (z2, p2, t2), {"batch_stats": bs, "target": tgt}

  def update_state(self, params, state, step, total_steps: int):
    return dict(state, target=self.target.update(state["target"], params["encoder"], step, total_steps))

  def embed(self, params, state, images, *, blocks: bool = False):
    return self.encoder.apply({"params": params["encoder"], "batch_stats": state["batch_stats"]["encoder"]},
                              images, method="block_features" if blocks else "features")


class Prototypes:
  """Unit-norm prototypes ``C [K, D]`` stored under the top-level parameter name `key` (the
  method's network declares the parameter; the part owns what is done to it).

  `project` renormalises them after every update (and at initialisation); `reset` sets them
  to k-means centroids after a dataset pass; `param_groups`
  freezes them for the first `frozen_steps` updates (zero gradients: under SGD, LARS or AdamW
  a frozen prototype keeps its direction); `stats` measures collapse on the scores.
  """

  def __init__(self, num: int, dim: int, *, key: str = "prototypes"):
    if num < 2:
      raise ValueError(f"num_prototypes must be at least 2, got {num}")
    self.num, self.dim, self.key = int(num), int(dim), key
    self.frozen_steps = 0

  def project(self, params: dict) -> dict:
    return {**params, self.key: l2_normalize(params[self.key])}

  def reset(self, params: dict, centroids: jax.Array) -> dict:
    """Prototypes set to (unit-normalised) centroids, e.g. of `parallel.kmeans` in a dataset
    pass (DeepCluster-v2, SMoG: `Method.after_dataset_pass`)."""
    if centroids.shape != params[self.key].shape:
      raise ValueError(f"centroids {centroids.shape} do not match the prototypes {params[self.key].shape}")
    return {**params, self.key: l2_normalize(centroids.astype(params[self.key].dtype))}

  def param_groups(self) -> dict:
    if not self.frozen_steps:
      return {"default": ParamGroup()}
    return {"default": ParamGroup(), self.key: ParamGroup(frozen_steps=self.frozen_steps)}

  def param_labels(self, params: dict) -> dict:
    return {k: jax.tree.map(lambda _, k=k: self.key if k == self.key else "default", v) for k, v in params.items()}

  @staticmethod
  def stats(z_assign: Sequence[jax.Array], prototypes: jax.Array) -> dict:
    """Collapse statistics of the nearest-prototype assignment of the embeddings `z_assign`.

    Returns ``prototypes_in_use`` (distinct nearest prototypes over the global batch) and
    ``code_entropy`` (entropy in nats of the mean one-hot assignment; log K at most).
    Balanced Sinkhorn codes would hide a collapse, so this is measured on the scores.
    """
    z = jax.lax.stop_gradient(jnp.concatenate(list(z_assign), axis=0))
    c = l2_normalize(jax.lax.stop_gradient(prototypes))
    hard = jax.nn.one_hot(jnp.argmax(z @ c.T, axis=-1), c.shape[0], dtype=jnp.float32)
    mean = jnp.mean(hard, axis=0)
    entropy = -jnp.sum(jnp.where(mean > 0, mean * jnp.log(jnp.where(mean > 0, mean, 1.0)), 0.0))
    return {"prototypes_in_use": jnp.sum(mean > 0).astype(jnp.float32), "code_entropy": entropy}


def encode_multicrop(backbone: nn.Module, crops: Sequence[jax.Array], *, train: bool) -> jax.Array:
  """Backbone features of every crop, crop-major ``[V * B, F]``, one backbone call per
  resolution group (consecutive crops of one size concatenated along the batch), so that
  BatchNorm sees each group on its own, as the official SwAV / DINO code. Call inside a
  Flax module's compact method (`backbone` is its submodule)."""
  feats = []
  for start, stop in ops.resolution_groups([c.shape[1:] for c in crops]):
    x = jnp.concatenate(crops[start:stop], axis=0) if stop - start > 1 else crops[start]
    feats.append(backbone(x, train=train))
  return jnp.concatenate(feats, axis=0) if len(feats) > 1 else feats[0]
