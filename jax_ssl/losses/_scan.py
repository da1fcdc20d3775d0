"""SCAN's clustering objective (Van Gansbeke et al. 2020, "SCAN: Learning to Classify Images
without Labels", Eq. (2)), with the official code's clamps."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jax_ssl.losses import _common


def scan_loss_terms(anchor_logits: jax.Array, neighbor_logits: jax.Array, *, entropy_weight: float = 5.0,
                    axis_name=None) -> dict:
  """{"total", "consistency", "entropy"} of `scan_loss` (the parts a run logs)."""
  if anchor_logits.ndim != 2 or anchor_logits.shape != neighbor_logits.shape:
    raise ValueError(f"scan_loss expects anchor and neighbour logits of one shape [B, K]; got "
                     f"{anchor_logits.shape}, {neighbor_logits.shape}")
  dtype = _common.compute_dtype(anchor_logits, neighbor_logits)
  pa = jax.nn.softmax(anchor_logits.astype(dtype), axis=-1)
  pn = jax.nn.softmax(neighbor_logits.astype(dtype), axis=-1)
  similarity = jnp.sum(pa * pn, axis=-1)
  # torch's BCELoss floors log at -100: -max(log s, -100) = min(-log s, 100).
  consistency = _common.global_mean(jnp.mean(jnp.minimum(-jnp.log(similarity), 100.0)), axis_name)
  pbar = _common.global_mean(jnp.mean(pa, axis=0), axis_name)
  c = jnp.maximum(pbar, 1e-8)  # the official entropy clamps both factors
  entropy = -jnp.sum(c * jnp.log(c))
  return {"total": consistency - entropy_weight * entropy, "consistency": consistency, "entropy": entropy}


def scan_loss(anchor_logits: jax.Array, neighbor_logits: jax.Array, *, entropy_weight: float = 5.0,
              axis_name=None) -> jax.Array:
  """SCAN loss: agree with a mined neighbour, spread the batch over the clusters.

  Convention (the official ``SCANLoss``): ``pa``, ``pn`` the softmaxes of the anchors' and their
  neighbours' cluster logits; ``s_b = sum_k pa_bk pn_bk``; consistency ``mean_b min(-log s_b,
  100)`` (torch's binary cross-entropy against 1 floors the log at -100); ``pbar`` the mean of
  ``pa`` over the GLOBAL batch, ``c = max(pbar, 1e-8)``, entropy ``-sum_k c_k log c_k``; the loss
  is ``consistency - entropy_weight * entropy`` (5.0 in the CIFAR configs). Gradients flow into
  both logits (the official code does not detach the neighbours).

  Args:
    anchor_logits: [B, K] cluster logits of this device's anchors (one head).
    neighbor_logits: [B, K] the logits of one mined neighbour of each anchor.
    entropy_weight: weight of the entropy term.
    axis_name: mapped axis the batch is split over, or None.

  Returns:
    Scalar (float32, float64 for float64 inputs), the same on every device.

  >>> import jax.numpy as jnp
  >>> same = jnp.array([[4.0, 0.0], [0.0, 4.0]])  # confident, agreeing, both clusters used
  >>> round(float(scan_loss(same, same, entropy_weight=1.0)), 4)
  -0.6572
  """
  return scan_loss_terms(anchor_logits, neighbor_logits, entropy_weight=entropy_weight, axis_name=axis_name)["total"]
