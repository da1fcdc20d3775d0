"""The published supervised protocols: SGD linear evaluation and fine-tuning, sharded."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow as tf

from jax_ssl import data, evaluate, models, parallel
from jax_ssl.evaluate import ProtocolConfig
from tests.helpers import assert_trees_close, toy_source

pytestmark = pytest.mark.xdist_group("test_supervised")


def _preprocess(image):
  return tf.image.convert_image_dtype(image, tf.float32) - 0.5


def _split():
  src = toy_source(n=128, size=16, num_classes=4)  # labels i % 4: alternate blocks of 4 keep every class in both
  first = (np.arange(128) // 4) % 2 == 0
  return (data.take_examples(src, np.flatnonzero(first), "toy-train"),
          data.take_examples(src, np.flatnonzero(~first), "toy-test"))


def _backbone():
  module = models.ConvNet(widths=(8, 8))
  return module, module.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)), train=False)


def test_linear_sgd_learns_on_frozen_features_and_leaves_the_backbone_untouched():
  train_src, test_src = _split()
  module, variables = _backbone()
  out = evaluate.linear_sgd(module, variables, train_src, test_src, preprocess=_preprocess,
                            config=ProtocolConfig(epochs=30, batch_size=32, base_lr=64.0, crop_scale=(0.5, 1.0)))
  # The random toy backbone's features have a std of ~0.005, hence the large lr. The L-BFGS
  # probe (standardized features) separates the colour-coded classes perfectly: 100%.
  assert out["top1"] >= 95.0, out["top1"]  # measured 100.0; chance 25%; at lr 0.25: 73
  assert out["steps"] == 30 * 2 and out["batch_size"] == 32 and out["lr"] == pytest.approx(8.0)
  assert_trees_close(out["params"]["backbone"], variables["params"], rtol=0, atol=0)
  assert_trees_close(out["batch_stats"]["backbone"], variables["batch_stats"], rtol=0, atol=0)


class _Scaled(models.ConvNet):
  """The toy backbone with its features multiplied by `scale` (same parameters)."""

  scale: float = 1.0

  def __call__(self, x, *, train: bool, **kw):
    return super().__call__(x, train=train, **kw) * self.scale


def test_feature_norm_makes_the_feature_scale_irrelevant():
  # MAE's linear probe: BatchNorm (no affine) before the linear layer. Without it the accuracy
  # depends on the features' scale (the toy's std is ~0.005: x1 vs x100); with it two scales
  # whose variances are far above its eps (x100, x10000) give the same classifier.
  train_src, test_src = _split()
  _, variables = _backbone()

  def top1(scale, norm):
    out = evaluate.linear_sgd(_Scaled(widths=(8, 8), scale=scale), variables, train_src, test_src,
                              preprocess=_preprocess,
                              config=ProtocolConfig(epochs=30, batch_size=32, base_lr=2.0, feature_norm=norm))
    assert_trees_close(out["params"]["backbone"], variables["params"], rtol=0, atol=0)
    return out

  raw = (top1(1.0, False)["top1"], top1(100.0, False)["top1"])
  assert raw[1] - raw[0] >= 10, raw  # measured 73.4 vs 96.9
  a, b = top1(100.0, True), top1(10000.0, True)
  assert a["top1"] == b["top1"] >= 90, (a["top1"], b["top1"])  # measured 96.9 both
  assert float(np.abs(a["batch_stats"]["head_norm"]["var"] - 1.0).max()) > 0.5  # the statistics were learnt


def test_finetune_on_eight_devices_equals_one_device_and_trains_the_backbone():
  train_src, test_src = _split()
  module, variables = _backbone()
  cfg = ProtocolConfig(epochs=2, batch_size=32, base_lr=0.4, weight_decay=1e-4)
  kw = dict(preprocess=_preprocess, config=cfg)
  one = evaluate.finetune(module, variables, train_src, test_src, mesh=parallel.make_mesh(jax.devices()[:1]), **kw)
  eight = evaluate.finetune(module, variables, train_src, test_src, mesh=parallel.make_mesh(), **kw)
  assert jax.device_count() == 8
  assert_trees_close(eight["params"], one["params"])
  assert_trees_close(eight["batch_stats"], one["batch_stats"])
  assert eight["top1"] == one["top1"]
  moved = max(float(np.abs(a - b).max()) for a, b in zip(jax.tree.leaves(eight["params"]["backbone"]),
                                                         jax.tree.leaves(variables["params"])))
  assert moved > 1e-3


def test_vit_layer_ids_and_layer_decay():
  vit = models.ViT(width=16, depth=3, num_heads=2, mlp_dim=32, patch_size=4, pool="cls", posemb="learn")
  params = {"backbone": vit.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)), train=False)["params"],
            "head": {"kernel": jnp.zeros((16, 4)), "bias": jnp.zeros(4)}}
  ids, depth = evaluate.vit_layer_ids(params)
  assert depth == 3
  assert ids["backbone"]["embedding"]["kernel"] == 0 and ids["backbone"]["cls"] == 0
  assert ids["backbone"]["Transformer"]["encoderblock_2"]["LayerNorm_0"]["scale"] == 3
  assert ids["backbone"]["Transformer"]["encoder_norm"]["scale"] == 4 and ids["head"]["kernel"] == 4
  with pytest.raises(ValueError, match="layer_decay is for ViT"):
    train_src, test_src = _split()
    module, variables = _backbone()
    evaluate.finetune(module, variables, train_src, test_src, preprocess=_preprocess,
                      config=ProtocolConfig(epochs=1, batch_size=32, layer_decay=0.75))


def test_protocol_config_refuses_unknown_settings():
  with pytest.raises(ValueError, match="unknown protocol setting.*nesterov"):
    ProtocolConfig.from_dict({"nesterov": True})
  assert ProtocolConfig.from_dict({"crop_scale": [0.2, 1.0]}).crop_scale == (0.2, 1.0)


def test_label_subset_is_class_balanced_and_refuses_an_empty_class():
  src = toy_source(n=40, num_classes=4)
  sub = data.label_subset(src, fraction=0.3, seed=1)
  assert np.bincount(sub.labels).tolist() == [3, 3, 3, 3]
  assert list(sub.images[0].shape) == [16, 16, 3] and len(set(sub.labels.tolist())) == 4
  assert data.label_subset(src, fraction=0.3, seed=1).images.tobytes() == sub.images.tobytes()  # seeded
  assert data.label_subset(src, fraction=0.3, seed=2).images.tobytes() != sub.images.tobytes()
  with pytest.raises(data.DataError, match="leaves class 'c0'.*no labelled example"):
    data.label_subset(src, fraction=0.01)
