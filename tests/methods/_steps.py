"""Running a method's train step on a mesh of N simulated devices (shared by method tests)."""

import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jax_ssl import data, train
from tests.helpers import assert_trees_close, batches, run_steps  # noqa: F401  (re-exported)


class ConvNet(nn.Module):
  """A small all-convolutional backbone with the ResNet call interface (fast to compile).

  `widths` stride-2 3x3 convolutions with BatchNorm and ReLU; `return_map=True` gives the
  last map [N, h, w, C] (16 px -> 2x2 with two layers), else its global average [N, C].
  """

  widths: tuple = (8, 8)

  @nn.compact
  def __call__(self, x, *, train: bool, return_map: bool = False, return_blocks: bool = False):
    for i, w in enumerate(self.widths):
      x = nn.Conv(w, (3, 3), (2, 2), use_bias=False, name=f"conv{i}")(x)
      x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9, name=f"bn{i}")(x))
    if return_map:
      return x
    pooled = jnp.mean(x, axis=(1, 2))
    return {"final": pooled} if return_blocks else pooled


CIFAR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "..",
                     "shared", "data", "cifar10_subset")


def cifar_subset(n=512, split="train"):
  """`n` images (a fixed random choice) of a split of the shared CIFAR-10 subset."""
  src = data.load_image_folder(CIFAR, split)
  rng = np.random.default_rng(0)
  idx = np.sort(rng.permutation(len(src))[:n])
  return data.ArraySource(src.images[idx], src.labels[idx], src.class_names, f"{src.name}[:{n}]")


def view_retrieval(method, params, state, src, *, n=256, seed=123):
  """Top-1 of finding an image's other augmented view among `n` images' views (backbone features).

  A direct measure of what SSL training teaches (invariance to the views with distinct
  images kept apart); random-init networks score well above chance through colour alone.
  """
  b = batches(method, src, n, 1, seed=seed)[0]
  embed = jax.jit(method.embed)
  f1 = np.array(embed(params, state, b["view1"]))
  f2 = np.array(embed(params, state, b["view2"]))
  f1 /= np.linalg.norm(f1, axis=1, keepdims=True)
  f2 /= np.linalg.norm(f2, axis=1, keepdims=True)
  return float(np.mean(np.argmax(f1 @ f2.T, axis=1) == np.arange(n)))


def short_real_run(method, tx, src, *, steps, batch):
  """`steps` train steps on one device; returns (retrieval at init, after, per-step metrics)."""
  mesh = train.make_mesh(jax.devices()[:1])
  bs = batches(method, src, batch, steps, seed=0)
  state = train.init_train_state(method, tx, jax.random.key(0), train.shard_batch(bs[0], mesh), mesh)
  before = view_retrieval(method, state.params, state.state, src)
  step = train.make_train_step(method, tx, mesh)
  metrics = []
  for b in bs:
    state, m = step(state, train.shard_batch(b, mesh), jax.random.key(1))
    metrics.append(jax.device_get(m))
  after = view_retrieval(method, state.params, state.state, src)
  return before, after, metrics
