"""Adversarial losses (DCGAN) and the Context Encoders' weighted reconstruction loss.

* `gan_discriminator_loss` / `gan_generator_loss`: the binary cross-entropy of DCGAN
  (soumith/dcgan.torch, pathak22/context-encoder: ``nn.BCECriterion`` on ``Sigmoid`` outputs),
  written on logits: ``-log sigmoid(l) = softplus(-l)``, ``-log(1 - sigmoid(l)) = softplus(l)``.
  The generator's is the non-saturating one (fake labelled real, ``errG``).
* `inpainting_l2`: the per-element weighted squared error of Pathak et al. 2016 (Eq. 1, with the
  official code's 10x weight on the overlap band / known pixels).

Every loss is the MEAN over the GLOBAL batch (`axis_name`: the mapped axis of the batch).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jax_ssl.losses import _common


def gan_discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array, *, axis_name=None) -> jax.Array:
  """``mean_b softplus(-real_b) + mean_b softplus(fake_b)``: BCE of real images labelled 1 plus BCE
  of generated ones labelled 0, each the mean over its GLOBAL batch (the official ``errD =
  errD_real + errD_fake``). real_logits [B], fake_logits [B'] (any shapes: every element counts).

  >>> import jax.numpy as jnp
  >>> round(float(gan_discriminator_loss(jnp.zeros(4), jnp.zeros(4))), 4)  # 2 log 2
  1.3863
  """
  dtype = _common.compute_dtype(real_logits, fake_logits)
  real = _common.global_mean(jnp.mean(jax.nn.softplus(-real_logits.astype(dtype))), axis_name)
  fake = _common.global_mean(jnp.mean(jax.nn.softplus(fake_logits.astype(dtype))), axis_name)
  return real + fake


def gan_generator_loss(fake_logits: jax.Array, *, axis_name=None) -> jax.Array:
  """``mean_b softplus(-fake_b)``: the non-saturating generator loss (generated images labelled
  real, ``-log D(G(z))``), the mean over the GLOBAL batch."""
  dtype = _common.compute_dtype(fake_logits)
  return _common.global_mean(jnp.mean(jax.nn.softplus(-fake_logits.astype(dtype))), axis_name)


def inpainting_l2(pred: jax.Array, target: jax.Array, weights: jax.Array, *, axis_name=None) -> jax.Array:
  """``mean over all B h w C elements of weights * (pred - target)^2``, over the GLOBAL batch.

  Pathak et al. 2016's reconstruction loss (Eq. 1, a masked L2). The official Torch code
  computes ``MSECriterion`` (the unweighted mean, which it logs as ``Err_G_L2``) and multiplies
  its gradient element-wise by ``wtl2Matrix`` (``wtl2`` in the region to fill, ``10 wtl2`` on the
  overlap band of the centre prediction or on the known pixels of random-region masks); this
  loss is the function whose gradient that is: pass ``weights = wtl2 * matrix`` (e.g. 0.999 in
  the hole, 9.99 on the band) and add ``(1 - wtl2) *`` `gan_generator_loss` for the joint loss.

  Args:
    pred, target: ``[B, h, w, C]`` (any matching shapes).
    weights: broadcastable to ``pred`` (``[h, w, 1]``, ``[B, h, w, 1]``...).
    axis_name: mapped axis the batch is split over.

  >>> import jax.numpy as jnp
  >>> float(inpainting_l2(jnp.ones((1, 2, 2, 1)), jnp.zeros((1, 2, 2, 1)), jnp.array([[[1.], [10.]], [[1.], [1.]]])))
  3.25
  """
  if pred.shape != target.shape:
    raise ValueError(f"inpainting_l2: pred {pred.shape} and target {target.shape} differ")
  dtype = _common.compute_dtype(pred, target)
  w = jnp.broadcast_to(jnp.asarray(weights, dtype), pred.shape)
  return _common.global_mean(jnp.mean(w * jnp.square(pred.astype(dtype) - target.astype(dtype))), axis_name)
