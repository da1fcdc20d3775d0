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


def scan_selflabel_terms(weak_logits: jax.Array, strong_logits: jax.Array, *, threshold: float = 0.99,
                         class_balance: bool = True, axis_name=None) -> dict:
  """{"total", "confident"} of `scan_selflabel_loss` ("confident": the share of the global
  batch above the threshold)."""
  if weak_logits.ndim != 2 or weak_logits.shape != strong_logits.shape:
    raise ValueError(f"scan_selflabel_loss expects weak and strong logits of one shape [B, K]; got "
                     f"{weak_logits.shape}, {strong_logits.shape}")
  dtype = _common.compute_dtype(weak_logits, strong_logits)
  k = weak_logits.shape[-1]
  prob = jax.nn.softmax(jax.lax.stop_gradient(weak_logits).astype(dtype), axis=-1)
  target = jnp.argmax(prob, axis=-1)
  mask = (jnp.max(prob, axis=-1) > threshold).astype(dtype)
  psum = (lambda v: jax.lax.psum(v, axis_name)) if axis_name is not None else (lambda v: v)
  counts = psum(jnp.sum(jax.nn.one_hot(target, k, dtype=dtype) * mask[:, None], axis=0))  # [K], global
  n = jnp.sum(counts)
  if class_balance:  # torch's weight[c] = 1 / (count_c / n) for the classes present, 1 elsewhere
    weight = jnp.where(counts > 0, n / jnp.maximum(counts, 1.0), 1.0)
  else:
    weight = jnp.ones((k,), dtype)
  w = weight[target] * mask
  denom = psum(jnp.sum(w))
  ce = -jnp.take_along_axis(jax.nn.log_softmax(strong_logits.astype(dtype), axis=-1), target[:, None], 1)[:, 0]
  devices = 1 if axis_name is None else _common.axis_size(axis_name)
  local = jnp.sum(w * ce) * devices / jnp.maximum(denom, jnp.finfo(dtype).tiny)
  total = jnp.where(denom > 0, _common.global_mean(local, axis_name), 0.0)
  confident = n / (weak_logits.shape[0] * devices)
  return {"total": total, "confident": confident}


def scan_selflabel_loss(weak_logits: jax.Array, strong_logits: jax.Array, *, threshold: float = 0.99,
                        class_balance: bool = True, axis_name=None) -> jax.Array:
  """SCAN's self-labelling loss (the official ``ConfidenceBasedCE``): confident predictions on
  the weak view are the targets of the strong view.

  Convention: ``p = softmax(weak)`` under stop-gradient, target ``argmax p``, confident where
  ``max p > threshold`` (0.99); over the confident examples of the GLOBAL batch, torch's
  weighted-mean cross-entropy of the strong logits, ``sum_i w_{t_i} ce_i / sum_i w_{t_i}``, with
  ``w_c = n / n_c`` (``n`` confident examples, ``n_c`` of them with target ``c``) when
  `class_balance`, else 1 — i.e. the mean over the targets present of each target's mean
  cross-entropy. A batch without a confident example gives 0 (the official raises).

  Args:
    weak_logits: [B, K] logits of the weakly augmented images (this device's shard).
    strong_logits: [B, K] logits of their strongly augmented views.
    threshold: the confidence a prediction must exceed.
    class_balance: the inverse-frequency weights (the official ``apply_class_balancing``).
    axis_name: mapped axis the batch is split over, or None.

  >>> import jax.numpy as jnp
  >>> weak = jnp.array([[9.0, 0.0], [9.0, 0.0], [0.0, 9.0], [0.0, 0.0]])  # 3 confident
  >>> strong = jnp.array([[1.0, 0.0], [0.0, 0.0], [0.0, 2.0], [5.0, 0.0]])
  >>> round(float(scan_selflabel_loss(weak, strong)), 4)  # (mean(0.3133, 0.6931) + 0.1269) / 2
  0.3151
  """
  return scan_selflabel_terms(weak_logits, strong_logits, threshold=threshold, class_balance=class_balance,
                              axis_name=axis_name)["total"]
