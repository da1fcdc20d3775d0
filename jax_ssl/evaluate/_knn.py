"""Weighted k-nearest-neighbour classification on frozen features (Wu et al. 2018; DINO).

Protocol (InstDisc / DINO `eval_knn.py`): features are L2-normalized; similarity is the cosine;
each of the k nearest training examples votes for its class with weight exp(sim / T), T = 0.07;
the predicted class has the largest summed weight. Top-1 accuracy in percent.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np


def _normalize(x):
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def knn_predict(train_features, train_labels, test_features, *, k: int, num_classes: int,
                temperature: float = 0.07, chunk: int = 1024) -> np.ndarray:
  """Class-vote scores [N_test, num_classes] of the weighted kNN classifier."""
  k = min(k, train_features.shape[0])
  bank = _normalize(jnp.asarray(train_features, jnp.float32))
  bank_labels = jnp.asarray(train_labels, jnp.int32)

  @jax.jit
  def scores(q):
    sim = _normalize(q) @ bank.T
    top_sim, top_idx = jax.lax.top_k(sim, k)
    weights = jnp.exp(top_sim / temperature)
    onehot = jax.nn.one_hot(bank_labels[top_idx], num_classes)
    return jnp.einsum("nk,nkc->nc", weights, onehot)

  test_features = np.asarray(test_features, np.float32)
  out = [np.asarray(scores(jnp.asarray(test_features[i:i + chunk]))) for i in range(0, len(test_features), chunk)]
  return np.concatenate(out)


def knn_accuracy(train_features, train_labels, test_features, test_labels, *, ks: Sequence[int] = (20, 200),
                 num_classes: int, temperature: float = 0.07) -> dict:
  """Top-1 accuracy (%) of the weighted kNN classifier for each k: {"knn_top1_k20": ..., ...}."""
  out = {}
  for k in ks:
    pred = knn_predict(train_features, train_labels, test_features, k=k, num_classes=num_classes,
                       temperature=temperature).argmax(-1)
    out[f"knn_top1_k{k}"] = float(100.0 * np.mean(pred == np.asarray(test_labels)))
  return out
