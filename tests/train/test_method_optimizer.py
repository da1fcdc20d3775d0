"""Method-owned optimization: parameter groups (lr multipliers, freezing, no training), weight-decay
masks by name, and exact equality with one optimizer over all parameters."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jax_ssl import train
from jax_ssl.methods import Method, ParamGroup


class Grouped(Method):
  name = "grouped_test"
  no_decay_names = ("pos_embedding", "cls")

  def __init__(self, groups=None):
    self.groups = groups or {"default": ParamGroup()}

  def make_views(self, example, seed):
    raise NotImplementedError

  def init(self, rng, batch):
    raise NotImplementedError

  def embed(self, params, state, images):
    raise NotImplementedError

  def param_groups(self):
    return self.groups

  def param_labels(self, params):
    return {k: jax.tree.map(lambda _, k=k: k if k in self.groups else "default", v) for k, v in params.items()}


def _params():
  rng = np.random.default_rng(0)
  return {"default": {"kernel": jnp.asarray(rng.normal(size=(3, 4)), jnp.float32),
                      "bias": jnp.asarray(rng.normal(size=(4,)), jnp.float32),
                      "pos_embedding": jnp.asarray(rng.normal(size=(1, 5, 4)), jnp.float32),
                      "cls": jnp.asarray(rng.normal(size=(1, 1, 4)), jnp.float32)},
          "head": {"kernel": jnp.asarray(rng.normal(size=(4, 2)), jnp.float32)}}


def _grads(k):
  rng = np.random.default_rng(100 + k)
  return jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), jnp.float32), _params())


def _run(tx, steps=4):
  params = _params()
  state = tx.init(params)
  for k in range(steps):
    upd, state = tx.update(_grads(k), state, params)
    params = optax.apply_updates(params, upd)
  return params


def test_decay_mask_skips_biases_norms_and_named_parameters():
  mask = Grouped().decay_mask(_params())
  assert mask == {"default": {"kernel": True, "bias": False, "pos_embedding": False, "cls": False},
                  "head": {"kernel": True}}


@pytest.mark.parametrize("opt", ["sgd", "adamw", "lars"])
def test_groups_are_bitwise_the_old_gradient_and_update_hooks(opt):
  """Freezing == zeroing the group's gradients before the optimizer, lr_mult == scaling its
  updates after it (what SwAV's `process_grads` and BYOL's `process_updates` did), exactly."""
  method = Grouped({"default": ParamGroup(), "head": ParamGroup(frozen_steps=2, lr_mult=3.0)})
  base = lambda mask: train.make_optimizer(opt, 0.1, weight_decay=0.01, mask=mask)
  grouped = train.method_optimizer(method, base)["default"]
  single = base(method.decay_mask)
  params_g, params_s = _params(), _params()
  state_g, state_s = grouped.init(params_g), single.init(params_s)
  for k in range(4):
    upd, state_g = grouped.update(_grads(k), state_g, params_g)
    params_g = optax.apply_updates(params_g, upd)
    g = _grads(k)
    if k < 2:
      g["head"] = jax.tree.map(jnp.zeros_like, g["head"])
    upd, state_s = single.update(g, state_s, params_s)
    upd = dict(upd, head=jax.tree.map(lambda u: u * 3.0, upd["head"]))  # a new dict: optax may alias its state
    params_s = optax.apply_updates(params_s, upd)
  for x, y in zip(jax.tree.leaves(params_g), jax.tree.leaves(params_s)):
    np.testing.assert_array_equal(x, y)


def test_a_label_without_a_group_is_an_error():
  method = Grouped({"default": ParamGroup(), "head": ParamGroup(lr_mult=2.0)})
  method.param_labels = lambda params: jax.tree.map(lambda _: "typo", params)
  tx = train.method_optimizer(method, optax.sgd(0.1))["default"]
  with pytest.raises(ValueError, match="typo"):
    tx.init(_params())


def test_lr_mult_frozen_steps_and_untrainable_groups():
  base = lambda mask: optax.sgd(0.1)
  p0 = _params()
  scaled = _run(train.method_optimizer(Grouped({"default": ParamGroup(), "head": ParamGroup(lr_mult=10.0)}), base)
                ["default"], steps=1)
  np.testing.assert_allclose(scaled["head"]["kernel"], p0["head"]["kernel"] - 1.0 * _grads(0)["head"]["kernel"],
                             rtol=1e-6)
  np.testing.assert_allclose(scaled["default"]["kernel"], p0["default"]["kernel"] - 0.1 * _grads(0)["default"]["kernel"],
                             rtol=1e-6)
  frozen_tx = train.method_optimizer(Grouped({"default": ParamGroup(), "head": ParamGroup(frozen_steps=2)}), base)
  after2, after3 = _run(frozen_tx["default"], steps=2), _run(frozen_tx["default"], steps=3)
  np.testing.assert_array_equal(after2["head"]["kernel"], p0["head"]["kernel"])  # frozen for 2 updates
  np.testing.assert_allclose(after3["head"]["kernel"], p0["head"]["kernel"] - 0.1 * _grads(2)["head"]["kernel"],
                             rtol=1e-6)
  assert np.abs(after2["default"]["kernel"] - p0["default"]["kernel"]).max() > 1e-3
  off = _run(train.method_optimizer(Grouped({"default": ParamGroup(), "head": ParamGroup(trainable=False)}), base)
             ["default"])
  np.testing.assert_array_equal(off["head"]["kernel"], p0["head"]["kernel"])


def test_adamw_decay_mask_reaches_the_optimizer():
  """With zero gradients AdamW moves only the decayed leaves (decoupled decay)."""
  method = Grouped({"default": ParamGroup(), "head": ParamGroup()})
  tx = train.method_optimizer(method, lambda mask: train.make_optimizer("adamw", 0.1, weight_decay=0.5, mask=mask))
  params = _params()
  zeros = jax.tree.map(jnp.zeros_like, params)
  upd, _ = tx["default"].update(zeros, tx["default"].init(params), params)
  moved = jax.tree.map(lambda u: bool(np.abs(np.asarray(u)).max() > 0), upd)
  assert moved == method.decay_mask(params)
