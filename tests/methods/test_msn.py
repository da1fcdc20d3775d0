"""MSN: views, patch drop on the anchors only, the linear EMA over 1.25 x the run, the prototypes'
gradient multiplier, no decay on prototypes, the target encoder for evaluation, the schedules."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import runner
from jax_ssl import models, train
from jax_ssl.methods import MSN
from jax_ssl.methods._ema import ema_decay_linear
from tests.helpers import batches, toy_source


def tiny(**kw):
  vit = models.ViT(width=16, depth=1, num_heads=2, mlp_dim=32, patch_size=4, pool="gap", posemb="sincos2d")
  kw = {"image_size": 16, "focal_size": 8, "focal_views": 2, "proj_hidden_dims": (16,), "proj_dim": 8,
        "num_prototypes": 6, **kw}
  m = MSN(backbone=vit, **kw)
  m.set_schedule(steps_per_epoch=4, total_steps=100)
  return m


def _setup(method):
  b = batches(method, toy_source(n=8), 4, 1)[0]
  return b, *method.init(jax.random.key(0), b)


def test_views_target_plus_anchors_and_focal_crops():
  method = tiny()
  b, params, state = _setup(method)
  assert list(method.crop_keys()) == ["target", "anchor0", "focal0", "focal1"]
  assert b["target"].shape == b["anchor0"].shape == (4, 16, 16, 3) and b["focal1"].shape == (4, 8, 8, 3)
  assert not np.allclose(b["target"], b["anchor0"])  # the target is its own crop
  assert params["prototypes"].shape == (6, 8)
  assert np.abs(np.asarray(params["prototypes"])).max() <= 1 / np.sqrt(8)


def test_patch_drop_keeps_floor_of_085_per_group_and_ignores_dropped_pixels():
  method = tiny()
  b, params, state = _setup(method)
  anchors = [jnp.asarray(a) for a in method._anchors(b)]
  keep = method._keep(jax.random.key(5), anchors)
  assert [len(k) for k in keep] == [int(np.floor(16 * 0.85)), int(np.floor(4 * 0.85))]  # 13 of 16, 3 of 4
  variables = {"params": params["encoder"], "batch_stats": state["batch_stats"]}
  apply = jax.jit(lambda v, a, k: method.net.apply(v, a, k, train=False))
  f, _ = apply(variables, anchors, keep)
  # Changing the pixels of a dropped patch of the 16 px anchor changes no feature.
  dropped = sorted(set(range(16)) - set(np.asarray(keep[0]).tolist()))[0]
  r, c = divmod(dropped, 4)
  a0 = np.array(anchors[0])
  a0[:, 4 * r:4 * r + 4, 4 * c:4 * c + 4] += 5.0
  f2, _ = apply(variables, [jnp.asarray(a0)] + anchors[1:], keep)
  np.testing.assert_allclose(np.asarray(f2), np.asarray(f), atol=1e-5)
  assert tiny(patch_drop=0.0)._keep(jax.random.key(5), anchors) is None


def test_linear_ema_over_125_times_the_run():
  method = tiny(tau_base=0.996)
  np.testing.assert_allclose(float(method.target.decay(0, 100)), 0.996, rtol=1e-7)
  np.testing.assert_allclose(float(method.target.decay(100, 100)), 0.996 + 0.004 / 1.25, rtol=1e-7)
  np.testing.assert_allclose(float(method.target.decay(50, 100)), 0.996 + 0.004 * 50 / 125, rtol=1e-7)
  assert float(ema_decay_linear(1000, base=0.9, total_steps=100, span=1.25)) == pytest.approx(1.0)
  b, params, state = _setup(method)
  moved = jax.tree.map(lambda p: p + 1.0, params["encoder"])
  new = method.update_state({**params, "encoder": moved}, state, jnp.asarray(0))
  leaf = lambda t: np.asarray(jax.tree.leaves(t)[0])
  np.testing.assert_allclose(leaf(new["target"]["params"]), leaf(state["target"]["params"]) + 0.004, rtol=1e-5)


def test_prototype_gradient_multiplier_scales_only_the_prototypes():
  m1, m16 = tiny(), tiny(prototype_grad_mult=16.0)
  b, params, state = _setup(m1)
  grad = lambda m: jax.jit(jax.grad(lambda p: m.loss(p, state, b, jax.random.key(2), jnp.asarray(0))[0]))(params)
  g1, g16 = grad(m1), grad(m16)
  np.testing.assert_allclose(np.asarray(g16["prototypes"]), 16 * np.asarray(g1["prototypes"]), rtol=1e-4, atol=1e-7)
  for a, c in zip(jax.tree.leaves(g1["encoder"]), jax.tree.leaves(g16["encoder"])):
    np.testing.assert_allclose(np.asarray(c), np.asarray(a), rtol=1e-5, atol=1e-7)
  assert float(jnp.abs(g1["prototypes"]).max()) > 1e-5
  # The loss is msn_loss of the anchors' and the target's projections.
  loss, (_, metrics) = jax.jit(m1.loss)(params, state, b, jax.random.key(2), jnp.asarray(0))
  assert 1 <= float(metrics["prototypes_in_use"]) <= 6 and np.isfinite(float(loss))


def test_prototypes_get_no_weight_decay_and_evaluation_uses_the_target_encoder():
  method = tiny()
  b, params, state = _setup(method)
  mask = method.decay_mask(params)
  assert not mask["prototypes"] and mask["encoder"]["head"]["out"]["kernel"]
  x = jnp.asarray(b["target"])
  f = method.embed(params, state, x)
  other = method.embed(jax.tree.map(lambda p: p * 0, params), state, x)  # online weights unused
  np.testing.assert_array_equal(np.asarray(f), np.asarray(other))
  shifted = dict(state, target=dict(state["target"], params=jax.tree.map(lambda p: p * 1.5, state["target"]["params"])))
  assert not np.allclose(np.asarray(method.embed(params, shifted, x)), np.asarray(f))


def test_collapse_watch_and_clear_errors():
  method = tiny()
  assert method.check_metrics({"prototypes_in_use": 5.0}) is None
  assert "collapsed" in method.check_metrics({"prototypes_in_use": 1.0})
  with pytest.raises(ValueError, match="needs a ViT"):
    MSN(backbone=models.ConvNet(widths=(8,)), image_size=16, focal_size=8)
  with pytest.raises(ValueError, match="not a multiple of the patch size"):
    tiny(focal_size=6)
  with pytest.raises(ValueError, match="patch_drop"):
    tiny(patch_drop=1.0)


def test_msn_schedules_span_125_times_the_run_with_cosine_weight_decay():
  from experiments.configs import msn_imagenet

  cfg = msn_imagenet.get_config("vit_s16").train
  _, schedule, total = runner.build_optimizer(cfg, num_train=100 * cfg.batch_size)
  assert total == 800 * 100
  warm = 15 * 100
  assert float(schedule(warm)) == pytest.approx(1e-3, rel=1e-6)
  # At the run's end the cosine over 1.25 x the run is at 1e-6 + (1e-3 - 1e-6) (1 + cos(0.8 pi)) / 2.
  frac = (total - warm) / (1.25 * total - warm)
  want = 1e-6 + (1e-3 - 1e-6) * 0.5 * (1 + np.cos(np.pi * frac))
  assert float(schedule(total)) == pytest.approx(want, rel=1e-4)
  wd = train.cosine_between(0.04, 0.4, int(1.25 * total))
  assert float(wd(0)) == pytest.approx(0.04) and float(wd(1.25 * total)) == pytest.approx(0.4)
  assert float(wd(total)) == pytest.approx(0.4 + (0.04 - 0.4) * 0.5 * (1 + np.cos(0.8 * np.pi)), rel=1e-5)

  # The optimizer applies that weight decay: with zero gradients an AdamW update is -lr(c) wd(c) p.
  cfg.epochs, cfg.warmup_epochs = 1, 0
  tx_fn, schedule, total = runner.build_optimizer(cfg, num_train=4 * cfg.batch_size)
  wd = train.cosine_between(0.04, 0.4, 5)  # 1.25 x 4 steps
  tx = tx_fn(lambda p: jax.tree.map(lambda _: True, p))
  p = {"w": jnp.ones((3, 3))}
  opt = tx.init(p)
  for c in range(4):
    u, opt = tx.update({"w": jnp.zeros((3, 3))}, opt, p)
    np.testing.assert_allclose(np.asarray(u["w"]), -float(schedule(c)) * float(wd(c)), rtol=1e-4)
