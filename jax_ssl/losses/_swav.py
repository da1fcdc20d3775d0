"""SwAV: Sinkhorn-Knopp codes and the swapped-prediction loss."""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import jax
import jax.numpy as jnp

from jax_ssl.losses import _common


def sinkhorn(scores: jax.Array, *, epsilon: float = 0.05, num_iters: int = 3,
             axis_name=None) -> jax.Array:
  """SwAV's Sinkhorn-Knopp codes: a soft, equipartitioned assignment of samples to prototypes.

  Caron et al., "Unsupervised Learning of Visual Features by Contrasting Cluster
  Assignments", NeurIPS 2020, Sec. 3.1 ("Computing codes online"):
  ``Q* = Diag(u) exp(C^T Z / epsilon) Diag(v)``, with ``u, v`` found by ``num_iters``
  Sinkhorn-Knopp iterations. Follows ``distributed_sinkhorn`` of the official
  facebookresearch/swav ``main_swav.py``: ``exp(scores / epsilon)`` normalised to total mass
  1; each iteration scales every prototype's (column's) sum to ``1/K``, then every sample's
  (row's) sum to ``1/B``; the result is multiplied by ``B`` so each sample's row sums to 1.
  ``B`` and the column sums are global: under ``axis_name`` they run over every device's rows.

  Deviation (numerics only): the iterations run in log-space with a globally max-shifted
  ``logsumexp``, so the codes stay finite for small ``epsilon`` (the official float32 code
  overflows ``exp`` below ``epsilon`` of about 0.011 for cosine scores). Mathematically
  identical. No gradient flows through the codes (``stop_gradient``).

  Args:
    scores: ``[B, K]`` sample-prototype scores (this device's rows), e.g. cosine similarities.
    epsilon: entropic regularisation; smaller gives harder assignments.
    num_iters: Sinkhorn-Knopp iterations (SwAV uses 3).
    axis_name: mapped axis the rows are split over (``shard_map``/``pmap``), or None.

  Returns:
    ``[B, K]`` codes for this device's rows, float32 (float64 for float64 scores); rows sum
    to 1 and, globally, columns to about ``B_global / K`` (exactly in the limit of iterations).

  >>> import jax.numpy as jnp
  >>> q = sinkhorn(jnp.array([[0.9, 0.1], [0.8, 0.3], [0.2, 0.7], [0.6, 0.5]]), epsilon=0.1)
  >>> print(q.sum(axis=1).round(4), q.sum(axis=0).round(2))
  [1. 1. 1. 1.] [2.1 1.9]
  """
  if scores.ndim != 2:
    raise ValueError(f"sinkhorn expects scores [B, K], got shape {scores.shape}")
  dtype = _common.compute_dtype(scores)
  log_q = jax.lax.stop_gradient(scores).astype(dtype) / epsilon
  b_local, k = log_q.shape
  log_b = math.log(b_local * _common.axis_size(axis_name))
  log_k = math.log(k)

  log_q = log_q - _common.global_logsumexp(log_q, None, axis_name)  # total mass 1
  for _ in range(num_iters):
    # Prototype (column) sums -> 1/K; a column spans every device's rows.
    log_q = log_q - _common.global_logsumexp(log_q, 0, axis_name) - log_k
    # Sample (row) sums -> 1/B; a row lives on one device.
    log_q = log_q - jax.nn.logsumexp(log_q, axis=1, keepdims=True) - log_b
  return jax.lax.stop_gradient(jnp.exp(log_q + log_b))


def _check_crops(z_crops, assign_crops, queue):
  if len(z_crops) < 2:
    raise ValueError(f"swav needs at least 2 crops, got {len(z_crops)}")
  shapes = {tuple(z.shape) for z in z_crops}
  if len(shapes) != 1 or len(next(iter(shapes))) != 2:
    raise ValueError(f"swav expects crops of equal shape [B, D], got {sorted(shapes)}")
  for a in assign_crops:
    if not 0 <= a < len(z_crops):
      raise ValueError(f"assignment crop {a} is not one of the {len(z_crops)} crops")
  if queue is not None and len(queue) != len(assign_crops):
    raise ValueError(f"queue needs one [L, D] array per assignment crop ({len(assign_crops)}), "
                     f"got {len(queue)}")


def _scores_and_codes(z_crops, prototypes, *, epsilon, num_iters, assign_crops, queue, axis_name):
  dtype = _common.compute_dtype(prototypes, *z_crops)
  protos = _common.l2_normalize(prototypes.astype(dtype))
  scores = [jnp.einsum("bd,kd->bk", _common.l2_normalize(z.astype(dtype)), protos,
                       precision=jax.lax.Precision.HIGHEST) for z in z_crops]
  codes = []
  for i, a in enumerate(assign_crops):
    s = scores[a]
    if queue is not None:
      q_emb = _common.l2_normalize(jax.lax.stop_gradient(queue[i]).astype(dtype))
      q_scores = jnp.einsum("ld,kd->lk", q_emb, protos, precision=jax.lax.Precision.HIGHEST)
      s = jnp.concatenate([q_scores, s], axis=0)
    q = sinkhorn(s, epsilon=epsilon, num_iters=num_iters, axis_name=axis_name)
    codes.append(q[-scores[a].shape[0]:])
  return scores, codes


