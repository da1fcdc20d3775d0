"""Jigsaw: views, labels follow the permutation set, smoke, 8-vs-1 devices, learning."""

import os

import jax
import numpy as np
import optax
import pytest
import tensorflow as tf

from tests.helpers import toy_source
from tests.methods import _util
from jax_ssl import data
from jax_ssl.data import ops
from jax_ssl.methods import Jigsaw
from jax_ssl.models import ConvNet

CIFAR = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "cifar10_subset")
SMALL = dict(resize=16, crop=15, grid=3, tile=4)  # fits 16 px toy images


def tiny(**kw):
  return Jigsaw(backbone=ConvNet(widths=(8, 32)), num_permutations=12, embed_dim=16, head_hidden_dims=(16,),
                eval_size=16, **{**SMALL, **kw})


def test_permutation_set_and_views():
  method = tiny()
  np.testing.assert_array_equal(method.permutations, ops.hamming_permutations(12))
  src = toy_source(n=8)
  ex = {"image": tf.constant(src.images[0]), "label": 0, "index": 0}
  v = method.make_views(ex, tf.constant([1, 2], tf.int64))
  w = method.make_views(ex, tf.constant([1, 2], tf.int64))
  assert v["tiles"].shape == (9, 4, 4, 3) and 0 <= int(v["jigsaw_label"]) < 12
  np.testing.assert_array_equal(v["tiles"].numpy(), w["tiles"].numpy())
  labels = {int(method.make_views(ex, tf.constant([i, 2], tf.int64))["jigsaw_label"]) for i in range(100)}
  assert labels == set(range(12))
  assert method.signature()["permutations"] == {"num": 12, "seed": 0, "criterion": "mean"}


def test_two_steps_embeddings_and_nearest_tile_png(tmp_path):
  method, src = tiny(), toy_source(n=32)
  state, _ = _util.assert_two_steps_smoke(method, src, "jigsaw_acc")
  imgs = np.stack([method.eval_preprocess(tf.constant(im)).numpy() for im in src.images[:4]])
  np.testing.assert_allclose(imgs.mean(axis=(1, 2)), 0.0, atol=1e-4)  # standardized like the tiles
  assert method.embed(state.params, state.state, imgs).shape == (4, 32)
  (path,) = method.write_artifacts(str(tmp_path), params=state.params, state=state.state, source=src)
  assert os.path.exists(path)


@pytest.mark.slow
def test_learns_permutations_on_real_cifar():
  src = data.load_image_folder(CIFAR, "train")
  src = data.ArraySource(src.images[:256], src.labels[:256], src.class_names, "cifar256")
  method = Jigsaw(backbone=ConvNet((32, 64, 128)), num_permutations=10, resize=32, crop=30, tile=9,
                  channel_jitter=0, gray_p=0.0, embed_dim=64, head_hidden_dims=(64,), eval_size=32)
  bs = _util.batches(method, src, 32, 60)
  _, ms = _util.run_steps(method, optax.adamw(3e-3), bs, jax.devices()[:1])
  first = np.mean([m["loss"] for m in ms[:5]])
  last = np.mean([m["loss"] for m in ms[-10:]])
  acc = np.mean([m["jigsaw_acc"] for m in ms[-10:]])
  assert last < first - 0.2, (first, last)
  assert acc > 0.25, acc  # chance is 0.1 (measured: 0.66)
