"""Evaluation during training: the online linear probe and the kNN monitor, as trainer events."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jax_ssl import data, evaluate, parallel, train
from jax_ssl.methods import SimCLR
from tests.helpers import toy_source
from tests.train.fault_driver import TinyNet


def _simclr():
  return SimCLR(backbone=TinyNet(), image_size=16, proj_hidden_dims=(16,), proj_dim=8, temperature=0.5)


def test_online_probe_step_against_numpy():
  probe = train.OnlineProbe(3, lr=0.1)
  rng = np.random.default_rng(0)
  feats = rng.normal(size=(6, 4)).astype(np.float32)
  labels = np.array([0, 1, 2, 1, -1, 2], np.int32)  # one unlabelled example: no loss, no accuracy
  state = probe.init(jnp.asarray(feats))
  new, m = probe.step(state, jnp.asarray(feats), jnp.asarray(labels))
  valid = labels >= 0
  # Zero weights: uniform softmax, loss ln 3, argmax 0 -> top-1 = share of label 0 among the labelled.
  np.testing.assert_allclose(m["online_probe/loss"], np.log(3.0), rtol=1e-6)
  np.testing.assert_allclose(m["online_probe/top1"], 100.0 * np.mean(labels[valid] == 0), rtol=1e-6)
  onehot = np.eye(3)[labels[valid]]
  grad_k = feats[valid].T.astype(np.float64) @ (np.full_like(onehot, 1 / 3) - onehot) / valid.sum()
  # Adam's first step is lr * g / (|g| + eps): -lr * sign(g) where g is not tiny.
  expected = -0.1 * grad_k / (np.abs(grad_k) + 1e-8)
  np.testing.assert_allclose(new["params"]["kernel"], expected, rtol=1e-4, atol=1e-6)


def _train(workdir, steps, **kw):
  src = toy_source(n=64, size=16)
  return train.train(_simclr(), src, workdir=workdir, global_batch=16, total_steps=12, tx=optax.adamw(3e-3), seed=0,
                     checkpoint_every=4, log_every=4, progress=False, mesh=parallel.make_mesh(jax.devices()[:1]),
                     stop_after=steps, **kw)


def test_online_probe_learns_and_resumes_exactly(tmp_path):
  probe = train.OnlineProbe(4, lr=3e-2)
  ref = _train(str(tmp_path / "ref"), 12, probe=probe)
  rows = train.read_metrics(str(tmp_path / "ref"))
  top1 = [r["online_probe/top1"] for r in rows]
  assert len(top1) == 3 and top1[-1] > 40.0, top1  # 4 colour-coded classes: chance is 25%
  _train(str(tmp_path / "split"), 6, probe=probe)
  resumed = _train(str(tmp_path / "split"), 12, probe=probe)
  for a, b in zip(jax.tree.leaves(jax.device_get(ref.state)), jax.tree.leaves(jax.device_get(resumed.state))):
    np.testing.assert_array_equal(a, b)
  assert resumed.state.probe is not None


def test_knn_monitor_is_logged_as_eval_rows(tmp_path):
  src = toy_source(n=64, size=16)
  bank, queries = data.split_validation(src, fraction=0.25, seed=0)
  method = _simclr()
  mon = evaluate.KnnMonitor(method, bank, queries, every=4, ks=(5,), batch_size=16,
                            mesh=parallel.make_mesh(jax.devices()[:1]))
  _train(str(tmp_path), 12, evaluators=(mon,))
  rows = train.read_metrics(str(tmp_path), kind="eval")
  assert [r["step"] for r in rows] == [4, 8, 12]
  assert all(0.0 <= r["monitor/knn_top1_k5"] <= 100.0 for r in rows)
  # The numbers are those of a direct evaluation of the final parameters.
  final = _train(str(tmp_path), 12)
  direct = mon.run(final.state)
  assert direct["monitor/knn_top1_k5"] == pytest.approx(rows[-1]["monitor/knn_top1_k5"])


def test_knn_monitor_needs_labels():
  src = toy_source(n=32)
  unlabelled = dataclasses.replace(src, labels=np.full(32, -1, np.int32))
  with pytest.raises(data.DataError, match="needs labelled splits"):
    evaluate.KnnMonitor(_simclr(), unlabelled, src, every=4)
