"""The backbone registry: every registered name builds a module with the ResNet call interface."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_ssl.models import BACKBONES, VIT_VARIANTS, ConvNet, DCGANEncoder, ResNet, ViT, build_backbone

# The smallest configuration of each registered backbone; a new registration must add one here.
TINY = {
    "resnet": dict(depth=18, width=4, stem="cifar"),
    "vit": dict(width=8, depth=1, num_heads=2, patch_size=8),
    "convnet": dict(widths=(4, 6)),
    "dcgan": dict(widths=(4, 6)),
    "regnet": dict(widths=(8, 16), depths=(1, 1), group_widths=(4, 8)),
}


def test_every_registered_backbone_has_a_tiny_config():
  assert set(TINY) == set(BACKBONES)


@pytest.mark.parametrize("name", sorted(TINY))
def test_call_interface(name):
  model = build_backbone(name, **TINY[name])
  x = jax.ShapeDtypeStruct((2, 16, 16, 3), jnp.float32)
  variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)
  out = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, x)
  assert out.shape == (2, model.num_features) and out.dtype == jnp.float32
  fmap = jax.eval_shape(lambda v, x: model.apply(v, x, train=False, return_map=True), variables, x)
  # The map's channels: `num_features`, except where the pooled features are not a plain average
  # of the map (DCGAN: every layer max-pooled to 4x4 and concatenated) and `map_features` says them.
  assert fmap.ndim == 4 and fmap.shape[0] == 2 and fmap.shape[-1] == getattr(model, "map_features", model.num_features)
  blocks = jax.eval_shape(lambda v, x: model.apply(v, x, train=False, return_blocks=True), variables, x)
  assert blocks and all(b.shape[0] == 2 and b.ndim == 2 for b in blocks.values())


def test_builders_pass_their_arguments():
  resnet = build_backbone("resnet", depth=50, width=8, stem="imagenet", dtype="bfloat16")
  assert resnet == ResNet(depth=50, width=8, stem="imagenet", dtype=jnp.bfloat16)
  assert build_backbone("resnet") == ResNet()
  assert build_backbone("vit", variant="S/16") == ViT(**VIT_VARIANTS["S"], patch_size=16)
  vit = build_backbone("vit", variant="S/16", patch_size=8, pool="gap", posemb="sincos2d")
  assert (vit.width, vit.patch_size, vit.pool, vit.posemb) == (384, 8, "gap", "sincos2d")
  explicit = build_backbone("vit", width=32, depth=2, num_heads=4, patch_size=4)
  assert explicit == ViT(width=32, depth=2, num_heads=4, patch_size=4) and explicit.mlp_dim is None
  assert build_backbone("convnet", widths=[4, 6]) == ConvNet(widths=(4, 6))
  assert build_backbone("convnet").widths == (8, 8)
  assert build_backbone("dcgan", widths=[4, 8], first_norm=True) == DCGANEncoder(widths=(4, 8), first_norm=True)


def test_unknown_name_and_arguments():
  with pytest.raises(ValueError, match="available: convnet, dcgan, regnet, resnet, vit"):
    build_backbone("resnet50")
  with pytest.raises(ValueError, match=r"'depht'.*accepted: depth, width, stem"):
    build_backbone("resnet", depht=18)
  with pytest.raises(ValueError, match=r"'num_classes'.*accepted: variant, width"):
    build_backbone("vit", variant="S/16", num_classes=10)


def test_convnet_outputs_and_batch_stats():
  model = ConvNet(widths=(4, 6))
  x = np.random.default_rng(0).standard_normal((4, 16, 16, 3)).astype(np.float32)
  shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)
  assert shapes["params"]["conv0"]["kernel"].shape == (3, 3, 3, 4) and "bias" not in shapes["params"]["conv0"]
  rng = np.random.default_rng(1)
  # As initialized (BN identity, zero running mean), with NumPy kernels: `init` compiles per shape on CPU.
  fill = {"kernel": lambda s: 0.3 * rng.standard_normal(s), "scale": np.ones, "var": np.ones,
          "bias": np.zeros, "mean": np.zeros}
  v = jax.tree_util.tree_map_with_path(lambda path, s: jnp.asarray(fill[path[-1].key](s.shape), jnp.float32),
                                       shapes)
  fmap = model.apply(v, x, train=False, return_map=True)
  assert fmap.shape == (4, 4, 4, 6)
  blocks = model.apply(v, x, train=False, return_blocks=True)
  assert list(blocks) == ["final"]
  np.testing.assert_allclose(blocks["final"], fmap.mean(axis=(1, 2)), rtol=1e-6, atol=1e-6)
  _, updated = model.apply(v, x, train=True, mutable=["batch_stats"])
  mean0 = updated["batch_stats"]["bn0"]["mean"]
  # momentum 0.9: the running mean moves a tenth of the way to the batch mean (from 0).
  batch_mean = jax.lax.conv_general_dilated(x, v["params"]["conv0"]["kernel"], (2, 2), "SAME",
                                            dimension_numbers=("NHWC", "HWIO", "NHWC")).mean(axis=(0, 1, 2))
  np.testing.assert_allclose(mean0, 0.1 * batch_mean, rtol=1e-4, atol=1e-6)
