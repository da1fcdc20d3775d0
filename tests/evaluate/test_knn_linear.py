"""kNN and linear probe against independent NumPy computations."""

import numpy as np

from jax_ssl.evaluate import knn_accuracy, knn_predict, linear_probe


def _numpy_knn(train, ytr, test, k, c, t):
  train = train / np.linalg.norm(train, axis=1, keepdims=True)
  test = test / np.linalg.norm(test, axis=1, keepdims=True)
  out = np.zeros((len(test), c))
  for i, q in enumerate(test):
    sim = train @ q
    idx = np.argsort(-sim, kind="stable")[:k]
    for j in idx:
      out[i, ytr[j]] += np.exp(sim[j] / t)
  return out


def test_knn_matches_numpy():
  rng = np.random.default_rng(0)
  train, test = rng.normal(size=(200, 16)), rng.normal(size=(50, 16))
  ytr = rng.integers(0, 4, 200)
  got = knn_predict(train, ytr, test, k=20, num_classes=4, temperature=0.07, chunk=16)
  want = _numpy_knn(train, ytr, test, 20, 4, 0.07)
  np.testing.assert_allclose(got, want, rtol=2e-4)


def test_knn_with_the_bank_sharded_over_eight_devices_matches_numpy():
  # 203 rows: not a multiple of the 8 devices (padding rows must never be neighbours); k = 30
  # exceeds a device's 26 rows, so the global top-k needs candidates from several devices.
  import jax  # pylint: disable=g-import-not-at-top

  from jax_ssl.parallel import make_mesh  # pylint: disable=g-import-not-at-top

  assert jax.device_count() == 8
  rng = np.random.default_rng(3)
  train, test = rng.normal(size=(203, 16)), rng.normal(size=(37, 16))
  ytr = rng.integers(0, 5, 203)
  for k in (1, 30, 500):
    got = knn_predict(train, ytr, test, k=k, num_classes=5, temperature=0.07, chunk=16, mesh=make_mesh())
    np.testing.assert_allclose(got, _numpy_knn(train, ytr, test, min(k, 203), 5, 0.07), rtol=2e-4, err_msg=str(k))


def test_knn_separable_clusters_and_chance():
  rng = np.random.default_rng(1)
  centers = rng.normal(size=(3, 8)) * 5
  ytr, yte = rng.integers(0, 3, 300), rng.integers(0, 3, 90)
  xtr = centers[ytr] + rng.normal(size=(300, 8))
  xte = centers[yte] + rng.normal(size=(90, 8))
  acc = knn_accuracy(xtr, ytr, xte, yte, ks=(5, 20), num_classes=3)
  assert acc["knn_top1_k5"] > 95 and acc["knn_top1_k20"] > 95
  shuffled = knn_accuracy(xtr, rng.permutation(ytr), xte, yte, ks=(20,), num_classes=3)
  assert shuffled["knn_top1_k20"] < 60


def test_linear_probe_learns_a_linear_rule_and_is_deterministic():
  rng = np.random.default_rng(2)
  w = rng.normal(size=(10, 3))
  xtr, xte = rng.normal(size=(400, 10)), rng.normal(size=(200, 10))
  ytr, yte = (xtr @ w).argmax(1), (xte @ w).argmax(1)
  a = linear_probe(xtr, ytr, xte, yte, num_classes=3, iters=200)
  b = linear_probe(xtr, ytr, xte, yte, num_classes=3, iters=200)
  assert a == b
  assert a["linear_top1"] > 90
  noise = linear_probe(xtr, rng.integers(0, 3, 400), xte, yte, num_classes=3, iters=200)
  assert noise["linear_top1"] < 60


def test_pixel_baselines_are_raw_and_standardized_views():
  from jax_ssl.evaluate import pixel_features
  from jax_ssl.methods import SimCLR
  from jax_ssl.models import ResNet
  from tests.helpers import toy_source

  src = toy_source(n=10, size=16)
  mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
  method = SimCLR(backbone=ResNet(depth=18, width=4), image_size=16, mean=mean, std=std)
  raw = pixel_features(method, src, batch_size=8, raw=True)
  standardized = pixel_features(method, src, batch_size=8)
  expected = src.images.astype(np.float64) / 255.0  # 16 px images pass the centre view untouched
  np.testing.assert_allclose(raw, expected.reshape(10, -1), atol=1e-6)
  np.testing.assert_allclose(standardized, ((expected - mean) / std).reshape(10, -1), atol=1e-5)


def test_linear_probe_ignores_a_per_channel_affine_map():
  """Why the report fits the pixel probe once: raw and standardized pixels are one problem."""
  rng = np.random.default_rng(3)
  raw = rng.uniform(0, 1, (300, 8, 8, 3))
  w = rng.normal(size=(8 * 8 * 3, 4))
  labels = (raw.reshape(300, -1) @ w + rng.normal(scale=2.0, size=(300, 4))).argmax(1)
  mean, std = np.array([0.4, 0.5, 0.6]), np.array([0.2, 0.25, 0.3])
  standardized = (raw - mean) / std
  a = linear_probe(raw[:200].reshape(200, -1), labels[:200], raw[200:].reshape(100, -1), labels[200:],
                   num_classes=4, iters=100)
  b = linear_probe(standardized[:200].reshape(200, -1), labels[:200], standardized[200:].reshape(100, -1),
                   labels[200:], num_classes=4, iters=100)
  assert a == b
  assert 40 < a["linear_top1"] < 100  # a real fit, not a degenerate one


def test_probe_projection_gradient_is_x_transpose_g():
  """The probe's logits `x @ w` use a stored transpose for the gradient: same value, same gradient."""
  import jax
  from jax_ssl.evaluate._linear import _project

  rng = np.random.default_rng(4)
  x, w, g = rng.normal(size=(37, 23)), rng.normal(size=(23, 5)), rng.normal(size=(37, 5))
  xf, wf = x.astype(np.float32), w.astype(np.float32)
  value, vjp = jax.vjp(lambda w_: _project(xf, np.ascontiguousarray(xf.T), w_), wf)
  np.testing.assert_allclose(value, x @ w, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(vjp(g.astype(np.float32))[0], x.T @ g, rtol=1e-5, atol=1e-5)


def test_a_bfloat16_bank_votes_like_the_float32_one():
  import jax  # pylint: disable=g-import-not-at-top

  from jax_ssl.parallel import make_mesh  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(4)
  centers = rng.normal(size=(4, 32)) * 3
  ytr, yte = rng.integers(0, 4, 400), rng.integers(0, 4, 100)
  xtr, xte = centers[ytr] + rng.normal(size=(400, 32)), centers[yte] + rng.normal(size=(100, 32))
  want = knn_predict(xtr, ytr, xte, k=20, num_classes=4)
  for mesh in (None, make_mesh(jax.devices()[:8])):
    got = knn_predict(xtr, ytr, xte, k=20, num_classes=4, mesh=mesh, bank_dtype="bfloat16")
    np.testing.assert_array_equal(got.argmax(1), want.argmax(1))
    np.testing.assert_allclose(got, want, rtol=0.2)  # bf16 cosines: ~3 significant digits, exp(sim / 0.07)
  assert knn_accuracy(xtr, ytr, xte, yte, ks=(20,), num_classes=4, bank_dtype="bfloat16")["knn_top1_k20"] > 95
