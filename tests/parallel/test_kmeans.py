"""Chunked, sharded k-means against a NumPy float64 Lloyd's algorithm."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_ssl import parallel

N, F, B = 53, 5, 16  # 4 chunks of 16, the last with 11 padding rows


def _features(x, devices=8):
  """`ShardedFeatures` of rows `x` laid out as extract_features_sharded does (padding repeats N - 1)."""
  n = len(x)
  c = -(-n // B)
  idx = np.minimum(np.arange(c * B), n - 1).reshape(c, B)
  valid = (np.arange(c * B) < n).reshape(c, B)
  mesh = parallel.make_mesh(jax.devices()[:devices])
  sh = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(None, mesh.axis_names[0]))
  put = lambda a: jax.device_put(a, sh)
  return parallel.ShardedFeatures(features=put(x[idx].astype(np.float32)), index=put(idx.astype(np.int32)),
                                  valid=put(valid), labels=put(np.zeros_like(idx, np.int32)))


def _numpy_lloyd(x, cent, iters, spherical):
  x = x.astype(np.float64)
  cent = cent.astype(np.float64)
  if spherical:
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    cent = cent / np.linalg.norm(cent, axis=1, keepdims=True)

  def assign(cent):
    if spherical:
      return np.argmax(x @ cent.T, axis=1)
    return np.argmin(((x[:, None] - cent[None]) ** 2).sum(-1), axis=1)

  for _ in range(iters):
    lab = assign(cent)
    for j in range(len(cent)):
      if np.any(lab == j):
        cent[j] = x[lab == j].mean(0)
    if spherical:
      cent = cent / np.linalg.norm(cent, axis=1, keepdims=True)
  return cent, assign(cent)


def _blobs(seed=0, k=4):
  rng = np.random.default_rng(seed)
  centers = rng.normal(size=(k, F)) * 4
  return centers[np.arange(N) % k] + rng.normal(size=(N, F)), centers


@pytest.mark.parametrize("spherical", [False, True])
def test_matches_numpy_lloyd_from_the_same_init(spherical):
  x, _ = _blobs()
  init = x[[0, 7, 13, 30, 44]]  # 5 clusters on 4 blobs: the assignment is not trivial
  res = parallel.kmeans(_features(x), jax.random.key(0), num_clusters=5, iters=6, spherical=spherical,
                        init=jnp.asarray(init))
  want_c, want_l = _numpy_lloyd(x, init, 6, spherical)
  np.testing.assert_allclose(np.asarray(res.centroids), want_c, rtol=1e-4, atol=1e-4)
  got = np.asarray(parallel.per_example(_features(x), res.assignments, N, fill=-1))
  np.testing.assert_array_equal(got, want_l)
  np.testing.assert_array_equal(np.asarray(res.counts), np.bincount(want_l, minlength=5))
  xx = x / np.linalg.norm(x, axis=1, keepdims=True) if spherical else x
  cc = want_c[want_l]
  want_inertia = np.sum(1 - np.sum(xx * cc, 1)) if spherical else np.sum((xx - cc) ** 2)
  np.testing.assert_allclose(float(res.inertia), want_inertia, rtol=1e-4)
  assert np.all(np.asarray(res.assignments)[~np.asarray(_features(x).valid)] == -1)


def test_eight_devices_equal_one():
  x, _ = _blobs(1)
  a = parallel.kmeans(_features(x, 8), jax.random.key(3), num_clusters=4, iters=5)
  b = parallel.kmeans(_features(x, 1), jax.random.key(3), num_clusters=4, iters=5)
  np.testing.assert_array_equal(np.asarray(a.assignments), np.asarray(b.assignments))
  np.testing.assert_allclose(np.asarray(a.centroids), np.asarray(b.centroids), rtol=1e-6, atol=1e-6)


def test_random_init_uses_distinct_valid_rows_and_recovers_the_blobs():
  x, centers = _blobs(2)
  res = parallel.kmeans(_features(x), jax.random.key(1), num_clusters=4, iters=10)
  labels = np.asarray(parallel.per_example(_features(x), res.assignments, N))
  truth = np.arange(N) % 4
  # Each found cluster is one blob (a permutation of the true labels).
  assert all(len(np.unique(truth[labels == j])) == 1 for j in range(4))
  assert sorted(np.unique(labels)) == [0, 1, 2, 3]
  # iters=0: the centroids are the sampled rows: distinct, and never a padding row's copy of x[N-1].
  res0 = parallel.kmeans(_features(x), jax.random.key(1), num_clusters=8, iters=0)
  rows = [int(np.flatnonzero(np.all(np.isclose(x.astype(np.float32), c), axis=1))[0]) for c in np.asarray(res0.centroids)]
  assert len(set(rows)) == 8


def test_empty_clusters_are_split_from_the_largest():
  x, _ = _blobs(3, k=2)
  init = np.stack([x[0], x[1], np.full(F, 1e3)])  # the third centroid is far from every point
  res = parallel.kmeans(_features(x), jax.random.key(0), num_clusters=3, iters=4, init=jnp.asarray(init))
  counts = np.asarray(res.counts)
  assert counts.sum() == N and np.all(counts > 0), counts
  # Without the rule the far centroid stays empty (NumPy Lloyd keeps it).
  _, lab = _numpy_lloyd(x, init, 4, False)
  assert np.bincount(lab, minlength=3)[2] == 0


def test_per_example_fills_missing_examples():
  x, _ = _blobs()
  feats = _features(x[:20])
  vals = jnp.asarray(np.arange(feats.index.size, dtype=np.int32).reshape(feats.index.shape))
  out = np.asarray(parallel.per_example(feats, vals, 25, fill=-7))
  np.testing.assert_array_equal(out[:20], np.arange(20))
  np.testing.assert_array_equal(out[20:], -7)
