"""DetCon's loss and mask pooling against independent float64 NumPy loops, and on 8 devices."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_ssl import losses

from . import _util


def _normalize(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def np_direction(pred, pos_targets, neg_targets, pred_ids, pos_ids, neg_ids, temperature,
                 local_negatives):
  """One direction: each pred slot against [pos_targets (all images); neg_targets (all)].

  Removed candidates are left out of the logsumexp altogether (no 1e9 proxy).
  """
  pred, pos_targets, neg_targets = (
      _normalize(x.astype(np.float64)) for x in (pred, pos_targets, neg_targets))
  b, r, _ = pred.shape
  total = 0.0
  for i in range(b):
    for s in range(r):
      anchor_id = pred_ids[i, s]
      kept, positives = [], []
      for targets, ids, is_pos_view in ((pos_targets, pos_ids, True),
                                        (neg_targets, neg_ids, False)):
        for u in range(b):
          for c in range(r):
            logit = pred[i, s] @ targets[u, c] / temperature
            if u != i:  # another image: always a negative
              kept.append(logit)
            elif ids[u, c] == anchor_id:
              if is_pos_view:  # same object in the other view: positive
                kept.append(logit)
                positives.append(logit)
              # same object in the anchor's own view: removed
            elif local_negatives:  # another object of the same image
              kept.append(logit)
      if not positives:
        continue  # weight 0
      kept = np.array(kept)
      m = kept.max()
      lse = m + np.log(np.sum(np.exp(kept - m)))
      ce = lse - np.mean(positives)  # label mass split evenly among the positives
      weight = 1.0 / np.sum(pred_ids[i] == anchor_id)
      total += weight * ce
  return total / (b * r)


def np_detcon(pred1, pred2, target1, target2, pred_ids1, pred_ids2, target_ids1, target_ids2,
              temperature, local_negatives):
  kw = dict(temperature=temperature, local_negatives=local_negatives)
  return (np_direction(pred1, target2, target1, pred_ids1, target_ids2, target_ids1, **kw)
          + np_direction(pred2, target1, target2, pred_ids2, target_ids1, target_ids2, **kw))


def np_mask_pool(features, masks, eps=1.0):
  b, h, w, c = features.shape
  r = masks.shape[1]
  out = np.zeros((b, r, c))
  for i in range(b):
    for j in range(r):
      m = masks[i, j].astype(np.float64)
      total = np.zeros(c)
      for y in range(h):
        for x in range(w):
          total += m[y, x] * features[i, y, x].astype(np.float64)
      out[i, j] = total / max(m.sum(), eps)
  return out


def _ids(b, r, seed):
  """Mask ids in 0..3 for R slots: repeats within an image, ids missing from one view."""
  rng = np.random.RandomState(seed)
  return [rng.randint(0, 4, size=(b, r)).astype(np.int32) for _ in range(4)]


def _data(b=4, r=5, d=8, seed=0, dtype=np.float32):
  """Slots of an (image, id) pair share an object vector, plus view noise."""
  rng = np.random.RandomState(seed)
  objects = rng.randn(b, 4, d)
  ids = _ids(b, r, seed + 100)
  vecs = [objects[np.arange(b)[:, None], i] + 0.6 * rng.randn(b, r, d) for i in ids]
  return [v.astype(dtype) for v in vecs], ids


def _positive_counts(pred_ids, pos_ids):
  return np.sum(pred_ids[:, :, None] == pos_ids[:, None, :], axis=-1)


def test_data_covers_the_cases():
  """The ids used below give slots without positives, several positives and repeated ids."""
  _, (p1, p2, t1, t2) = _data()
  counts = np.concatenate([_positive_counts(p1, t2).ravel(), _positive_counts(p2, t1).ravel()])
  assert np.any(counts == 0) and np.any(counts == 1) and np.any(counts >= 2)
  assert np.any(_positive_counts(p1, p1) >= 2)  # an id repeated among an image's pred slots


@pytest.mark.parametrize("local_negatives", [True, False])
def test_matches_numpy_float64(x64, local_negatives):
  vecs, ids = _data(dtype=np.float64)
  got = losses.detcon_loss(*vecs, *ids, temperature=0.1, local_negatives=local_negatives)
  want = np_detcon(*vecs, *ids, temperature=0.1, local_negatives=local_negatives)
  assert got.dtype == jnp.float64
  np.testing.assert_allclose(float(got), want, rtol=1e-10)


def test_local_negatives_matter():
  vecs, ids = _data()
  with_local = float(losses.detcon_loss(*vecs, *ids, local_negatives=True))
  without = float(losses.detcon_loss(*vecs, *ids, local_negatives=False))
  assert with_local > without + 1e-3  # more negatives in every softmax


def test_matches_numpy_float32():
  vecs, ids = _data()
  got = losses.detcon_loss(*vecs, *ids, temperature=0.2)
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(float(got), np_detcon(*vecs, *ids, 0.2, True), rtol=1e-5)


def test_jit_same_value():
  vecs, ids = _data()
  f = functools.partial(losses.detcon_loss, temperature=0.1)
  np.testing.assert_allclose(float(jax.jit(f)(*vecs, *ids)), float(f(*vecs, *ids)), rtol=1e-6)


def test_finite_grads():
  vecs, ids = _data()
  f = functools.partial(losses.detcon_loss, temperature=0.1)
  grads = _util.assert_finite_grads(f, (*vecs, *ids), (0, 1, 2, 3))
  assert all(np.abs(np.asarray(g)).max() > 1e-4 for g in grads)


def test_one_slot_equals_twice_nt_xent():
  rng = np.random.RandomState(3)
  x1 = rng.randn(8, 1, 6).astype(np.float32)
  x2 = (x1 + 0.5 * rng.randn(8, 1, 6)).astype(np.float32)
  ids = np.zeros((8, 1), np.int32)
  got = losses.detcon_loss(x1, x2, x1, x2, ids, ids, ids, ids, temperature=0.2)
  want = 2 * losses.nt_xent(x1[:, 0], x2[:, 0], temperature=0.2)
  np.testing.assert_allclose(float(got), float(want), rtol=1e-5)


@pytest.mark.parametrize("mode", _util.MODES)
def test_sharded_matches_single_device(mode):
  vecs, ids = _data(b=16, r=4, seed=1)

  def f(p1, p2, t1, t2, i1, i2, i3, i4, axis_name):
    return losses.detcon_loss(p1, p2, t1, t2, i1, i2, i3, i4, temperature=0.1,
                              axis_name=axis_name)

  v, _ = _util.assert_sharded_matches_single(f, (*vecs, *ids), (True,) * 8, (0, 1, 2, 3),
                                             mode=mode)
  np.testing.assert_allclose(float(v), np_detcon(*vecs, *ids, 0.1, True), rtol=1e-5)


def test_rejects_bad_shapes():
  vecs, ids = _data()
  with pytest.raises(ValueError):
    losses.detcon_loss(vecs[0], vecs[1][:, :3], vecs[2], vecs[3], *ids)
  with pytest.raises(ValueError):
    losses.detcon_loss(*vecs, ids[0][:, :3], *ids[1:])


# ----------------------------------------------------------------------------- mask_pool


def test_mask_pool_matches_numpy_with_empty_mask():
  rng = np.random.RandomState(0)
  features = rng.randn(2, 4, 4, 3).astype(np.float32)
  seg = rng.randint(0, 3, size=(2, 4, 4))
  masks = (seg[:, None] == np.arange(4)[None, :, None, None]).astype(np.float32)  # id 3 empty
  assert masks[:, 3].sum() == 0 and np.all(masks[:, :3].sum(axis=(2, 3)) > 0)
  got = np.asarray(losses.mask_pool(features, masks))
  assert got.shape == (2, 4, 3) and got.dtype == np.float32
  np.testing.assert_allclose(got, np_mask_pool(features, masks), rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(got[:, 3], 0.0)
  np.testing.assert_allclose(got[0, 0], features[0][seg[0] == 0].mean(axis=0), rtol=1e-5)


def test_mask_pool_soft_masks_and_eps(x64):
  rng = np.random.RandomState(1)
  features = rng.randn(2, 3, 3, 2)
  masks = 0.1 * rng.rand(2, 2, 3, 3)  # areas below 1: eps decides the divisor
  got = losses.mask_pool(features, masks, eps=0.05)
  assert got.dtype == jnp.float64
  np.testing.assert_allclose(np.asarray(got), np_mask_pool(features, masks, 0.05), rtol=1e-12)
  np.testing.assert_allclose(np.asarray(losses.mask_pool(features, masks)),
                             np_mask_pool(features, masks, 1.0), rtol=1e-12)


def test_mask_pool_rejects_bad_shapes():
  f = np.zeros((2, 4, 4, 3), np.float32)
  with pytest.raises(ValueError):
    losses.mask_pool(f[0], np.zeros((2, 2, 4, 4)))  # features not 4-d
  with pytest.raises(ValueError):
    losses.mask_pool(f, np.zeros((2, 4, 4)))  # masks not 4-d
  with pytest.raises(ValueError):
    losses.mask_pool(f, np.zeros((3, 2, 4, 4)))  # batch mismatch
  with pytest.raises(ValueError):
    losses.mask_pool(f, np.zeros((2, 2, 4, 5)))  # grid mismatch
