"""Methods with several networks: one train step runs several phases, each with its own
parameters, loss, optimizer, non-finite guard and metrics (generator / discriminator)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jax_ssl import parallel, train
from jax_ssl.methods import Method, Phase


class TwoPlayers(Method):
  """A toy min-max game on linear maps: `a` moves towards `b x`, `b` away from `a x`.

  Phase "a" optimizes params["a"] with SGD(0.1), phase "b" params["b"] with SGD(0.01) (their
  own optimizers, not the run's). A batch whose "poison" is 1 makes phase b's loss NaN.
  """

  name = "two_players_test"

  def __init__(self, simultaneous=False, run_tx=False):
    self.simultaneous_phases = simultaneous
    self.run_tx = run_tx

  def make_views(self, example, seed):
    raise NotImplementedError

  def init(self, rng, batch):
    ka, kb = jax.random.split(rng)
    return {"a": jax.random.normal(ka, (3, 2)), "b": jax.random.normal(kb, (3, 2))}, {"calls": jnp.zeros((), jnp.int32)}

  def embed(self, params, state, images):
    return images @ params["a"]

  def loss_a(self, params, state, batch, rng, step):
    x = batch["x"]
    loss = jnp.mean((x @ params["a"] - x @ params["b"]) ** 2)
    return loss, (dict(state, calls=state["calls"] + 1), {"gap": loss})

  def loss_b(self, params, state, batch, rng, step):
    x = batch["x"]
    loss = -jnp.mean((x @ params["a"] - x @ params["b"]) ** 2) + jnp.mean(params["b"] ** 2)
    loss = jnp.where(batch["poison"][0] > 0, jnp.nan, loss)
    return loss, (dict(state, calls=state["calls"] + 10), {})

  def phases(self):
    return (Phase("a", self.loss_a, key="a", tx=None if self.run_tx else optax.sgd(0.1)),
            Phase("b", self.loss_b, key="b", tx=optax.sgd(0.01)))


def _batch(poison=0):
  x = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)
  return {"x": x, "poison": np.full((8,), poison, np.int32)}


def _grad(fn, params, key):
  state0 = {"calls": jnp.zeros((), jnp.int32)}
  return jax.grad(lambda sub: fn({**params, key: sub}, state0, _batch(), None, 0)[0])(params[key])


def _step(method, batch, devices=1, tx=optax.sgd(1.0)):
  mesh = parallel.make_mesh(jax.devices()[:devices])
  ts = train.init_train_state(method, tx, jax.random.key(0), parallel.shard_batch(batch, mesh), mesh)
  p0 = jax.device_get(ts.params)
  ts, m = train.make_train_step(method, tx, mesh)(ts, parallel.shard_batch(batch, mesh), jax.random.key(1))
  return p0, jax.device_get(ts), jax.device_get(m)


@pytest.mark.parametrize("simultaneous", [False, True])
def test_each_phase_uses_its_own_optimizer_in_order(simultaneous):
  method = TwoPlayers(simultaneous=simultaneous)
  p0, ts, m = _step(method, _batch())
  a1 = p0["a"] - 0.1 * _grad(method.loss_a, p0, "a")
  seen = p0 if simultaneous else {**p0, "a": a1}  # alternating: b plays against the updated a
  g_b = _grad(method.loss_b, seen, "b")
  np.testing.assert_allclose(ts.params["a"], a1, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(ts.params["b"], p0["b"] - 0.01 * g_b, rtol=1e-6, atol=1e-7)
  assert set(ts.opt_state) == {"a", "b"}
  assert int(ts.state["calls"]) == 11  # the method state threads through both phases
  assert {"a/loss", "a/gap", "a/grad_norm", "a/nonfinite", "b/loss", "b/nonfinite", "loss"} <= set(m)
  np.testing.assert_allclose(m["loss"], m["a/loss"] + m["b/loss"], rtol=1e-6)


def test_alternating_and_simultaneous_differ():
  _, alt, _ = _step(TwoPlayers(simultaneous=False), _batch())
  _, sim, _ = _step(TwoPlayers(simultaneous=True), _batch())
  np.testing.assert_array_equal(alt.params["a"], sim.params["a"])
  assert np.abs(alt.params["b"] - sim.params["b"]).max() > 1e-6


def test_a_nonfinite_phase_is_refused_alone():
  method = TwoPlayers()
  p0, ts, m = _step(method, _batch(poison=1))
  assert np.abs(ts.params["a"] - p0["a"]).max() > 1e-6  # a's update still applied
  np.testing.assert_array_equal(ts.params["b"], p0["b"])  # b's refused
  assert int(ts.state["calls"]) == 1  # and b's state update with it
  assert m["a/nonfinite"] == 0 and m["b/nonfinite"] == 1 and m["nonfinite"] == 1
  assert int(ts.skipped) == 1


def test_a_phase_without_its_own_tx_uses_the_runs_optimizer():
  method = TwoPlayers(run_tx=True)
  p0, ts, _ = _step(method, _batch(), tx=optax.sgd(0.5))
  g_a = _grad(method.loss_a, p0, "a")
  np.testing.assert_allclose(ts.params["a"], p0["a"] - 0.5 * g_a, rtol=1e-6, atol=1e-7)


def test_eight_devices_equal_one():
  method = TwoPlayers()
  _, one, _ = _step(method, _batch(), devices=1)
  _, eight, _ = _step(method, _batch(), devices=8)
  for x, y in zip(jax.tree.leaves(one.params), jax.tree.leaves(eight.params)):
    np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
