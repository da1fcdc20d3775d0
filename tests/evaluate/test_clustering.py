"""Clustering metrics against brute force over every matching, and scikit-learn's definitions."""

import itertools

import numpy as np
import pytest

from jax_ssl.evaluate import clustering_accuracy, clustering_metrics, kmeans_baseline


def _brute_force_accuracy(labels, preds):
  size = max(labels.max(), preds.max()) + 1
  best = 0
  for perm in itertools.permutations(range(size)):  # cluster c -> class perm[c]
    best = max(best, int(np.sum(np.asarray(perm)[preds] == labels)))
  return 100.0 * best / len(labels)


@pytest.mark.parametrize("seed,k_pred", [(0, 4), (1, 4), (2, 6)])
def test_accuracy_is_the_best_one_to_one_matching(seed, k_pred):
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 4, 60)
  preds = np.where(rng.random(60) < 0.6, (labels + 1) % 4, rng.integers(0, k_pred, 60))
  assert clustering_accuracy(labels, preds) == pytest.approx(_brute_force_accuracy(labels, preds))


def test_metrics_of_a_relabelled_partition_are_perfect_and_of_noise_near_zero():
  labels = np.repeat(np.arange(5), 40)
  perfect = clustering_metrics(labels, (labels * 3 + 1) % 5)
  assert perfect == pytest.approx({"acc": 100.0, "nmi": 100.0, "ari": 100.0})
  noise = clustering_metrics(labels, np.random.default_rng(0).integers(0, 5, 200))
  assert noise["acc"] < 35 and noise["nmi"] < 5 and abs(noise["ari"]) < 3
  with pytest.raises(ValueError, match=r"two \[N\] arrays"):
    clustering_accuracy(labels, labels[:-1])


def test_kmeans_baseline_clusters_directions_not_norms():
  # Three classes along three directions, each row scaled by a random norm: on the sphere the
  # classes are tight clusters (ACC 100), while the raw norms alone would split them otherwise.
  rng = np.random.default_rng(0)
  labels = np.repeat(np.arange(3), 30)
  dirs = np.eye(3)[labels] + 0.05 * rng.normal(size=(90, 3))
  x = dirs * rng.uniform(0.1, 10.0, (90, 1))
  assert kmeans_baseline(x, labels) == pytest.approx({"kmeans_acc": 100.0, "kmeans_nmi": 100.0})
  noise = kmeans_baseline(rng.normal(size=(90, 3)), labels)
  assert noise["kmeans_acc"] < 60 and noise["kmeans_nmi"] < 15
