"""Backbone and head shapes for each stem and depth."""

import jax
import jax.numpy as jnp
import pytest

from jax_ssl.models import MLP, ResNet


@pytest.mark.parametrize("depth,stem,size,feat", [
    (18, "cifar", 32, 8 * 8), (34, "cifar", 32, 8 * 8), (50, "cifar", 32, 8 * 8 * 4),
    (18, "imagenet", 64, 8 * 8), (50, "imagenet", 64, 8 * 8 * 4)])
def test_shapes(depth, stem, size, feat):
  model = ResNet(depth=depth, width=8, stem=stem)
  x = jnp.zeros((2, size, size, 3))
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))
  out = jax.eval_shape(lambda v: model.apply(v, x, train=False), variables)
  assert out.shape == (2, feat) and model.num_features == feat
  fmap = jax.eval_shape(lambda v: model.apply(v, x, train=False, return_map=True), variables)
  reduction = 8 if stem == "cifar" else 32
  assert fmap.shape == (2, size // reduction, size // reduction, feat)


def test_stems_differ_and_width_scales_params():
  x = jnp.zeros((1, 32, 32, 3))
  shapes = lambda m: jax.eval_shape(lambda: m.init(jax.random.key(0), x, train=False))["params"]  # no compile
  count = lambda m: sum(p.size for p in jax.tree.leaves(shapes(m)))
  assert count(ResNet(depth=18, width=16)) < count(ResNet(depth=18, width=32))
  p = shapes(ResNet(depth=18, width=8, stem="imagenet"))
  assert p["stem_conv"]["kernel"].shape == (7, 7, 3, 8)
  p = shapes(ResNet(depth=18, width=8, stem="cifar"))
  assert p["stem_conv"]["kernel"].shape == (3, 3, 3, 8)


def test_bad_arguments():
  with pytest.raises(ValueError, match="depth"):
    ResNet(depth=19).init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)), train=False)
  with pytest.raises(ValueError, match="stem"):
    ResNet(stem="tiny").init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)), train=False)


def test_mlp_train_mode_updates_batch_stats():
  mlp = MLP((16,), 4)
  x = jax.random.normal(jax.random.key(0), (8, 5))
  v = mlp.init(jax.random.key(1), x, train=True)
  y, upd = mlp.apply(v, x, train=True, mutable=["batch_stats"])
  assert y.shape == (8, 4)
  assert not jnp.allclose(upd["batch_stats"]["bn0"]["mean"], v["batch_stats"]["bn0"]["mean"])
