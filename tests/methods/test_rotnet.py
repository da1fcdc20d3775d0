"""RotNet: rotations made in tf.data equal `losses.rotate_batch`; smoke, 8-vs-1 devices, learning."""

import os

import jax
import numpy as np
import optax
import pytest
import tensorflow as tf

from tests.helpers import toy_source
from tests.methods import _util
from jax_ssl import data, evaluate, losses
from jax_ssl.data import ops
from jax_ssl.methods import RotNet
from jax_ssl.models import ConvNet, ResNet

CIFAR = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "cifar10_subset")


def tiny(**kw):
  return RotNet(backbone=ResNet(depth=18, width=4), image_size=16, **kw)


def test_rotations_op_is_counter_clockwise_and_matches_np_rot90():
  img = np.random.RandomState(0).rand(5, 5, 3).astype(np.float32)
  rot, labels = ops.rotations(tf.constant(img))
  np.testing.assert_array_equal(labels.numpy(), [0, 1, 2, 3])
  for k in range(4):
    np.testing.assert_array_equal(rot.numpy()[k], np.rot90(img, k))
  # Counter-clockwise as displayed: the top-right pixel goes to the top-left at 90 degrees.
  one = np.zeros((3, 3, 1), np.float32)
  one[0, 2] = 1
  r = ops.rotations(tf.constant(one))[0].numpy()
  assert r[1, 0, 0, 0] == 1 and r[2, 2, 0, 0] == 1 and r[3, 2, 2, 0] == 1
  with pytest.raises(ValueError, match="square"):
    ops.rotations(tf.zeros([4, 5, 3]))


def test_tf_data_rotations_equal_rotate_batch_image_major():
  method, src = tiny(), toy_source(n=16)
  batch = _util.batches(method, src, 8, 1)[0]
  assert batch["rotations"].shape == (8, 4, 16, 16, 3)
  x, labels = RotNet._flat(batch)
  # The same examples' unrotated views, rebuilt from their seeds, rotated on device.
  order = data.epoch_order(len(src), 0, 0).numpy()[:8]
  base = np.stack([method.base_view({"image": tf.constant(src.images[i]), "label": 0, "index": i},
                                    tf.constant([0, i], tf.int64)).numpy() for i in order])
  want_x, want_y = losses.rotate_batch(base)
  np.testing.assert_allclose(np.asarray(x)[:, 0], np.asarray(want_x), atol=1e-6)
  np.testing.assert_array_equal(np.asarray(labels), np.asarray(want_y))


def test_make_views_deterministic_per_seed():
  method, src = tiny(), toy_source(n=4)
  ex = {"image": tf.constant(src.images[0]), "label": 0, "index": 0}
  a = method.make_views(ex, tf.constant([3, 4], tf.int64))["rotations"].numpy()
  b = method.make_views(ex, tf.constant([3, 4], tf.int64))["rotations"].numpy()
  c = method.make_views(ex, tf.constant([3, 5], tf.int64))["rotations"].numpy()
  np.testing.assert_array_equal(a, b)
  assert np.abs(a - c).max() > 1e-3


def test_per_block_embeddings_and_report_rows():
  # (Two train steps of every method, RotNet included, are the contract's: tests/test_contract.py.)
  method, src = tiny(), toy_source(n=32)
  params, state = method.init(jax.random.key(0), _util.batches(method, src, 2, 1)[0])
  imgs = np.stack([method.eval_preprocess(tf.constant(im)).numpy() for im in src.images[:4]])
  f = jax.jit(method.embed)(params, state, imgs)
  blocks = jax.jit(method.embed_blocks)(params, state, imgs)
  assert f.shape == (4, 32) and sorted(blocks) == ["stage1", "stage2", "stage3", "stage4"]
  np.testing.assert_allclose(blocks["stage4"], f, rtol=1e-6)
  assert blocks["stage2"].shape == (4, 8)
  report = evaluate.evaluate_method(method, params, state, src, src, batch_size=16, knn_ks=(5,),
                                    linear=False, per_block=True)
  for row in ("pretrained", "random_init", "pixels", "pretrained/stage1", "random_init/stage4"):
    assert 0.0 <= report[row]["knn_top1_k5"] <= 100.0
  # stage4 is the final feature: its kNN equals the plain row's.
  assert report["pretrained/stage4"] == {k: v for k, v in report["pretrained"].items() if k.startswith("knn")}
  # Held-out rotation accuracy on the network rows, computed again here from the same puzzles.
  logits_fn = jax.jit(method.logits)
  for row, (p, s) in (("pretrained", (params, state)),):
    ds = data.train_dataset(src, method.make_views, global_batch=16, seed=0)
    hits = total = 0
    for batch in ds.take(4 * 2).as_numpy_iterator():  # 4 passes of 32 images / 16
      logits, labels = logits_fn(p, s, batch)
      hits += int(np.sum(np.argmax(np.asarray(logits), -1) == np.asarray(labels)))
      total += labels.size
    assert report[row]["pretext_top1"] == pytest.approx(100.0 * hits / total)
  assert 0.0 <= report["random_init"]["pretext_top1"] <= 100.0
  assert "pretext_top1" not in report["pixels"]


@pytest.mark.slow
def test_learns_rotations_on_real_cifar():
  src = data.load_image_folder(CIFAR, "train")
  src = data.ArraySource(src.images[:512], src.labels[:512], src.class_names, "cifar512")
  method = RotNet(backbone=ConvNet((32, 64, 128)), image_size=32)  # measured: acc 0.66, held out 54.6
  tx = optax.adamw(3e-3)
  bs = _util.batches(method, src, 32, 60)
  trained, ms = _util.run_steps(method, tx, bs, jax.devices()[:1])
  first = np.mean([m["loss"] for m in ms[:5]])
  last = np.mean([m["loss"] for m in ms[-10:]])
  acc = np.mean([m["rotation_acc"] for m in ms[-10:]])
  assert last < first - 0.2, (first, last)
  assert acc > 0.45, acc  # chance is 0.25
  # ... and on held-out images: rotations of 256 test images the network never saw.
  test = data.load_image_folder(CIFAR, "test")
  test = data.ArraySource(test.images[:256], test.labels[:256], test.class_names, "cifar256")
  held_out = evaluate.pretext_accuracy(method, trained.params, trained.state, test, batch_size=128, epochs=1)
  assert held_out > 40.0, held_out
