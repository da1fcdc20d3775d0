"""The torchvision ResNet layout, checked against published state_dict names and shapes."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_ssl.models import ResNet, torchvision_resnet_state_dict

FIXTURE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "torchvision_resnet_state_dict.json")


@pytest.mark.parametrize("depth", [18, 50])
def test_names_and_shapes_are_torchvisions(depth):
  expected = json.load(open(FIXTURE))[f"resnet{depth}"]
  model = ResNet(depth=depth, stem="imagenet")
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 64, 64, 3)), train=False))
  variables = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), variables)
  got = torchvision_resnet_state_dict(variables)
  assert list(got) == list(expected)  # the same names in torchvision's order
  assert {k: list(v.shape) for k, v in got.items()} == expected
  assert got["bn1.num_batches_tracked"].dtype == np.int64


def test_values_are_transposed_not_scrambled():
  model = ResNet(depth=18, width=8, stem="imagenet")
  variables = model.init(jax.random.key(1), jnp.zeros((1, 32, 32, 3)), train=False)
  sd = torchvision_resnet_state_dict(variables)
  hwio = np.asarray(variables["params"]["stage2_block1"]["Conv_0"]["kernel"])  # [3, 3, 8, 16]
  oihw = sd["layer2.0.conv1.weight"]
  assert oihw.shape == (16, 8, 3, 3)
  np.testing.assert_array_equal(oihw[5, 3, 2, 1], hwio[2, 1, 3, 5])
  np.testing.assert_array_equal(sd["layer2.0.downsample.1.running_var"],
                                variables["batch_stats"]["stage2_block1"]["proj_bn"]["var"])
  np.testing.assert_array_equal(sd["layer1.1.bn2.weight"], variables["params"]["stage1_block2"]["BatchNorm_1"]["scale"])


def test_other_backbones_are_refused():
  with pytest.raises(ValueError, match="jax_ssl ResNet"):
    torchvision_resnet_state_dict({"params": {"embedding": {}}})


def _conv(x, w, stride, pad):
  """torch.nn.functional.conv2d semantics in NumPy: x [N, C, H, W], w [O, C, kh, kw], zero padding."""
  x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
  o, c, kh, kw = w.shape
  h = (x.shape[2] - kh) // stride + 1
  wd = (x.shape[3] - kw) // stride + 1
  out = np.zeros((x.shape[0], o, h, wd))
  for i in range(kh):
    for j in range(kw):
      patch = x[:, :, i:i + stride * h:stride, j:j + stride * wd:stride]
      out += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
  return out


def _bn(x, sd, name):
  g = lambda k: sd[f"{name}.{k}"].astype(np.float64)[None, :, None, None]
  return (x - g("running_mean")) / np.sqrt(g("running_var") + 1e-5) * g("weight") + g("bias")


def _torchvision_resnet18_forward(sd, x):
  """torchvision's ResNet-18 forward (eval mode, up to the pooled features), written from its
  definition: 7x7/2 pad 3 stem, MaxPool2d(3, 2, padding=1), BasicBlocks with padding 1."""
  relu = lambda t: np.maximum(t, 0)
  x = relu(_bn(_conv(x, sd["conv1.weight"], 2, 3), sd, "bn1"))
  x = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
  h = (x.shape[2] - 3) // 2 + 1
  x = np.max([x[:, :, i:i + 2 * h:2, j:j + 2 * h:2] for i in range(3) for j in range(3)], axis=0)
  for layer in range(1, 5):
    for b in range(2):
      p = f"layer{layer}.{b}"
      stride = 2 if layer > 1 and b == 0 else 1
      y = relu(_bn(_conv(x, sd[f"{p}.conv1.weight"], stride, 1), sd, f"{p}.bn1"))
      y = _bn(_conv(y, sd[f"{p}.conv2.weight"], 1, 1), sd, f"{p}.bn2")
      if f"{p}.downsample.0.weight" in sd:
        x = _bn(_conv(x, sd[f"{p}.downsample.0.weight"], stride, 0), sd, f"{p}.downsample.1")
      x = relu(x + y)
  return x.mean(axis=(2, 3))


def test_converted_weights_give_the_same_features_as_torchvisions_forward():
  # Non-trivial BatchNorm statistics and scales, so every layer matters.
  model = ResNet(depth=18, width=8, stem="imagenet")
  variables = model.init(jax.random.key(2), jnp.zeros((1, 36, 36, 3)), train=False)
  rng = np.random.default_rng(0)
  variables = jax.tree.map(lambda a: np.asarray(a) + rng.uniform(0.1, 0.5, a.shape).astype(np.float32), variables)
  images = rng.normal(size=(2, 36, 36, 3)).astype(np.float32)  # 36: odd sizes after the stride-2 layers
  ours = np.asarray(model.apply(variables, images, train=False))
  theirs = _torchvision_resnet18_forward(torchvision_resnet_state_dict(variables), images.transpose(0, 3, 1, 2))
  np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)
