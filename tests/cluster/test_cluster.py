"""jax_ssl.cluster against float64 NumPy transcriptions of the official algorithms."""

import numpy as np
import pytest

from jax_ssl.cluster import sela_labels, spherical_kmeans


def _unit(x):
  return x / np.linalg.norm(x, axis=1, keepdims=True)


def np_spherical_kmeans(x, c, iters):
  """main_deepclusterv2.py's loop: E step; stop after iters M steps; M: non-empty clusters to the
  normalized mean of their members."""
  c = c.astype(np.float64).copy()
  for it in range(iters + 1):
    a = np.argmax(x @ c.T, axis=1)
    if it == iters:
      break
    for j in range(len(c)):
      members = x[a == j]
      if len(members):
        c[j] = members.mean(axis=0)
    c = _unit(c)
  return c, a


def _blobs(n=500, d=8, k=7, seed=0):
  rng = np.random.default_rng(seed)
  centers = _unit(rng.normal(size=(k, d)))
  x = _unit(centers[rng.integers(0, k, n)] + 0.4 * rng.normal(size=(n, d)))
  return x.astype(np.float32), centers


@pytest.mark.parametrize("chunk", [4096, 64])
def test_spherical_kmeans_matches_the_official_loop(chunk):
  x, _ = _blobs()
  init = x[:7]
  c, a = spherical_kmeans(x, init, num_iters=10, chunk=chunk)
  want_c, want_a = np_spherical_kmeans(x.astype(np.float64), init, 10)
  np.testing.assert_array_equal(a, want_a)
  np.testing.assert_allclose(c, want_c, atol=1e-5)
  np.testing.assert_allclose(np.linalg.norm(c, axis=1), 1.0, rtol=1e-5)
  assert a.dtype == np.int32 and len(np.unique(a)) == 7


def test_an_empty_cluster_keeps_its_centroid_and_assignments_follow_the_returned_centroids():
  x, _ = _blobs(n=200, d=4, k=3)
  x = np.abs(x)  # the positive orthant: dot products with the other centroids are > 0
  lonely = -np.eye(1, 4, dtype=np.float32)  # x . lonely <= 0: never the nearest
  init = np.concatenate([x[:3], lonely]).astype(np.float32)
  c, a = spherical_kmeans(x, init, num_iters=5)
  np.testing.assert_allclose(c[3], init[3], atol=1e-6)
  assert 3 not in a
  np.testing.assert_array_equal(a, np.argmax(x @ c.T, axis=1))
  with pytest.raises(ValueError, match="centroids"):
    spherical_kmeans(x, init[:, :2])


@pytest.mark.parametrize("chunk", [4096, 64])
def test_rows_marked_invalid_take_no_part_in_the_centroids(chunk):
  """A memory bank not yet full (SMoG): k-means on the valid rows only, whatever the others hold."""
  x, _ = _blobs()
  valid = np.arange(len(x)) < 300
  junk = x.copy()
  junk[300:] = _unit(np.ones((200, x.shape[1]))).astype(np.float32)
  c, a = spherical_kmeans(junk, x[:7], num_iters=10, chunk=chunk, valid=valid)
  want_c, want_a = np_spherical_kmeans(x[:300].astype(np.float64), x[:7], 10)
  np.testing.assert_allclose(c, want_c, atol=1e-5)
  np.testing.assert_array_equal(a[:300], want_a)
  np.testing.assert_array_equal(a, np.argmax(junk @ c.T, axis=1))  # invalid rows are still assigned
  with pytest.raises(ValueError, match="valid"):
    spherical_kmeans(x, x[:7], valid=valid[:10])


def np_sela(logits, lam):
  """optimize_L_sk of the SeLA code, float64, probability domain (fine at these sizes)."""
  p = np.exp(logits - logits.max(1, keepdims=True))
  p = (p / p.sum(1, keepdims=True)).T.astype(np.float64)  # K x N
  k, n = p.shape
  r, c = np.ones((k, 1)) / k, np.ones((n, 1)) / n
  p **= lam
  err, counter = 1e6, 0
  while err > 1e-1:
    r = (1.0 / k) / (p @ c)
    c_new = (1.0 / n) / (r.T @ p).T
    if counter % 10 == 0:
      err = np.nansum(np.abs(c / c_new - 1))
    c = c_new
    counter += 1
  p *= np.squeeze(c)
  p = p.T * np.squeeze(r)
  return np.nanargmax(p, 1)


@pytest.mark.parametrize("lam,chunk", [(5.0, 65536), (10.0, 37), (25.0, 100)])
def test_sela_labels_match_the_official_optimize_L_sk(lam, chunk):
  rng = np.random.default_rng(1)
  logits = (rng.normal(size=(300, 6)) + np.array([2.0, 1.0, 0, 0, 0, -1])) * 0.5  # unbalanced preferences
  got = sela_labels(logits, lam=lam, chunk=chunk)
  np.testing.assert_array_equal(got, np_sela(logits, lam))
  # Equipartition: far more balanced than the argmax of the logits.
  assert np.bincount(got, minlength=6).std() < 0.5 * np.bincount(logits.argmax(1), minlength=6).std()


def test_sela_labels_stay_finite_where_the_probability_domain_underflows():
  rng = np.random.default_rng(2)
  logits = rng.normal(size=(64, 4)) * 30  # softmax ** 25 underflows to 0 in float64 for most entries
  got = sela_labels(logits, lam=25.0)
  assert got.shape == (64,) and set(got.tolist()) <= {0, 1, 2, 3} and len(set(got.tolist())) == 4
  with pytest.raises(ValueError, match=r"\[N, K\]"):
    sela_labels(logits[0])
