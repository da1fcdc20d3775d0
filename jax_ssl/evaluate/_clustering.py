"""Clustering metrics: accuracy under the best one-to-one matching, NMI, ARI."""

from __future__ import annotations

import numpy as np


def clustering_accuracy(labels, predictions) -> float:
  """Top-1 (%) after matching clusters to classes one to one (Hungarian algorithm).

  Convention (SCAN's `_hungarian_match`, DeepCluster's evaluation): a square contingency table
  over the ids 0..max(labels, predictions); `scipy.optimize.linear_sum_assignment` picks the
  matching with the most agreements; with more clusters than classes the unmatched clusters
  count as wrong.

  >>> clustering_accuracy([0, 0, 1, 1, 2, 2], [2, 2, 0, 0, 1, 1])
  100.0
  >>> round(clustering_accuracy([0, 0, 0, 1], [0, 1, 2, 3]), 2)  # 4 clusters, 2 classes: two matches
  50.0
  """
  from scipy.optimize import linear_sum_assignment  # pylint: disable=g-import-not-at-top

  labels, predictions = np.asarray(labels, np.int64), np.asarray(predictions, np.int64)
  if labels.shape != predictions.shape or labels.ndim != 1 or labels.size == 0:
    raise ValueError(f"clustering_accuracy expects two [N] arrays, got {labels.shape} and {predictions.shape}")
  if labels.min() < 0 or predictions.min() < 0:
    raise ValueError("clustering_accuracy expects ids >= 0")
  size = int(max(labels.max(), predictions.max())) + 1
  table = np.zeros((size, size), np.int64)
  np.add.at(table, (predictions, labels), 1)
  rows, cols = linear_sum_assignment(table, maximize=True)
  return 100.0 * float(table[rows, cols].sum()) / labels.size


def clustering_metrics(labels, predictions) -> dict:
  """{"acc", "nmi", "ari"} in percent: `clustering_accuracy`, scikit-learn's normalized mutual
  information (arithmetic mean normalization) and adjusted Rand index."""
  from sklearn import metrics  # pylint: disable=g-import-not-at-top

  acc = clustering_accuracy(labels, predictions)
  return {"acc": acc, "nmi": 100.0 * float(metrics.normalized_mutual_info_score(labels, predictions)),
          "ari": 100.0 * float(metrics.adjusted_rand_score(labels, predictions))}


def kmeans_baseline(features, labels, *, num_clusters: int | None = None, seed: int = 0) -> dict:
  """{"kmeans_acc", "kmeans_nmi"} (%) of k-means on L2-normalized `features` [N, F] with as many
  clusters as classes (scikit-learn's KMeans, k-means++ initialization, 10 restarts, seeded):
  the "features + k-means" baseline every clustering report compares against (SCAN, Table 3).
  """
  from sklearn.cluster import KMeans  # pylint: disable=g-import-not-at-top

  x = np.asarray(features, np.float64)
  x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
  labels = np.asarray(labels)
  k = int(num_clusters or labels.max() + 1)
  pred = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x)
  m = clustering_metrics(labels, pred)
  return {"kmeans_acc": m["acc"], "kmeans_nmi": m["nmi"]}
