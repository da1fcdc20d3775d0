"""DetCon-S and DetCon-B: the R=1 reduction to SimCLR, losses, EMA target, multi-device steps."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tests.helpers import toy_source
from tests.methods._steps import ConvNet, assert_trees_close, batches
from jax_ssl import data, losses
from jax_ssl.methods import DetConB, DetConS
from jax_ssl.models import ResNet

FH = dict(fh_scale=20.0, fh_sigma=0.5, fh_min_size=8)


def tiny(cls, **kw):
  common = dict(backbone=ConvNet((8, 8, 8)), image_size=16, proj_hidden_dims=(16,), proj_dim=8)
  if cls is DetConB:
    common.update(pred_hidden_dims=(16,), tau_base=0.9)
  m = cls(**{**common, **FH, **kw})
  m.set_schedule(steps_per_epoch=4, total_steps=10)
  return m


@pytest.fixture(scope="module")
def source(tmp_path_factory):
  cache = str(tmp_path_factory.mktemp("fh_cache"))
  return toy_source(n=64, size=16), cache


def _prepared(method, source):
  src, cache = source
  method.mask_cache_dir = cache
  return method.prepare_source(src)


def test_detcon_s_with_one_whole_image_slot_is_twice_nt_xent(source):
  method = tiny(DetConS, mask_kind="grid", grid_size=1, num_samples=1, temperature=0.2)
  b = batches(method, _prepared(method, source), 8, 1)[0]
  assert b["masks1"].shape == (8, 1, 2, 2) and np.all(b["masks1"] == 1) and np.all(b["ids1"] == 0)
  params, state = method.init(jax.random.key(0), b)
  loss, _ = method.loss(params, state, b, jax.random.key(1), jnp.asarray(0))
  # Independent path: the backbone's global average pool, then the projector, then NT-Xent.
  x = jnp.concatenate([b["view1"], b["view2"]])
  z, _ = method.model.apply({"params": params, **state}, x, mutable=["batch_stats"],
                            method=lambda m, v: m.head(m.backbone(v, train=True), train=True))
  expected = 2 * losses.nt_xent(z[:8], z[8:], temperature=0.2)
  np.testing.assert_allclose(float(loss), float(expected), rtol=1e-5)


def test_detcon_s_loss_is_detcon_loss_of_pooled_projections(source):
  method = tiny(DetConS)
  b = batches(method, _prepared(method, source), 8, 1)[0]
  assert b["masks1"].shape == (8, 16, 2, 2)
  params, state = method.init(jax.random.key(0), b)
  loss, (_, metrics) = method.loss(params, state, b, jax.random.key(1), jnp.asarray(0))
  x = jnp.concatenate([b["view1"], b["view2"]])
  fmap, _ = method.model.apply({"params": params, **state}, x, mutable=["batch_stats"],
                               method=lambda m, v: m.backbone(v, train=True, return_map=True))
  fmap = np.asarray(fmap)
  masks = np.concatenate([b["masks1"], b["masks2"]])
  pooled = np.einsum("nrhw,nhwc->nrc", masks, fmap) / masks.sum((2, 3))[..., None]  # numpy mean over cells
  z, _ = method.model.apply({"params": params, **state}, jnp.asarray(pooled), mutable=["batch_stats"],
                            method=lambda m, v: m.head(v, train=True))
  expected = losses.detcon_loss(z[:8], z[8:], z[:8], z[8:], b["ids1"], b["ids2"], b["ids1"], b["ids2"],
                                temperature=0.1)
  np.testing.assert_allclose(float(loss), float(expected), rtol=1e-4)
  assert 0 < float(metrics["slots_with_positive"]) <= 1


def test_detcon_b_loss_targets_get_no_gradient_and_ema(source):
  method = tiny(DetConB)
  b = batches(method, _prepared(method, source), 8, 1)[0]
  params, state = method.init(jax.random.key(0), b)
  assert_trees_close(state["target"]["params"], params["encoder"], rtol=0, atol=0)
  state = dict(state, target=dict(state["target"], params=jax.tree.map(lambda v: v * 0.9,
                                                                       state["target"]["params"])))
  loss, _ = method.loss(params, state, b, jax.random.key(1), jnp.asarray(0))
  bs = state["batch_stats"]
  _, p1, bs = method.net.online(params, bs, b["view1"], b["masks1"])
  _, p2, bs = method.net.online(params, bs, b["view2"], b["masks2"])
  t1, tgt = method.net.target(state["target"], b["view1"], b["masks1"])
  t2, _ = method.net.target(tgt, b["view2"], b["masks2"])
  assert p1.shape == t1.shape == (8, 16, 8)
  expected = losses.detcon_loss(p1, p2, t1, t2, b["ids1"], b["ids2"], b["ids1"], b["ids2"], temperature=0.1)
  np.testing.assert_allclose(float(loss), float(expected), rtol=1e-5)

  def loss_of_target(tp):
    return method.loss(params, dict(state, target=dict(state["target"], params=tp)), b, jax.random.key(1),
                       jnp.asarray(0))[0]

  g = jax.grad(loss_of_target)(state["target"]["params"])
  assert all(float(jnp.abs(v).max()) == 0.0 for v in jax.tree.leaves(g))
  new = method.update_state(params, state, jnp.asarray(0))  # tau(0) = tau_base = 0.9
  expected_t = jax.tree.map(lambda t, o: 0.9 * np.asarray(t) + 0.1 * np.asarray(o), state["target"]["params"],
                            params["encoder"])
  assert_trees_close(new["target"]["params"], expected_t, rtol=1e-6, atol=1e-6)


def test_mask_kinds_and_errors(source, tmp_path):
  src, _ = source
  with pytest.raises(ValueError, match="mask_kind must be one of"):
    tiny(DetConS, mask_kind="superpixels")
  method = tiny(DetConS, mask_kind="dataset")
  with pytest.raises(data.DataError, match="mask_kind='dataset' needs masks"):
    method.prepare_source(src)
  # Dataset-given masks: the left / right halves of each image as two segments.
  halves = np.zeros((len(src), 16, 16), np.int32)
  halves[:, :, 8:] = 1
  given = data._masks.with_masks(src, halves)  # pylint: disable=protected-access
  b = batches(method, method.prepare_source(given), 8, 1)[0]
  assert set(np.unique(b["ids1"])) <= {0, 1}
  # FH on the fly (no cache) gives the same views as the cached masks.
  cached, fly = tiny(DetConS), tiny(DetConS, fh_on_the_fly=True)
  cached.mask_cache_dir = str(tmp_path)
  b1 = batches(cached, cached.prepare_source(src), 8, 1)[0]
  b2 = batches(fly, fly.prepare_source(src), 8, 1)[0]
  for k in b1:
    np.testing.assert_array_equal(b1[k], b2[k])


def test_write_artifacts_draws_the_masks(source, tmp_path):
  method = tiny(DetConB)
  src = _prepared(method, source)
  paths = method.write_artifacts(str(tmp_path), params=None, state=None, source=src)
  assert paths == [str(tmp_path / "masks.png")] and (tmp_path / "masks.png").stat().st_size > 1000


@pytest.mark.slow
# DetCon-B's run (85 s) is opt-in (`make test-long`); DetCon-S's exercises the same pipeline in CI.
@pytest.mark.parametrize("cls", [DetConS, pytest.param(DetConB, marks=pytest.mark.long)])
def test_short_real_data_run_learns(cls, tmp_path):
  from tests.methods._steps import cifar_subset, short_real_run

  kw = dict(pred_hidden_dims=(64,), tau_base=0.99) if cls is DetConB else {}
  # BYOL-style learning shows in 60 steps with a ResNet, not with the 3-layer ConvNet (measured).
  backbone = ResNet(depth=18, width=8) if cls is DetConB else ConvNet((32, 64, 128))
  method = cls(backbone=backbone, image_size=32, proj_hidden_dims=(64,), proj_dim=32,
               fh_scale=100.0, fh_sigma=0.5, fh_min_size=32, mask_cache_dir=str(tmp_path),
               view_kwargs={"crop_scale": (0.2, 1.0), "jitter_strength": 0.5},
               view1_kwargs={"blur_p": 0.0}, view2_kwargs={"blur_p": 0.0}, **kw)
  # DetCon-B 90 steps (as BYOL's test): on an AVX-512 AMD EPYC host the deterministic 60-step run
  # reaches retrieval 0.070 from 0.027 (+0.043; 0.086 from 0.039 on other views), 90 steps 0.098.
  steps = 90 if cls is DetConB else 60
  method.set_schedule(steps_per_epoch=8, total_steps=steps)
  src = method.prepare_source(cifar_subset())
  before, after, metrics = short_real_run(method, optax.adamw(5e-3), src, steps=steps, batch=64)
  losses_ = [m["loss"] for m in metrics]
  # DetCon-B regresses onto a moving EMA target, so its loss falls less steadily than
  # DetCon-S's contrastive loss; what it learned is measured by view retrieval below.
  margin = 0.3 if cls is DetConS else 0.1
  assert np.mean(losses_[-5:]) < np.mean(losses_[:5]) - margin, losses_
  assert after > before + 0.05, (before, after)