def swav_codes(z_crops: Sequence[jax.Array], prototypes: jax.Array, *, epsilon: float = 0.05,
               num_iters: int = 3, assign_crops: Sequence[int] = (0, 1),
               queue: Optional[Sequence[jax.Array]] = None,
               axis_name=None) -> Tuple[jax.Array, ...]:
  """The Sinkhorn codes ``swav_loss`` uses as targets, one ``[B, K]`` array per assignment crop.

  Same arguments and conventions as :func:`swav_loss` (which see); handy for logging code
  statistics. Codes carry no gradient.

  >>> import jax.numpy as jnp
  >>> z = [jnp.array([[1.0, 0.0], [0.0, 1.0]]), jnp.array([[1.0, 0.2], [0.2, 1.0]])]
  >>> q1, q2 = swav_codes(z, jnp.eye(2), epsilon=0.5)
  >>> print(q1.shape, f"{q1[0, 0]:.3f} {q1[0, 1]:.3f}")
  (2, 2) 0.881 0.119
  """
  z_crops = list(z_crops)
  assign_crops = tuple(assign_crops)
  _check_crops(z_crops, assign_crops, queue)
  _, codes = _scores_and_codes(z_crops, prototypes, epsilon=epsilon, num_iters=num_iters,
                               assign_crops=assign_crops, queue=queue, axis_name=axis_name)
  return tuple(codes)


def swav_loss(z_crops: Sequence[jax.Array], prototypes: jax.Array, *, temperature: float = 0.1,
              epsilon: float = 0.05, num_iters: int = 3, assign_crops: Sequence[int] = (0, 1),
              queue: Optional[Sequence[jax.Array]] = None, axis_name=None) -> jax.Array:
  """SwAV swapped-prediction loss over multi-crop views, with online Sinkhorn codes.

  Caron et al., "Unsupervised Learning of Visual Features by Contrasting Cluster
  Assignments", NeurIPS 2020, Sec. 3.1: ``l(z_t, q_s) = -sum_k q_s^(k) log p_t^(k)`` with
  ``p_t = softmax(z_t^T C / temperature)``, and multi-crop (Sec. 3.2). Follows ``train`` in
  the official facebookresearch/swav ``main_swav.py``:

  * ``z`` rows and prototype rows are L2-normalised here; ``scores_v = z_v @ prototypes.T``.
  * For each assignment crop ``a``: codes ``q_a = sinkhorn([queue_scores; scores_a])`` keeping
    the last ``B`` rows (the batch); the queue rows (``queue[i]`` L2-normalised, scored
    against the current prototypes) only enlarge the Sinkhorn problem.
  * Every other crop ``v != a`` predicts ``q_a``: ``-sum_k q_a log_softmax(scores_v / t)``,
    averaged over the (global) batch, summed over ``v``, divided by ``V - 1``; then averaged
    over the assignment crops.

  Deviation: the official code renormalises the prototype weights in place each step (no
  gradient through the normalisation); here the gradient flows through the normalisation,
  which at unit-norm prototypes is the official gradient projected onto the sphere's tangent.

  Args:
    z_crops: sequence of ``V >= 2`` arrays ``[B, D]``, this device's embeddings of each crop of
      the same ``B`` images, large crops first.
    prototypes: ``[K, D]`` prototype vectors (rows), normalised here.
    temperature: softmax temperature of the predictions.
    epsilon: Sinkhorn entropic regularisation.
    num_iters: Sinkhorn-Knopp iterations.
    assign_crops: indices of the crops whose codes are targets (SwAV: the two large crops).
    queue: None, or one ``[L, D]`` array per assignment crop (in ``assign_crops`` order) of
      stored embeddings from earlier batches (this device's queue). Not updated here: pushing
      the current normalised embeddings is the caller's job. No gradient flows into it.
    axis_name: mapped axis the batch (and the queue) is split over (``shard_map``/``pmap``);
      Sinkhorn's sums then run over every device's rows, queue included, as in the official
      ``distributed_sinkhorn``, and the result is the global mean on every device.

  Returns:
    Scalar loss, float32 (float64 for float64 inputs).

  >>> import jax.numpy as jnp
  >>> z = [jnp.array([[1.0, 0.0], [0.0, 1.0]]), jnp.array([[1.0, 0.2], [0.2, 1.0]])]
  >>> print(f"{swav_loss(z, jnp.eye(2), temperature=0.5, epsilon=0.5):.4f}")
  0.4239
  """
  z_crops = list(z_crops)
  assign_crops = tuple(assign_crops)
  _check_crops(z_crops, assign_crops, queue)
  scores, codes = _scores_and_codes(z_crops, prototypes, epsilon=epsilon, num_iters=num_iters,
                                    assign_crops=assign_crops, queue=queue, axis_name=axis_name)
  num_crops = len(z_crops)
  loss = 0.0
  for a, q in zip(assign_crops, codes):
    subloss = 0.0
    for v in range(num_crops):
      if v == a:
        continue
      log_p = jax.nn.log_softmax(scores[v] / temperature, axis=-1)
      subloss += jnp.mean(-jnp.sum(q * log_p, axis=-1))
    loss += subloss / (num_crops - 1)
  loss /= len(assign_crops)
  return _common.global_mean(loss, axis_name)
