"""Context Prediction: views and labels, siamese weight sharing, smoke, 8-vs-1 devices, learning."""

import os

import jax
import numpy as np
import optax
import pytest
import tensorflow as tf

from tests.helpers import toy_source
from tests.methods import _util
from jax_ssl import data
from jax_ssl.methods import ContextPrediction
from jax_ssl.models import ConvNet

CIFAR = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "cifar10_subset")
SMALL = dict(patch=6, gap=2, jitter=1, area_range=None)  # fits 16 px toy images


def tiny(**kw):
  return ContextPrediction(backbone=ConvNet(widths=(8, 32)), embed_dim=16, head_hidden_dims=(16,),
                           eval_size=16, **{**SMALL, **kw})


def test_views_shapes_labels_and_determinism():
  method, src = tiny(), toy_source(n=16)
  ex = {"image": tf.constant(src.images[0]), "label": 0, "index": 0}
  a = method.make_views(ex, tf.constant([1, 2], tf.int64))
  b = method.make_views(ex, tf.constant([1, 2], tf.int64))
  assert a["patches"].shape == (2, 6, 6, 3) and a["context_label"].dtype == tf.int32
  np.testing.assert_array_equal(a["patches"].numpy(), b["patches"].numpy())
  labels = [int(method.make_views(ex, tf.constant([i, 2], tf.int64))["context_label"]) for i in range(80)]
  assert set(labels) == set(range(8))
  with pytest.raises(ValueError, match="color"):
    tiny(color="gray")


def test_siamese_towers_share_weights_and_swapping_changes_the_logits():
  method, src = tiny(), toy_source(n=16)
  batch = _util.batches(method, src, 8, 1)[0]
  params, state = method.init(jax.random.key(0), batch)
  # One trunk and one fc6 for both patches: no per-tower copies in the parameters.
  assert "backbone" in params and "fc6" in params and len([k for k in params if "backbone" in k]) == 1
  logits, _ = method.logits(params, state, batch)
  swapped = dict(batch, patches=batch["patches"][:, ::-1])
  logits_sw, _ = method.logits(params, state, swapped)
  assert logits.shape == (8, 8) and not np.allclose(logits, logits_sw)  # the head sees the order
  # Each patch's fc6 equals the embedding of that patch alone (the towers are the same function).
  e_pair = method.patch_embedding(params, state, batch["patches"].reshape(16, 6, 6, 3))
  e_second = method.patch_embedding(params, state, batch["patches"][:, 1])
  np.testing.assert_allclose(np.asarray(e_pair)[1::2], e_second, rtol=1e-5, atol=1e-5)


def test_two_steps_embeddings_and_nearest_patch_png(tmp_path):
  method, src = tiny(), toy_source(n=32)
  state, _ = _util.assert_two_steps_smoke(method, src, "context_acc")
  imgs = np.stack([method.eval_preprocess(tf.constant(im)).numpy() for im in src.images[:4]])
  assert method.embed(state.params, state.state, imgs).shape == (4, 32)
  (path,) = method.write_artifacts(str(tmp_path), params=state.params, state=state.state, source=src)
  from PIL import Image
  png = np.asarray(Image.open(path))
  assert png.shape == (6 * 10, 8 * 10 + 4, 3) and png.std() > 0


@pytest.mark.slow
def test_learns_relative_positions_on_real_cifar():
  src = data.load_image_folder(CIFAR, "train")
  src = data.ArraySource(src.images[:256], src.labels[:256], src.class_names, "cifar256")
  method = ContextPrediction(backbone=ConvNet((64, 128)), patch=10, gap=2, jitter=1, area_range=None,
                             color="projection", downsample_p=0.0, embed_dim=64, head_hidden_dims=(64,),
                             eval_size=32, mean=(0.5,) * 3, std=(0.25,) * 3)
  bs = _util.batches(method, src, 32, 60)
  _, ms = _util.run_steps(method, optax.adamw(3e-3), bs, jax.devices()[:1])
  first = np.mean([m["loss"] for m in ms[:5]])
  last = np.mean([m["loss"] for m in ms[-10:]])
  acc = np.mean([m["context_acc"] for m in ms[-10:]])
  assert last < first - 0.15, (first, last)
  assert acc > 0.18, acc  # chance 0.125; 0.18 is 3 sigma above it for 320 pairs (measured: 0.234)
