"""BYOL: EMA schedule and update, symmetric loss, stop-gradient, multi-device step, learning."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tests.helpers import toy_source
from tests.methods._steps import ConvNet, assert_trees_close, batches, run_steps
from jax_ssl import train
from jax_ssl.methods import BYOL
from jax_ssl.methods._ema import ema_decay
from jax_ssl.models import ResNet


def tiny_byol(total_steps=10, **kw):
  m = BYOL(backbone=ConvNet((8, 8, 8)), image_size=16, proj_hidden_dims=(16,), proj_dim=8,
           pred_hidden_dims=(16,), tau_base=kw.pop("tau_base", 0.9), **kw)
  m.set_schedule(steps_per_epoch=4, total_steps=total_steps)
  return m


def _np_cos_loss(p, z):
  p = p / np.linalg.norm(p, axis=-1, keepdims=True)
  z = z / np.linalg.norm(z, axis=-1, keepdims=True)
  return np.mean(2 - 2 * np.sum(p * z, axis=-1))


def test_ema_decay_schedule_matches_formula():
  base, k_total = 0.996, 1000
  for k in (0, 1, 250, 500, 999, 1000, 1500):
    kk = min(k, k_total)
    expected = 1 - (1 - base) * (math.cos(math.pi * kk / k_total) + 1) / 2
    np.testing.assert_allclose(float(ema_decay(k, base=base, total_steps=k_total)), expected, rtol=0, atol=1e-7)
  assert float(ema_decay(0, base=base, total_steps=k_total)) == pytest.approx(base)
  assert float(ema_decay(k_total, base=base, total_steps=k_total)) == pytest.approx(1.0)
  with pytest.raises(ValueError, match="set_schedule"):
    ema_decay(0, base=base, total_steps=None)


def test_init_copies_online_and_update_state_is_the_ema():
  method, src = tiny_byol(total_steps=10, tau_base=0.9), toy_source()
  b = batches(method, src, 8, 1)[0]
  params, state = method.init(jax.random.key(0), b)
  assert_trees_close(state["target"]["params"], params["encoder"], rtol=0, atol=0)
  online = jax.tree.map(lambda x: x + 1.0, params)  # pretend an optimizer step moved everything by 1
  new = method.update_state(online, state, jnp.asarray(5))
  tau = 1 - 0.1 * (math.cos(math.pi * 5 / 10) + 1) / 2  # 0.95
  expected = jax.tree.map(lambda t, o: tau * np.asarray(t) + (1 - tau) * np.asarray(o),
                          state["target"]["params"], online["encoder"])
  assert_trees_close(new["target"]["params"], expected, rtol=1e-6, atol=1e-6)
  # BN statistics of both networks and the predictor are not touched by the EMA.
  assert_trees_close(new["batch_stats"], state["batch_stats"], rtol=0, atol=0)
  assert_trees_close(new["target"]["batch_stats"], state["target"]["batch_stats"], rtol=0, atol=0)


def test_loss_is_symmetric_sum_and_target_gets_no_gradient():
  method, src = tiny_byol(), toy_source()
  b = batches(method, src, 8, 1)[0]
  params, state = method.init(jax.random.key(0), b)
  # Make the target differ from the online network so the directions are not trivially equal.
  state = dict(state, target=dict(state["target"], params=jax.tree.map(
      lambda x: x * 0.9 + 0.01, state["target"]["params"])))
  loss_fn = jax.jit(method.loss)
  loss, (new_state, metrics) = loss_fn(params, state, b, jax.random.key(1), jnp.asarray(0))
  bs = state["batch_stats"]
  online, target = jax.jit(method.online), jax.jit(method.target)
  z1, p1, bs = online(params, bs, b["view1"])
  z2, p2, bs = online(params, bs, b["view2"])
  t1, tgt = target(state["target"], b["view1"])
  t2, _ = target(tgt, b["view2"])
  expected = _np_cos_loss(np.asarray(p1), np.asarray(t2)) + _np_cos_loss(np.asarray(p2), np.asarray(t1))
  np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
  assert float(metrics["tau"]) == pytest.approx(0.9)

  def loss_of_target(target_params):
    st = dict(state, target=dict(state["target"], params=target_params))
    return loss_fn(params, st, b, jax.random.key(1), jnp.asarray(0))[0]

  g = jax.jit(jax.grad(loss_of_target))(state["target"]["params"])
  assert all(float(jnp.abs(x).max()) == 0.0 for x in jax.tree.leaves(g))
  # ...while the online network does get a gradient.
  g_online = jax.jit(jax.grad(lambda p: method.loss(p, state, b, jax.random.key(1), jnp.asarray(0))[0]))(params)
  assert float(optax.global_norm(g_online)) > 0


def test_two_steps_move_online_and_target():
  method, src = tiny_byol(total_steps=2, tau_base=0.5), toy_source()
  tx = optax.adamw(1e-2)
  bs = batches(method, src, 16, 2)
  mesh = train.make_mesh(jax.devices()[:1])
  ts = train.init_train_state(method, tx, jax.random.key(0), train.shard_batch(bs[0], mesh), mesh)
  init = jax.device_get(ts)  # (before the donating steps)
  step, m, states = train.make_train_step(method, tx, mesh), [], []
  for b in bs:  # one compiled step, run twice: the state after each
    ts, metrics = step(ts, train.shard_batch(b, mesh), jax.random.key(1))
    m.append(jax.device_get(metrics))
    states.append(jax.device_get(ts))
  s0, s2 = states
  assert all(np.isfinite(x["loss"]) for x in m)
  assert int(s2.step) == 2 and int(s2.skipped) == 0
  k_init = jax.tree.leaves(init.state["target"]["params"])[0]
  k_tgt = jax.tree.leaves(s2.state["target"]["params"])[0]
  k_onl = jax.tree.leaves(s2.params["encoder"])[0]
  assert not np.allclose(k_tgt, k_init) and not np.allclose(k_tgt, k_onl)
  # Target after step 0 = tau(0) * init + (1 - tau(0)) * online after step 0.
  tau0 = 0.5
  expected = jax.tree.map(lambda t, o: tau0 * t + (1 - tau0) * o, init.state["target"]["params"],
                          s0.params["encoder"])
  assert_trees_close(s0.state["target"]["params"], expected, rtol=1e-5, atol=1e-6)


def test_predictor_lr_mult_scales_only_the_predictor_update():
  src = toy_source()
  tx = optax.adamw(1e-2, weight_decay=1e-2)
  base = tiny_byol()
  bs = batches(base, src, 16, 1)
  init, s1, _ = run_steps(base, tx, bs, jax.devices()[:1], with_initial=True)
  _, s10, _ = run_steps(tiny_byol(predictor_lr_mult=10.0), tx, bs, jax.devices()[:1], with_initial=True)
  delta = lambda s: jax.tree.map(lambda a, b: np.asarray(a, np.float64) - np.asarray(b, np.float64), s.params, init)
  d1, d10 = delta(s1), delta(s10)
  # The first AdamW update of the predictor (weight decay included) is 10x larger; the rest is untouched.
  assert_trees_close(d10["predictor"], jax.tree.map(lambda d: 10 * d, d1["predictor"]), rtol=1e-4, atol=1e-7)
  assert_trees_close(d10["encoder"], d1["encoder"], rtol=0, atol=0)
  assert max(float(np.abs(x).max()) for x in jax.tree.leaves(d1["predictor"])) > 1e-4
  with pytest.raises(ValueError, match="predictor_lr_mult"):
    tiny_byol(predictor_lr_mult=0.0)


@pytest.mark.slow
@pytest.mark.long  # 105 s: opt-in (`make test-long`); BYOL's steps, EMA and loss are checked in CI by the tests above
def test_short_real_data_run_learns():
  from tests.methods._steps import cifar_subset, short_real_run

  method = BYOL(backbone=ResNet(depth=18, width=8), image_size=32, proj_hidden_dims=(64,), proj_dim=32,
                pred_hidden_dims=(64,), tau_base=0.99, view_kwargs={"crop_scale": (0.2, 1.0), "jitter_strength": 0.5},
                view1_kwargs={"blur_p": 0.0}, view2_kwargs={"blur_p": 0.0})
  # 90 steps: on an AMD EPYC host the same deterministic 60-step run reaches retrieval 0.047 from
  # 0.008 (0.066 at 90 steps); the 60 steps were sized on another machine's numerics.
  method.set_schedule(steps_per_epoch=8, total_steps=90)
  before, after, metrics = short_real_run(method, optax.adamw(5e-3), cifar_subset(), steps=90, batch=64)
  losses_ = [m["loss"] for m in metrics]
  assert np.mean(losses_[-5:]) < np.mean(losses_[:5]) - 0.3, losses_
  # Not collapsed: the normalized projections still vary across images.
  assert metrics[-1]["proj_std"] > 0.3 / np.sqrt(32), metrics[-1]["proj_std"]
  assert after > before + 0.05, (before, after)
