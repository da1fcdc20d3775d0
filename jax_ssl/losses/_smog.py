"""SMoG's group-level contrast (Pang et al. 2022, "Unsupervised Visual Representation Learning by
Synchronous Momentum Grouping", ECCV 2022, Sec. 3): assign momentum features to the nearest
group, move each group towards its members by momentum, and contrast each prediction against
every group at a temperature.

The authors released no code; the conventions below are the paper's and the issue's, and
where they are silent, lightly's ``SMoGPrototypes`` (the one public implementation); the
differences from lightly are listed in `jax_ssl.methods.smog`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jax_ssl.losses import _common


def _check(z, groups, what):
  if z.ndim != 2 or groups.ndim != 2 or z.shape[1] != groups.shape[1]:
    raise ValueError(f"{what} expects features [B, D] and groups [K, D]; got {z.shape}, {groups.shape}")


def smog_assign(z: jax.Array, groups: jax.Array) -> jax.Array:
  """The group of each row: ``argmax_k cos(z_b, g_k)`` (ties to the lowest index), int32 [B].

  No gradient (an index). Each row is assigned on its own device: nothing to reduce.

  >>> import jax.numpy as jnp
  >>> smog_assign(jnp.array([[1.0, 0.1], [0.0, 2.0]]), jnp.eye(2)).tolist()
  [0, 1]
  """
  _check(z, groups, "smog_assign")
  scores = _common.l2_normalize(jax.lax.stop_gradient(z)) @ _common.l2_normalize(jax.lax.stop_gradient(groups)).T
  return jnp.argmax(scores, axis=-1).astype(jnp.int32)


def smog_group_update(groups: jax.Array, z: jax.Array, assignments: jax.Array, *, beta: float = 0.99,
                      axis_name=None) -> jax.Array:
  """Momentum grouping: every group that has members in the GLOBAL batch moves towards their mean.

  Convention: ``z`` L2-normalized inside; for group ``k`` with members ``S_k`` (rows whose
  `assignments` is k, over all devices) ``g_k <- normalize(beta * g_k + (1 - beta) * mean_{S_k} z)``;
  a group without members keeps its vector. The groups are kept on the unit sphere (the logits
  are cosines either way; renormalizing keeps ``beta`` the weight of the old direction). Under
  `axis_name` the members' sums and counts are summed over devices, so every device holds the
  same groups (a per-device update would let the replicas drift apart).

  Args:
    groups: [K, D] the current group features (unit rows).
    z: [B, D] this device's momentum-encoder features (stop-gradient inside).
    assignments: int [B] the group of each row (`smog_assign` under the current groups).
    beta: the momentum (0.99 in the paper).
    axis_name: mapped axis the batch is split over, or None.

  Returns:
    [K, D] the new groups (float32 at least), the same on every device.

  >>> import jax.numpy as jnp
  >>> g = smog_group_update(jnp.eye(2), jnp.array([[0.0, 1.0]]), jnp.array([0]), beta=0.5)
  >>> [round(float(v), 4) for v in g[0]], g[1].tolist()
  ([0.7071, 0.7071], [0.0, 1.0])
  """
  _check(z, groups, "smog_group_update")
  if not 0.0 <= beta <= 1.0:
    raise ValueError(f"beta must be in [0, 1], got {beta}")
  dtype = _common.compute_dtype(z, groups)
  z = _common.l2_normalize(jax.lax.stop_gradient(z).astype(dtype))
  g = jax.lax.stop_gradient(groups).astype(dtype)
  onehot = jax.nn.one_hot(assignments, g.shape[0], dtype=dtype)  # [B, K]
  sums, counts = onehot.T @ z, jnp.sum(onehot, axis=0)
  if axis_name is not None:
    sums, counts = jax.lax.psum((sums, counts), axis_name)
  mean = sums / jnp.maximum(counts, 1.0)[:, None]
  moved = _common.l2_normalize(beta * g + (1.0 - beta) * mean)
  return jnp.where(counts[:, None] > 0, moved, g)


def smog_loss(pred: jax.Array, groups: jax.Array, assignments: jax.Array, *, temperature: float = 0.1,
              axis_name=None) -> jax.Array:
  """Group-level contrastive loss: cross-entropy of the cosine logits against the assigned group.

  Convention: ``logits_bk = cos(pred_b, g_k) / temperature`` (both L2-normalized inside), loss
  ``mean_b -log softmax(logits_b)[assignments_b]`` over the GLOBAL batch (equal shards). The
  groups get no gradient (they move by `smog_group_update`); the gradient flows into `pred`.
  In SMoG the prediction of one view is scored against the group of the other view's momentum
  feature (and symmetrically).

  Args:
    pred: [B, D] this device's online predictions.
    groups: [K, D] the group features.
    assignments: int [B] the target group of each row.
    temperature: the logits' temperature (0.1).
    axis_name: mapped axis the batch is split over, or None.

  Returns:
    Scalar (float32, float64 for float64 inputs), the same on every device.

  >>> import jax.numpy as jnp
  >>> round(float(smog_loss(jnp.eye(2), jnp.eye(2), jnp.array([0, 1]), temperature=1.0)), 4)
  0.3133
  """
  _check(pred, groups, "smog_loss")
  if assignments.shape != pred.shape[:1]:
    raise ValueError(f"smog_loss expects one assignment per row: pred {pred.shape}, assignments {assignments.shape}")
  if not temperature > 0:
    raise ValueError(f"temperature must be positive, got {temperature}")
  dtype = _common.compute_dtype(pred, groups)
  logits = _common.l2_normalize(pred.astype(dtype)) @ _common.l2_normalize(
      jax.lax.stop_gradient(groups).astype(dtype)).T / temperature
  logp = jax.nn.log_softmax(logits, axis=-1)
  ce = -jnp.take_along_axis(logp, assignments[:, None].astype(jnp.int32), axis=1)[:, 0]
  return _common.global_mean(jnp.mean(ce), axis_name)
