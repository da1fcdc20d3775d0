"""SeLA's self-labelling step (Asano et al. 2020, "Self-labelling via simultaneous clustering and
representation learning"): the official `optimize_L_sk`, in the log domain, chunked."""

from __future__ import annotations

import numpy as np


def _log_softmax(z):
  z = z - z.max(axis=1, keepdims=True)
  return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _logsumexp(z, axis):
  m = z.max(axis=axis, keepdims=True)
  m = np.where(np.isfinite(m), m, 0.0)
  return np.squeeze(m, axis) + np.log(np.exp(z - m).sum(axis=axis))


def sela_labels(logits, *, lam: float = 25.0, tol: float = 0.1, chunk: int = 65536, max_iters: int = 10000):
  """Equipartitioned pseudo-labels from a classifier's logits by Sinkhorn-Knopp.

  Convention (the official `optimize_L_sk`): ``P = softmax(logits) ** lam`` ([N, K]); scalings
  ``alpha`` [K] and ``beta`` [N], ``beta`` starting at 1/N; each iteration first
  ``alpha = (1/K) / (P^T beta)`` then ``beta_new = (1/N) / (P alpha)``; the change
  ``sum_n |beta / beta_new - 1|`` is measured after updates 1, 11, 21, ... and the loop stops once
  the last measured change is at most `tol` (0.1); labels ``argmax_k alpha_k P[n, k]``.
  Computed in float64 in the log domain (``log P = lam * log_softmax``, which never underflows,
  where the official code raises probabilities to the 25th power), `chunk` rows at a time: no
  N x K float64 matrix is held (at N = 1.28M, K = 3,000 that would be 30 GB).

  Args:
    logits: [N, K] (any float dtype; a NumPy or JAX array on the host).
    lam: the inverse temperature (25 in the paper).

  Returns:
    int64 labels [N].

  >>> import numpy as np
  >>> logits = np.array([[2.0, 0.0], [1.5, 0.0], [1.0, 0.0], [0.5, 0.0]])  # all prefer cluster 0
  >>> sela_labels(logits).tolist()  # equipartition: two each, the least confident move
  [0, 0, 1, 1]
  """
  logits = np.asarray(logits)
  if logits.ndim != 2:
    raise ValueError(f"sela_labels expects logits [N, K], got shape {logits.shape}")
  n, k = logits.shape
  chunks = [slice(i, min(i + chunk, n)) for i in range(0, n, chunk)]

  def log_p(s):
    return lam * _log_softmax(np.asarray(logits[s], np.float64))

  log_beta = np.full(n, -np.log(n))
  err, it = np.inf, 0
  while err > tol:
    if it >= max_iters:
      raise RuntimeError(f"sela_labels did not converge in {max_iters} iterations (last change {err:.3g})")
    # alpha_k = (1/K) / sum_n P[n, k] beta_n, a log-sum-exp over the rows, chunk by chunk.
    parts = np.stack([_logsumexp(log_p(s) + log_beta[s, None], axis=0) for s in chunks])
    log_alpha = -np.log(k) - _logsumexp(parts, axis=0)
    new = np.concatenate([-np.log(n) - _logsumexp(log_p(s) + log_alpha[None, :], axis=1) for s in chunks])
    if it % 10 == 0:
      err = float(np.nansum(np.abs(np.exp(log_beta - new) - 1.0)))
    log_beta = new
    it += 1
  return np.concatenate([np.argmax(log_p(s) + log_alpha[None, :], axis=1) for s in chunks]).astype(np.int64)
