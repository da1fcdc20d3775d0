"""DCGAN's BCE losses and the Context Encoders' weighted L2 vs float64 NumPy transcriptions of the
official Torch criteria (nn.BCECriterion on sigmoid outputs, MSECriterion with the gradient
weighted by wtl2Matrix), and 8 devices == 1."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_ssl import losses

from . import _util


def _bce(p, label):  # nn.BCECriterion: the mean of -(y log p + (1 - y) log(1 - p))
  return float(np.mean(-(label * np.log(p) + (1 - label) * np.log(1 - p))))


def _sigmoid(x):
  return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def _data(b=8, seed=0):
  rng = np.random.default_rng(seed)
  real, fake = rng.normal(0, 2, b).astype(np.float32), rng.normal(0, 2, b).astype(np.float32)
  pred, target = rng.uniform(-1, 1, (2, b, 6, 6, 3)).astype(np.float32)
  weights = np.where(rng.random((6, 6, 1)) < 0.3, 9.99, 0.999).astype(np.float32)
  return real, fake, pred, target, weights


def test_gan_losses_are_the_bce_of_sigmoid_outputs():
  real, fake, _, _, _ = _data()
  d = _bce(_sigmoid(real), 1.0) + _bce(_sigmoid(fake), 0.0)  # errD = errD_real + errD_fake
  np.testing.assert_allclose(float(losses.gan_discriminator_loss(real, fake)), d, rtol=1e-6)
  np.testing.assert_allclose(float(losses.gan_generator_loss(fake)), _bce(_sigmoid(fake), 1.0), rtol=1e-6)
  # On logits the losses stay finite where sigmoid saturates in float32.
  big = jnp.array([80.0, -80.0])
  assert np.isfinite(float(losses.gan_discriminator_loss(big, big))) and float(losses.gan_generator_loss(big)) == pytest.approx(40.0)


def test_inpainting_l2_has_the_official_weighted_mse_gradient():
  _, _, pred, target, weights = _data()
  n = pred.size
  want = float(np.mean(np.broadcast_to(weights, pred.shape) * (pred.astype(np.float64) - target) ** 2))
  np.testing.assert_allclose(float(losses.inpainting_l2(pred, target, weights)), want, rtol=1e-6)
  # The official generator gradient: wtl2Matrix (x) MSECriterion's gradient 2 (x - y) / n.
  grad = jax.grad(lambda p: losses.inpainting_l2(p, target, weights))(pred)
  np.testing.assert_allclose(np.asarray(grad), weights * 2 * (pred.astype(np.float64) - target) / n, rtol=1e-5,
                             atol=1e-9)
  with pytest.raises(ValueError, match="differ"):
    losses.inpainting_l2(pred[:, :5], target, weights)


def test_float64(x64):
  real, fake, pred, target, weights = (np.asarray(a, np.float64) for a in _data())
  np.testing.assert_allclose(float(losses.gan_discriminator_loss(real, fake)),
                             _bce(_sigmoid(real), 1.0) + _bce(_sigmoid(fake), 0.0), rtol=1e-12)
  np.testing.assert_allclose(float(losses.inpainting_l2(pred, target, weights)),
                             np.mean(np.broadcast_to(weights, pred.shape) * (pred - target) ** 2), rtol=1e-12)


@pytest.mark.parametrize("mode", _util.MODES)
def test_sharded_matches_single_device(mode):
  real, fake, pred, target, weights = _data(b=16)
  _util.assert_sharded_matches_single(lambda r, f, axis_name: losses.gan_discriminator_loss(r, f, axis_name=axis_name),
                                      (real, fake), (True, True), (0, 1), mode=mode)
  _util.assert_sharded_matches_single(lambda f, axis_name: losses.gan_generator_loss(f, axis_name=axis_name),
                                      (fake,), (True,), (0,), mode=mode)
  _util.assert_sharded_matches_single(
      lambda p, t, axis_name: losses.inpainting_l2(p, t, weights, axis_name=axis_name),
      (pred, target), (True, True), (0,), mode=mode)
