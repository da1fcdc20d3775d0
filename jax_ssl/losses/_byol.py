"""BYOL's normalised regression loss."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jax_ssl.losses import _common


def byol_loss(p: jax.Array, z: jax.Array, *, axis_name=None) -> jax.Array:
  """BYOL regression loss, one direction: ``mean_i ||p_i/|p_i| - z_i/|z_i|||^2``.

  Grill et al., "Bootstrap Your Own Latent", NeurIPS 2020, Eq. (2):
  ``L = ||q̄ - z̄'||^2 = 2 - 2 <q, z'> / (||q|| ||z'||)``.

  Convention: mean over the (global) batch of the squared distance of the L2-normalised
  vectors, which equals ``2 - 2 cos``; ``z`` (the target projection) is under
  ``stop_gradient``. This is ONE direction: BYOL's training loss is the symmetrised sum
  ``byol_loss(p1, z2) + byol_loss(p2, z1)`` (Eq. (2)'s ``L + L~``), as in the official code.

  Args:
    p: ``[B, D]`` online predictions (this device's shard).
    z: ``[B, D]`` target projections for the other view of the same images.
    axis_name: mapped axis the batch is split over (``shard_map``/``pmap``); the result is
      then the mean over the global batch on every device. None: the batch is all here.

  Returns:
    Scalar loss in ``[0, 4]``, float32 (float64 for float64 inputs).

  >>> import jax.numpy as jnp
  >>> p = jnp.array([[1.0, 0.0], [0.0, 2.0]])
  >>> z = jnp.array([[1.0, 1.0], [0.0, 3.0]])
  >>> print(f"{byol_loss(p, z):.4f}")  # (2 - 2 cos 45deg + 0) / 2
  0.2929
  """
  if p.shape != z.shape:
    raise ValueError(f"byol_loss expects p and z of equal shape, got {p.shape}, {z.shape}")
  dtype = _common.compute_dtype(p, z)
  p = _common.l2_normalize(p.astype(dtype))
  z = jax.lax.stop_gradient(_common.l2_normalize(z.astype(dtype)))
  per_example = jnp.sum(jnp.square(p - z), axis=-1)
  return _common.global_mean(jnp.mean(per_example), axis_name)
