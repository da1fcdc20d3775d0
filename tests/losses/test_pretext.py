"""Pretext-task classification loss and accuracy, and the rotation / context label conventions."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_ssl import losses

from . import _util


def np_classification_loss(logits, labels, label_smoothing=0.0):
  """Mean over examples of -sum_k target_k log softmax_k, targets smoothed towards uniform."""
  logits = logits.astype(np.float64)
  k = logits.shape[1]
  total = 0.0
  for row, y in zip(logits, labels):
    m = row.max()
    log_p = row - (m + np.log(np.sum(np.exp(row - m))))
    target = np.full(k, label_smoothing / k)
    target[y] += 1.0 - label_smoothing
    total -= target @ log_p
  return total / len(labels)


def _data(n=16, k=5, seed=0, dtype=np.float32):
  rng = np.random.RandomState(seed)
  return (2.0 * rng.randn(n, k)).astype(dtype), rng.randint(0, k, size=n).astype(np.int32)


# ----------------------------------------------------------------------------- classification


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 0.3])
def test_classification_loss_matches_numpy(label_smoothing):
  logits, labels = _data()
  got = losses.classification_loss(logits, labels, label_smoothing=label_smoothing)
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(float(got), np_classification_loss(logits, labels, label_smoothing),
                             rtol=1e-5)


def test_classification_loss_float64(x64):
  logits, labels = _data(dtype=np.float64)
  got = losses.classification_loss(logits, labels, label_smoothing=0.1)
  assert got.dtype == jnp.float64
  np.testing.assert_allclose(float(got), np_classification_loss(logits, labels, 0.1), rtol=1e-12)


def test_label_smoothing_changes_the_loss():
  logits, labels = _data()
  plain = float(losses.classification_loss(logits, labels))
  smooth = float(losses.classification_loss(logits, labels, label_smoothing=0.1))
  assert abs(plain - smooth) > 1e-3


def test_classification_loss_jit_and_finite_grads():
  logits, labels = _data()
  f = functools.partial(losses.classification_loss, label_smoothing=0.1)
  np.testing.assert_allclose(float(jax.jit(f)(logits, labels)), float(f(logits, labels)),
                             rtol=1e-6)
  (g,) = _util.assert_finite_grads(f, (logits, labels), (0,))
  np.testing.assert_allclose(np.asarray(g).sum(axis=1), 0.0, atol=1e-6)  # softmax - target


@pytest.mark.parametrize("mode", _util.MODES)
def test_classification_loss_sharded_matches_single_device(mode):
  logits, labels = _data(n=32)
  f = functools.partial(losses.classification_loss, label_smoothing=0.1)
  v, _ = _util.assert_sharded_matches_single(f, (logits, labels), (True, True), (0,), mode=mode)
  np.testing.assert_allclose(float(v), np_classification_loss(logits, labels, 0.1), rtol=1e-5)


def test_classification_loss_rejects_bad_shapes():
  with pytest.raises(ValueError):
    losses.classification_loss(np.zeros((4, 3)), np.zeros((5,), np.int32))
  with pytest.raises(ValueError):
    losses.classification_loss(np.zeros((4,)), np.zeros((4,), np.int32))


def test_accuracy():
  logits, labels = _data(n=64)
  got = losses.accuracy(logits, labels)
  want = np.mean(np.argmax(logits, axis=1) == labels)
  assert 0.0 < want < 1.0
  np.testing.assert_allclose(float(got), want, rtol=1e-6)
  np.testing.assert_allclose(float(losses.accuracy(logits, np.argmax(logits, 1))), 1.0)
  g = jax.grad(losses.accuracy)(logits, labels)
  assert np.all(np.asarray(g) == 0)


# ----------------------------------------------------------------------------- rotation


def test_rotate_batch_matches_np_rot90():
  images = np.random.RandomState(0).randn(3, 5, 5, 2).astype(np.float32)
  rotated, labels = losses.rotate_batch(images)
  assert rotated.shape == (12, 5, 5, 2) and labels.dtype == jnp.int32
  np.testing.assert_array_equal(np.asarray(labels), [0, 1, 2, 3] * 3)
  rotated = np.asarray(rotated)
  for i in range(3):  # image-major: rows 4i..4i+3 are image i at 0, 90, 180, 270 degrees
    for k in range(4):
      np.testing.assert_array_equal(rotated[4 * i + k], np.rot90(images[i], k))
  assert losses.ROTATION_DEGREES == (0, 90, 180, 270)


def test_rotate_batch_is_counter_clockwise():
  image = np.zeros((1, 3, 3, 1), np.float32)
  image[0, 0, 2, 0] = 1.0  # top-right pixel (row 0 at the top)
  rotated, _ = losses.rotate_batch(image)
  r90 = np.asarray(rotated[1, ..., 0])
  assert r90[0, 0] == 1.0 and r90.sum() == 1.0  # 90 degrees CCW: top-right goes top-left
  assert np.asarray(rotated[2, ..., 0])[2, 0] == 1.0  # 180: bottom-left
  assert np.asarray(rotated[3, ..., 0])[2, 2] == 1.0  # 270: bottom-right


def test_rotate_batch_rejects_non_square():
  with pytest.raises(ValueError):
    losses.rotate_batch(np.zeros((2, 4, 5, 3)))


# ----------------------------------------------------------------------------- context


# Doersch et al.'s 3x3 raster order with the centre skipped; (dy, dx), dy downwards.
RASTER = {
    0: (-1, -1),  # up-left
    1: (-1, 0),   # up
    2: (-1, 1),   # up-right
    3: (0, -1),   # left
    4: (0, 1),    # right
    5: (1, -1),   # down-left
    6: (1, 0),    # down
    7: (1, 1),    # down-right
}


def test_context_offsets_are_raster_order():
  assert len(losses.CONTEXT_OFFSETS) == 8
  for label, offset in RASTER.items():
    assert tuple(losses.CONTEXT_OFFSETS[label]) == offset


@pytest.mark.parametrize("label", range(8))
def test_context_label_inverts_offsets(label):
  dy, dx = losses.CONTEXT_OFFSETS[label]
  got = losses.context_label(dy, dx)
  assert isinstance(got, int) and got == label
  assert RASTER[got] == (dy, dx)
  assert losses.context_label(-dy, -dx) == 7 - label


def test_context_label_arrays():
  dy = np.array([o[0] for o in losses.CONTEXT_OFFSETS] * 2)
  dx = np.array([o[1] for o in losses.CONTEXT_OFFSETS] * 2)
  got = losses.context_label(dy, dx)
  assert got.dtype == jnp.int32
  np.testing.assert_array_equal(np.asarray(got), list(range(8)) * 2)
  got = jax.jit(losses.context_label)(jnp.asarray(dy).reshape(2, 8), jnp.asarray(dx).reshape(2, 8))
  np.testing.assert_array_equal(np.asarray(got), [list(range(8))] * 2)


@pytest.mark.parametrize("offset", [(0, 0), (2, 0), (0, -2), (-1, 3)])
def test_context_label_rejects_invalid_offsets(offset):
  with pytest.raises(ValueError):
    losses.context_label(*offset)
