"""k-means over dataset features that stay sharded on the devices (`ShardedFeatures`).

DeepCluster (k-means on the whole training set every epoch), DeepCluster-v2 and SMoG
(prototypes reset to centroids) need Lloyd's algorithm on N = 1.28M features with K up to
10,000 clusters. Here every iteration scans over the `[C, B, F]` chunks: a chunk's scores are
`B x K` (per device `B / devices x K`), the centroid sums `K x F`; no `N x K` matrix and no
host copy of the features exist.
"""

from __future__ import annotations

import functools

import flax
import jax
import jax.numpy as jnp

from jax_ssl.parallel._features import ShardedFeatures


@flax.struct.dataclass
class KMeansResult:
  """Attributes:
    centroids: float32 [K, F] (unit-norm when spherical).
    assignments: int32 [C, B]: each row's cluster (-1 on padding), laid out as the features.
    counts: int32 [K]: members of each cluster after the last assignment.
    inertia: float32 []: sum over examples of the squared distance to the assigned centroid
      (spherical: of `1 - cosine`), at the last assignment.
  """

  centroids: jax.Array
  assignments: jax.Array
  counts: jax.Array
  inertia: jax.Array


def _scores(x, c, spherical):
  """Larger is nearer: `x . c` (spherical) or `-|x - c|^2 + |x|^2 = 2 x . c - |c|^2`."""
  dots = x @ c.T
  return dots if spherical else 2.0 * dots - jnp.sum(c * c, axis=-1)[None, :]


def _normalize(x):
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _sweep(x, valid, cent, spherical):
  """One assignment pass: (per-cluster sums [K, F], counts [K], inertia, labels [C, B])."""
  k = cent.shape[0]

  def body(carry, chunk):
    xc, vc = chunk
    s = _scores(xc, cent, spherical)
    lab = jnp.argmax(s, axis=-1)
    onehot = jax.nn.one_hot(lab, k, dtype=xc.dtype) * vc[:, None]
    best = jnp.max(s, axis=-1)
    dist = (1.0 - best) if spherical else (jnp.sum(xc * xc, -1) - best)
    sums, counts, inertia = carry
    return (sums + onehot.T @ xc, counts + jnp.sum(onehot, 0), inertia + jnp.sum(jnp.where(vc, dist, 0.0))), lab

  init = (jnp.zeros_like(cent), jnp.zeros((k,), x.dtype), jnp.zeros((), x.dtype))
  (sums, counts, inertia), labels = jax.lax.scan(body, init, (x, valid))
  return sums, counts, inertia, labels


@functools.partial(jax.jit, static_argnames=("num_clusters", "iters", "spherical"))
def kmeans(features: ShardedFeatures, rng: jax.Array, *, num_clusters: int, iters: int = 20,
           spherical: bool = False, init: jax.Array | None = None) -> KMeansResult:
  """Lloyd's k-means of the valid rows of `features` (float32 math).

  Args:
    features: the dataset's features, e.g. from `extract_features_sharded`.
    rng: picks the initial centroids: `num_clusters` distinct valid rows uniformly at random
      (faiss's default, which DeepCluster uses), unless `init` is given.
    num_clusters: K (at most the number of valid rows).
    iters: assignment + update iterations (faiss's `niter`, 20 in DeepCluster).
    spherical: cosine k-means: rows and centroids are unit-normalized, assignment by largest
      dot product (DeepCluster-v2, SMoG; faiss `spherical=True`).
    init: float [K, F] initial centroids (e.g. the previous epoch's).

  Empty clusters (faiss's rule, deterministically): an empty cluster takes the centroid of the
  currently largest cluster, and the two are pushed apart by a relative +-1/1024 perturbation
  (alternating signs over the dimensions), so every cluster stays in use.

  Returns a `KMeansResult`; the assignments and counts are those of a final assignment to the
  returned centroids.
  """
  x = features.features.astype(jnp.float32)
  valid = features.valid
  if spherical:
    x = _normalize(x)
  k = int(num_clusters)
  if init is None:
    keys = jax.random.uniform(rng, valid.shape)
    keys = jnp.where(valid, keys, -1.0).reshape(-1)
    _, rows = jax.lax.top_k(keys, k)
    cent = x.reshape(-1, x.shape[-1])[rows]
  else:
    cent = init.astype(jnp.float32)
  if spherical:
    cent = _normalize(cent)
  eps = jnp.where(jnp.arange(cent.shape[1]) % 2 == 0, 1.0, -1.0) / 1024.0

  def update(cent, _):
    sums, counts, _, _ = _sweep(x, valid, cent, spherical)
    new = jnp.where(counts[:, None] > 0, sums / jnp.maximum(counts[:, None], 1.0), cent)

    def has_empty(carry):
      _, n, t = carry
      return jnp.any(n == 0) & (t < k)

    def fix_one(carry):  # O(K) per empty cluster, in index order
      c, n, t = carry
      i, big = jnp.argmin(n), jnp.argmax(n)
      src = c[big]
      c = c.at[i].set(src * (1 + eps)).at[big].set(src * (1 - eps))
      half = jnp.maximum(jnp.floor(n[big] / 2), 1.0)  # the split cluster's expected share
      return c, n.at[i].set(half).at[big].add(-half), t + 1

    new, _, _ = jax.lax.while_loop(has_empty, fix_one, (new, counts, 0))
    return (_normalize(new) if spherical else new), None

  cent, _ = jax.lax.scan(update, cent, None, length=int(iters))
  _, counts, inertia, labels = _sweep(x, valid, cent, spherical)
  labels = jnp.where(valid, labels, -1).astype(jnp.int32)
  return KMeansResult(centroids=cent, assignments=labels, counts=counts.astype(jnp.int32), inertia=inertia)


