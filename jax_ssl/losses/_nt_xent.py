"""NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jax_ssl.losses import _common


def nt_xent(z1: jax.Array, z2: jax.Array, *, temperature: float = 0.1, normalize: bool = True,
            axis_name=None) -> jax.Array:
  """NT-Xent contrastive loss (SimCLR), averaged over the 2N anchors of the global batch.

  Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations",
  ICML 2020, Eq. (1) and Algorithm 1:
  ``l(i, j) = -log exp(s_ij / t) / sum_{k != i} exp(s_ik / t)`` with ``s`` the cosine
  similarity, and ``L = 1 / (2N) * sum_k [l(2k-1, 2k) + l(2k, 2k-1)]``.

  Convention: all 2N rows of the global batch (both views) are anchors; an anchor's positive
  is the other view of its image; its denominator runs over the 2N - 1 other rows (the
  positive included, the anchor itself excluded); logits are ``cos / temperature`` (plain
  ``dot / temperature`` when ``normalize=False``); the result is the MEAN over the 2N anchors.
  The official SimCLR code (``objective.py``, ``add_contrastive_loss``) returns
  ``loss_a + loss_b``, the sum of the two directions' means, i.e. twice this value.

  Args:
    z1: ``[N, D]`` embeddings of the first view (this device's shard of the batch).
    z2: ``[N, D]`` embeddings of the second view; row ``i`` comes from the same image as
      row ``i`` of ``z1``.
    temperature: softmax temperature ``t``; divides the logits.
    normalize: L2-normalise the rows first (cosine similarity). False uses raw dot products.
    axis_name: mapped axis (or tuple of axes) the batch is split over under ``shard_map`` or
      ``pmap``. Negatives then come from every device (``all_gather``) and the result is the
      mean over the global batch, the same on every device; value and per-shard gradients
      equal those of the whole batch on one device. None: the batch is all here.

  Returns:
    Scalar loss, float32 (float64 for float64 inputs).

  >>> import jax.numpy as jnp
  >>> z1 = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  >>> z2 = jnp.array([[1.0, 0.1], [0.1, 1.0]])
  >>> print(f"{nt_xent(z1, z2, temperature=0.5):.4f}")
  0.2899
  """
  if z1.ndim != 2 or z1.shape != z2.shape:
    raise ValueError(f"nt_xent expects z1, z2 of equal shape [N, D], got {z1.shape}, {z2.shape}")
  dtype = _common.compute_dtype(z1, z2)
  z1, z2 = z1.astype(dtype), z2.astype(dtype)
  if normalize:
    z1, z2 = _common.l2_normalize(z1), _common.l2_normalize(z2)
  n = z1.shape[0]

  # Rows of the global batch, ordered [view 1 of all devices; view 2 of all devices].
  candidates = jnp.concatenate(
      [_common.all_gather(z1, axis_name), _common.all_gather(z2, axis_name)], axis=0)
  n_global = candidates.shape[0] // 2
  anchors = jnp.concatenate([z1, z2], axis=0)  # [2n, D]
  logits = jnp.einsum("id,jd->ij", anchors, candidates,
                      precision=jax.lax.Precision.HIGHEST) / temperature  # [2n, 2N]

  row = jnp.arange(2 * n)
  image = row % n + _common.axis_index(axis_name) * n  # global image index of each anchor
  view = row // n
  self_col = view * n_global + image
  pos_col = (1 - view) * n_global + image
  cols = jnp.arange(2 * n_global)
  logits = jnp.where(cols[None, :] == self_col[:, None], -jnp.inf, logits)

  positive = jnp.take_along_axis(logits, pos_col[:, None], axis=1)[:, 0]
  per_anchor = jax.nn.logsumexp(logits, axis=1) - positive
  return _common.global_mean(jnp.mean(per_anchor), axis_name)
