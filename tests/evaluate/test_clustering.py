"""Clustering metrics against brute force over every matching, and scikit-learn's definitions."""

import itertools

import numpy as np
import pytest

from jax_ssl.evaluate import clustering_accuracy, clustering_metrics


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