def per_example(features: ShardedFeatures, values: jax.Array, num_examples: int, fill=0) -> jax.Array:
  """Scatters chunk-laid-out `values` [C, B, ...] (e.g. `KMeansResult.assignments`) to one row
  per example, [N, ...] in index order; padding rows are dropped, examples absent get `fill`."""
  index = jnp.where(features.valid, features.index, num_examples).reshape(-1)
  flat = values.reshape((-1,) + values.shape[2:])
  out = jnp.full((num_examples,) + values.shape[2:], fill, values.dtype)
  return out.at[index].set(flat, mode="drop")


@functools.partial(jax.jit, static_argnames=("dim",))
def pca_whiten(features: ShardedFeatures, *, dim: int, eigen_power: float = -0.5, epsilon: float = 0.0
               ) -> ShardedFeatures:
  """DeepCluster's preprocessing of the features before k-means (official ``preprocess_features``:
  ``faiss.PCAMatrix(F, dim, eigen_power=-0.5)`` trained and applied on all of them, then each
  row L2-normalized).

  Convention: mean and covariance ``X^T X / n - mu mu^T`` of the valid rows (float32 sums, one
  chunk at a time); the `dim` eigenvectors of largest eigenvalue; ``y = (x - mu) V`` scaled by
  ``(lambda + epsilon) ** eigen_power`` per component (-0.5: whitening; eigenvalues floored at
  1e-12 so that a degenerate direction gives no inf); then ``y / |y|``. The chunk layout,
  index, valid and labels are kept; padding rows are transformed like the others and stay
  invalid.

  >>> import numpy as np
  >>> x = np.random.default_rng(0).normal(size=(1, 64, 5)).astype(np.float32) * [1, 2, 3, 4, 5]
  >>> f = ShardedFeatures(x, np.arange(64)[None], np.ones((1, 64), bool), np.zeros((1, 64), np.int32))
  >>> y = pca_whiten(f, dim=3).features
  >>> y.shape, bool(np.allclose(np.linalg.norm(y, axis=-1), 1, atol=1e-5))
  ((1, 64, 3), True)
  """
  x = features.features.astype(jnp.float32)
  if dim > x.shape[-1]:
    raise ValueError(f"pca_whiten: dim {dim} is more than the {x.shape[-1]} feature dimensions")
  v = features.valid.astype(jnp.float32)

  def moments(carry, chunk):
    xc, vc = chunk
    xv = xc * vc[:, None]
    return (carry[0] + jnp.sum(xv, 0), carry[1] + xv.T @ xc, carry[2] + jnp.sum(vc)), None

  f = x.shape[-1]
  init = (jnp.zeros((f,)), jnp.zeros((f, f)), jnp.zeros(()))
  (s1, s2, n), _ = jax.lax.scan(moments, init, (x, v))
  mean = s1 / n
  cov = s2 / n - jnp.outer(mean, mean)
  eig, vec = jnp.linalg.eigh((cov + cov.T) / 2)  # ascending
  eig, vec = eig[::-1][:dim], vec[:, ::-1][:, :dim]
  proj = vec * jnp.maximum(eig + epsilon, 1e-12)[None, :] ** eigen_power
  y = jax.lax.map(lambda xc: _normalize((xc - mean) @ proj), x)
  return features.replace(features=y)


@functools.partial(jax.jit, static_argnames=("k",))
def nearest_neighbors(features: ShardedFeatures, *, k: int) -> tuple[jax.Array, jax.Array]:
  """The `k` nearest neighbours of every valid row by cosine similarity (SCAN's mining: faiss
  ``IndexFlatIP`` on L2-normalized features), the row itself included (normally first).

  Exact search, one query chunk against one key chunk at a time (a running top-k of `B x k`
  per query chunk; no `N x N` matrix): ``N^2 F`` multiply-adds, queries sharded over the devices.
  Ties go to the lower example index.

  Returns (indices int32 [C, B, k]: example indices of the neighbours, most similar first;
  similarities float32 [C, B, k]), laid out as the features (`per_example` gives [N, k]).
  """
  x = _normalize(features.features.astype(jnp.float32))
  if k > x.shape[0] * x.shape[1]:
    raise ValueError(f"nearest_neighbors: k = {k} is more than the {x.shape[0] * x.shape[1]} rows")
  big = jnp.iinfo(jnp.int32).max

  def per_query_chunk(_, q):
    def merge(carry, key):
      best_s, best_i = carry
      kx, kv, ki = key
      s = jnp.where(kv[None, :], q @ kx.T, -jnp.inf)
      ids = jnp.broadcast_to(jnp.where(kv, ki, big)[None, :], s.shape)
      cand_s = jnp.concatenate([best_s, s], axis=1)
      cand_i = jnp.concatenate([best_i, ids], axis=1)
      # The kept candidates come from earlier chunks (lower indices) and a chunk's rows are in
      # index order, so top_k's stable order on ties is the lower index first.
      top_s, order = jax.lax.top_k(cand_s, k)
      return (top_s, jnp.take_along_axis(cand_i, order, 1)), None

    init = (jnp.full((q.shape[0], k), -jnp.inf, jnp.float32), jnp.full((q.shape[0], k), big, jnp.int32))
    (s, i), _ = jax.lax.scan(merge, init, (x, features.valid, features.index.astype(jnp.int32)))
    return None, (i, s)

  _, (idx, sims) = jax.lax.scan(per_query_chunk, None, x)
  return idx, sims
