"""RegNet: stage widths and parameter counts equal torchvision's published RegNetY models, one
block equals a NumPy transcription of torchvision's ResBottleneckBlock, the backbone interface."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_ssl import models
from jax_ssl.models import REGNETY, regnet, regnet_stages

# torchvision's `num_params` of regnet_y_* (ImageNet-1K weights' meta; a 1000-way fc included).
TORCHVISION_PARAMS = {"Y-400MF": 4344144, "Y-800MF": 6432512, "Y-8GF": 39381472, "Y-32GF": 145046770,
                      "Y-128GF": 644812894}


def _num_params(module, size=32):
  shapes = jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros((1, size, size, 3)), train=False))
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes["params"]))


def test_stages_of_the_published_models():
  assert regnet_stages(*REGNETY["Y-400MF"]) == ((48, 104, 208, 440), (1, 3, 6, 6), (8, 8, 8, 8))  # the figures
  # 136 -> 144 (torchvision / timm: 64-144-320-784); half-to-even rounding would give 128.
  assert regnet_stages(*REGNETY["Y-800MF"])[0] == (64, 144, 320, 784)
  with pytest.raises(ValueError, match="invalid RegNet parameters"):
    regnet_stages(16, 50, 27.89, 2.09, 8)  # w_0 not a multiple of 8


@pytest.mark.parametrize("variant", sorted(TORCHVISION_PARAMS))
def test_parameter_count_equals_torchvision(variant):
  m = regnet(variant)
  assert _num_params(m) + m.num_features * 1000 + 1000 == TORCHVISION_PARAMS[variant]


def test_seer_256gf_has_1_3_billion_parameters():
  assert 1.25e9 < _num_params(regnet("Y-256GF")) < 1.35e9  # VISSL's RegNet-256Gf: "1.3B params"


def _np_conv(x, w, stride=1, pad=0, groups=1, b=None):
  """x [H, W, Cin], w [kh, kw, Cin/groups, Cout] (float64), torch-style zero padding."""
  x = np.pad(x, ((pad, pad), (pad, pad), (0, 0)))
  kh, kw, cg, cout = w.shape
  oh, ow = (x.shape[0] - kh) // stride + 1, (x.shape[1] - kw) // stride + 1
  out = np.zeros((oh, ow, cout))
  per = cout // groups
  for g in range(groups):
    xs = x[..., g * cg:(g + 1) * cg]
    for i in range(kh):
      for j in range(kw):
        patch = xs[i:i + stride * oh:stride, j:j + stride * ow:stride]
        out[..., g * per:(g + 1) * per] += patch @ w[i, j, :, g * per:(g + 1) * per]
  return out + (b if b is not None else 0)


def _np_bn(x, p, s):
  return (x - s["mean"]) / np.sqrt(s["var"] + 1e-5) * p["scale"] + p["bias"]


def test_block_equals_a_numpy_transcription_of_torchvisions_block():
  # One strided block with squeeze-excitation and a projected shortcut, in inference mode with
  # random weights and BatchNorm statistics.
  block = models.RegNet(widths=(16,), depths=(1,), group_widths=(4,), se_ratio=0.25, stem_width=8)
  x = np.random.default_rng(0).normal(size=(1, 8, 8, 3)).astype(np.float32)
  v = jax.eval_shape(lambda: block.init(jax.random.key(0), x, train=False))
  rng = np.random.default_rng(1)
  v = jax.tree.map(lambda a: np.asarray(rng.normal(size=a.shape) * 0.5 + (1.0 if a.ndim == 1 else 0.0), np.float32), v)
  v["batch_stats"] = jax.tree.map(np.abs, v["batch_stats"])  # variances must be positive
  got = np.asarray(jax.jit(lambda v, x: block.apply(v, x, train=False, return_map=True))(v, x))[0]
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), v["params"])
  s = jax.tree.map(lambda a: np.asarray(a, np.float64), v["batch_stats"])
  h = np.maximum(_np_bn(_np_conv(x[0].astype(np.float64), p["stem_conv"]["kernel"], 2, 1), p["stem_bn"], s["stem_bn"]), 0)
  bp, bs = p["stage1_block1"], s["stage1_block1"]
  a = np.maximum(_np_bn(_np_conv(h, bp["a"]["kernel"]), bp["a_bn"], bs["a_bn"]), 0)
  b = np.maximum(_np_bn(_np_conv(a, bp["b"]["kernel"], 2, 1, groups=16 // 4), bp["b_bn"], bs["b_bn"]), 0)
  assert bp["se_reduce"]["kernel"].shape == (1, 1, 16, 2)  # 0.25 of the block INPUT width (8)
  z = np.maximum(b.mean(axis=(0, 1)) @ bp["se_reduce"]["kernel"][0, 0] + bp["se_reduce"]["bias"], 0)
  b = b / (1 + np.exp(-(z @ bp["se_expand"]["kernel"][0, 0] + bp["se_expand"]["bias"])))
  c = _np_bn(_np_conv(b, bp["c"]["kernel"]), bp["c_bn"], bs["c_bn"])
  short = _np_bn(_np_conv(h, bp["proj"]["kernel"], 2), bp["proj_bn"], bs["proj_bn"])
  np.testing.assert_allclose(got, np.maximum(short + c, 0), rtol=1e-4, atol=1e-4)


def test_backbone_interface_and_registry():
  m = models.build_backbone("regnet", widths=(8, 16), depths=(1, 2), group_widths=(4, 8), stem="cifar")
  x = jnp.zeros((2, 16, 16, 3))
  v = jax.eval_shape(lambda: m.init(jax.random.key(0), x, train=False))  # shapes only: compiling is slow on CPU
  out = jax.eval_shape(lambda v: (m.apply(v, x, train=False), m.apply(v, x, train=False, return_map=True),
                                 m.apply(v, x, train=False, return_blocks=True)), v)
  assert out[0].shape == (2, 16) and m.num_features == 16
  assert out[1].shape == (2, 4, 4, 16)  # stride-1 stem, then 2 x 2
  assert set(out[2]) == {"stage1", "stage2"}
  assert "proj" not in v["params"]["stage2_block2"] and "proj" in v["params"]["stage2_block1"]
  assert models.build_backbone("regnet", variant="Y-400MF").widths == (48, 104, 208, 440)
  with pytest.raises(ValueError, match="unknown RegNet variant"):
    models.build_backbone("regnet", variant="Y-7GF")
  with pytest.raises(ValueError, match="not both"):
    models.build_backbone("regnet", variant="Y-400MF", widths=(8,))


def test_grouped_batchnorm_normalizes_each_group_of_examples_on_its_own():
  x = np.random.default_rng(0).normal(size=(8, 3, 3, 5)).astype(np.float32) * 3 + 1
  bn = models.GroupedBatchNorm(group_size=4, momentum=0.9)
  v = bn.init(jax.random.key(0), x)
  rng = np.random.default_rng(1)
  v = {"params": {"scale": rng.normal(size=5).astype(np.float32), "bias": rng.normal(size=5).astype(np.float32)},
       "batch_stats": v["batch_stats"]}
  y, upd = jax.jit(lambda v, x: bn.apply(v, x, mutable=["batch_stats"]))(v, x)
  x64, want, means, variances = x.astype(np.float64), [], [], []
  for g in (x64[:4], x64[4:]):  # SyncBN over the devices holding each half
    m, var = g.mean(axis=(0, 1, 2)), g.var(axis=(0, 1, 2))
    want.append((g - m) / np.sqrt(var + 1e-5) * v["params"]["scale"] + v["params"]["bias"])
    means.append(m)
    variances.append(var)
  np.testing.assert_allclose(np.asarray(y), np.concatenate(want), rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(upd["batch_stats"]["mean"], 0.1 * np.mean(means, 0), rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(upd["batch_stats"]["var"], 0.9 + 0.1 * np.mean(variances, 0), rtol=1e-4)
  # One group of the whole batch is flax's BatchNorm (training and inference).
  whole = models.GroupedBatchNorm(group_size=8)
  ref = nn.BatchNorm(use_running_average=False, momentum=0.9, epsilon=1e-5)
  a, ua = whole.apply(v, x, mutable=["batch_stats"])
  b, ub = ref.apply(v, x, mutable=["batch_stats"])
  np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(ua["batch_stats"]["var"], ub["batch_stats"]["var"], rtol=1e-4)
  stats = {"params": v["params"], "batch_stats": ub["batch_stats"]}
  np.testing.assert_allclose(models.GroupedBatchNorm(use_running_average=True, group_size=8).apply(stats, x),
                             nn.BatchNorm(use_running_average=True).apply(stats, x), rtol=1e-5, atol=1e-5)
  with pytest.raises(ValueError, match="not a multiple of group_size 3"):
    models.GroupedBatchNorm(group_size=3).init(jax.random.key(0), x)
  net = models.build_backbone("regnet", widths=(8,), depths=(1,), group_widths=(4,), bn_group_size=2)
  shapes = jax.eval_shape(lambda: net.init(jax.random.key(0), jnp.zeros((4, 8, 8, 3)), train=True))
  assert set(shapes["batch_stats"]["stem_bn"]) == {"mean", "var"}  # the names of nn.BatchNorm's statistics
