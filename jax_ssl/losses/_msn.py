"""MSN: sharpened, Sinkhorn-balanced prototype targets, cross-entropy and mean-entropy maximization."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jax_ssl.losses import _common


def sharpen(probs: jax.Array, temperature: float) -> jax.Array:
  """``p^(1/T)`` renormalized over the last axis (MSN's ``sharpen``; T < 1 sharpens)."""
  dtype = _common.compute_dtype(probs)
  # p^(1/T) = exp(log p / T), renormalized: a softmax of log p / T (finite where p underflows).
  return jax.nn.softmax(jnp.log(probs.astype(dtype)) / temperature, axis=-1)


def msn_sinkhorn(probs: jax.Array, *, num_iters: int = 3, axis_name=None) -> jax.Array:
  """MSN's Sinkhorn balancing of target PROBABILITIES (not of ``exp(scores / eps)`` as SwAV).

  As the official ``distributed_sinkhorn`` of facebookresearch/msn: the probabilities [B, K]
  themselves are normalized to total mass 1; each of ``num_iters`` rounds scales every
  prototype's (column's) sum to 1/K, then every sample's (row's) sum to 1/B; times B, so rows
  sum to 1. B and the column sums are global under ``axis_name``. No gradient.
  """
  dtype = _common.compute_dtype(probs)
  q = jax.lax.stop_gradient(probs).astype(dtype)
  b_local, k = q.shape

  def gsum(x):
    return jax.lax.psum(x, axis_name) if axis_name is not None else x

  b = b_local * _common.axis_size(axis_name)
  q = q / gsum(jnp.sum(q))
  for _ in range(num_iters):
    q = q / gsum(jnp.sum(q, axis=0, keepdims=True)) / k
    q = q / jnp.sum(q, axis=1, keepdims=True) / b
  return jax.lax.stop_gradient(q * b)


def msn_loss(anchor_z: jax.Array, target_z: jax.Array, prototypes: jax.Array, *, temperature: float = 0.1,
             sharpen_temperature: float = 0.25, me_max_weight: float = 1.0, use_sinkhorn: bool = True,
             sinkhorn_iters: int = 3, axis_name=None) -> jax.Array:
  """MSN's objective (Assran et al. 2022, "Masked Siamese Networks", Eq. (1)-(2)).

  Convention (the official ``init_msn_loss``): anchors, targets and prototypes are L2-normalized;
  ``probs = softmax(anchor . P^T / temperature)`` per anchor row; the targets (no gradient) are
  ``sharpen(softmax(target . P^T / temperature), sharpen_temperature)`` then, with
  ``use_sinkhorn``, `msn_sinkhorn` (the probabilities balanced over the global batch), repeated
  for each of the V anchor views. The loss is the cross-entropy ``-sum_k t_k log p_k`` averaged
  over the V*B global anchor rows, plus ``me_max_weight * (sum_k pbar_k log pbar_k + log K)``
  where pbar is the mean of ``probs`` over every anchor row of the global batch (the negative
  entropy of the mean prediction, shifted to be >= 0; 0 when every prototype is used equally).
  The official code's per-sample entropy term has weight 0 in its configs and is left out.

  Args:
    anchor_z: ``[V*B, D]`` anchor-view representations, view-major (rows ``v*B .. v*B+B-1`` are
      view v of this device's B images).
    target_z: ``[B, D]`` the target network's representations of the same B images.
    prototypes: ``[K, D]`` (replicated).
    temperature: the softmax temperature of anchors and targets (0.1).
    sharpen_temperature: T of the target sharpening (0.25).
    me_max_weight: weight of the mean-entropy-maximization regularizer (1.0).
    use_sinkhorn: balance the targets with `msn_sinkhorn` (MSN's ImageNet configs: True).
    sinkhorn_iters: Sinkhorn rounds (3).
    axis_name: mapped axis the batch is split over, or None.

  Returns:
    Scalar, float32 (float64 for float64 inputs), the same on every device.
  """
  if anchor_z.ndim != 2 or target_z.ndim != 2 or prototypes.ndim != 2:
    raise ValueError(f"msn_loss expects anchor_z [V*B, D], target_z [B, D], prototypes [K, D]; got "
                     f"{anchor_z.shape}, {target_z.shape}, {prototypes.shape}")
  b = target_z.shape[0]
  if anchor_z.shape[0] % b or anchor_z.shape[1] != target_z.shape[1] or prototypes.shape[1] != target_z.shape[1]:
    raise ValueError(f"msn_loss: anchor_z {anchor_z.shape} must stack V views of target_z {target_z.shape}'s "
                     f"{b} rows, all of the prototypes' dimension {prototypes.shape[1]}")
  views = anchor_z.shape[0] // b
  dtype = _common.compute_dtype(anchor_z, target_z, prototypes)
  protos = _common.l2_normalize(prototypes.astype(dtype))
  anchors = _common.l2_normalize(anchor_z.astype(dtype))
  log_probs = jax.nn.log_softmax(anchors @ protos.T / temperature, axis=-1)

  targets_in = jax.lax.stop_gradient(_common.l2_normalize(target_z.astype(dtype)) @ protos.T / temperature)
  targets = sharpen(jax.nn.softmax(targets_in, axis=-1), sharpen_temperature)
  if use_sinkhorn:
    targets = msn_sinkhorn(targets, num_iters=sinkhorn_iters, axis_name=axis_name)
  targets = jax.lax.stop_gradient(jnp.tile(targets, (views, 1)))

  ce = _common.global_mean(jnp.mean(-jnp.sum(targets * log_probs, axis=-1)), axis_name)
  if not me_max_weight:
    return ce
  pbar = _common.global_mean(jnp.mean(jnp.exp(log_probs), axis=0), axis_name)
  k = prototypes.shape[0]
  me_max = jnp.sum(pbar * jnp.log(pbar)) + math.log(k)
  return ce + me_max_weight * me_max
