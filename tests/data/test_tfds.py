"""The real TFDS path, offline: datasets prepared as ArrayRecord / TFRecord files in a temporary
directory from the shared CIFAR images, read by name, streamed by index or loaded in memory."""

import os

import numpy as np
import pytest
import tensorflow as tf

from jax_ssl import data
from tests.helpers import once
from tests.train import fault_driver as fd

CIFAR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "..", "shared",
                     "data", "cifar10_subset")
# The prepared datasets are built once per worker: keep the module on one worker.
pytestmark = pytest.mark.xdist_group("test_tfds")


def _cifar_files(split, per_class):
  classes = sorted(os.listdir(os.path.join(CIFAR, split)))
  paths, labels = [], []
  for label, cls in enumerate(classes):
    names = sorted(os.listdir(os.path.join(CIFAR, split, cls)))[:per_class]
    paths += [os.path.join(CIFAR, split, cls, n) for n in names]
    labels += [label] * len(names)
  return paths, labels, classes


@pytest.fixture
def prepared(tmp_path_factory):
  """(data_dir, class names): "cifar_ar" (ArrayRecord, train 160 / test 80), "cifar_tfr"
  (TFRecord, the same train split) and "cifar_unlab" (ArrayRecord, no label feature)."""
  def make():
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    tr, ytr, classes = _cifar_files("train", 16)
    te, yte, _ = _cifar_files("test", 8)
    splits = {"train": data.folder_split(tr, ytr), "test": data.folder_split(te, yte)}
    kw = dict(class_names=classes, image_shape=(32, 32, 3), encoding="png")
    data.build_tfds_dataset("cifar_ar", data_dir, splits, num_shards=3, **kw)
    data.build_tfds_dataset("cifar_tfr", data_dir, {"train": splits["train"]}, file_format="tfrecord", **kw)
    data.build_tfds_dataset("cifar_unlab", data_dir, {"unlabelled": data.folder_split(tr, [-1] * len(tr))},
                            image_shape=(32, 32, 3), encoding="png")
    return data_dir, classes
  return once("test_tfds.prepared", make)


def _views(example, seed):
  """A deterministic stand-in for a method's views: the image, a random flip keyed by the seed."""
  flip = tf.random.stateless_uniform([], seed=seed) < 0.5
  image = tf.where(flip, tf.image.flip_left_right(example["image"]), example["image"])
  return {"image": image, "label": example["label"], "index": example["index"]}


def _take(ds, k):
  return [b for _, b in zip(range(k), ds.as_numpy_iterator())]


def test_streamed_split_equals_the_same_split_in_memory(prepared):
  data_dir, classes = prepared
  mem = data.load_tfds("cifar_ar", "train", data_dir=data_dir, storage="memory")
  stream = data.load_tfds("cifar_ar", "train", data_dir=data_dir, storage="files")
  assert stream.records is not None and mem.records is None and not mem.encoded  # fixed size: decoded
  assert len(stream) == len(mem) == 160 and stream.class_names == mem.class_names == classes
  assert stream.labeled and isinstance(stream.labels, data.RecordLabels)
  np.testing.assert_array_equal(np.asarray(stream.labels), mem.labels)
  assert sorted(np.bincount(mem.labels)) == [16] * 10  # every prepared example, once
  for i in (0, 77, 159):
    np.testing.assert_array_equal(stream.image(i), mem.images[i])
  # The whole pipeline: identical batches (images, labels, indices, per-example randomness).
  kw = dict(global_batch=32, seed=5)
  a = _take(data.train_dataset(stream, _views, **kw), 7)  # 5 steps per epoch: crosses into epoch 1
  b = _take(data.train_dataset(mem, _views, **kw), 7)
  for x, y in zip(a, b):
    for k in x:
      np.testing.assert_array_equal(x[k], y[k], err_msg=k)
  ev_a, n_a = data.eval_dataset(stream, lambda im: im, batch_size=64)
  ev_b, n_b = data.eval_dataset(mem, lambda im: im, batch_size=64)
  assert n_a == n_b == 3
  for x, y in zip(ev_a.as_numpy_iterator(), ev_b.as_numpy_iterator()):
    for k in x:
      np.testing.assert_array_equal(x[k], y[k], err_msg=k)


def test_processes_read_disjoint_halves_of_every_streamed_batch(prepared):
  data_dir, _ = prepared
  src = data.load_tfds("cifar_ar", "train", data_dir=data_dir, storage="files")
  kw = dict(global_batch=32, seed=1, start_step=3)  # from mid-epoch 0 into epoch 1
  whole = _take(data.train_dataset(src, _views, **kw), 4)
  halves = [_take(data.train_dataset(src, _views, process_index=p, process_count=2, **kw), 4) for p in (0, 1)]
  for step, full in enumerate(whole):
    mine = [h[step]["index"] for h in halves]
    assert not set(mine[0]) & set(mine[1])
    for k in full:
      np.testing.assert_array_equal(np.concatenate([h[step][k] for h in halves]), full[k], err_msg=k)


def test_resume_across_an_epoch_boundary_on_a_streamed_source_is_bitwise_exact(prepared, tmp_path):
  data_dir, _ = prepared
  src = data.load_tfds("cifar_ar", "train", data_dir=data_dir, storage="files")
  steps = 14  # 10 steps per epoch at batch 16: the resumed part crosses the boundary
  ref = fd.run(str(tmp_path / "ref"), steps=steps, devices=1, source=src)
  part = fd.run(str(tmp_path / "run"), steps=steps, devices=1, source=src, stop_after=7)
  assert part.step == 7
  resumed = fd.run(str(tmp_path / "run"), steps=steps, devices=1, source=src)
  assert resumed.step == steps
  a, b = fd.flat_state(ref.state), fd.flat_state(resumed.state)
  assert a.keys() == b.keys()
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_storage_choice_unlabeled_splits_and_clear_errors(prepared, monkeypatch):
  data_dir, _ = prepared
  # "auto": in memory while small, streamed above the threshold.
  assert data.load_tfds("cifar_ar", "test", data_dir=data_dir).records is None
  monkeypatch.setattr(data._sources, "MAX_IN_MEMORY_BYTES", 1000)
  assert data.load_tfds("cifar_ar", "test", data_dir=data_dir).records is not None
  # TFRecord shards cannot be read by index: streaming them is one clear error naming the fix...
  with pytest.raises(data.DataError, match="cannot be read by example index.*file_format=array_record"):
    data.load_tfds("cifar_tfr", "train", data_dir=data_dir)
  monkeypatch.undo()
  # ...while loading them into memory works.
  assert len(data.load_tfds("cifar_tfr", "train", data_dir=data_dir, storage="memory")) == 160
  unlab = data.load_tfds("cifar_unlab", "unlabelled", data_dir=data_dir, storage="files")
  assert len(unlab) == 160 and not unlab.labeled and unlab.num_classes == 0
  assert (np.asarray(unlab.labels) == -1).all()
  with pytest.raises(data.DataError, match="no split 'validation'.*'test', 'train'"):
    data.load_tfds("cifar_ar", "validation", data_dir=data_dir)
  with pytest.raises(data.DataError, match="no such dataset"):
    data.load_tfds("not_a_dataset_here", "train", data_dir=data_dir)
  with pytest.raises(data.DataError, match="not prepared"):
    data.load_tfds("cifar10", "train", data_dir=data_dir)  # in the catalogue, not prepared here
  with pytest.raises(data.DataError, match="storage must be"):
    data.load_tfds("cifar_ar", "train", data_dir=data_dir, storage="disk")


def test_a_validation_split_of_a_streamed_source_stays_streamed(prepared):
  data_dir, _ = prepared
  src = data.load_tfds("cifar_ar", "train", data_dir=data_dir, storage="files")
  rest, val = data.split_validation(src, fraction=0.1, seed=0)
  assert rest.records is src.records and val.records is src.records
  assert len(rest) == 140 and len(val) == 20 and sorted(np.asarray(val.labels)) == sorted(list(range(10)) * 2)
  mem = data.load_tfds("cifar_ar", "train", data_dir=data_dir, storage="memory")
  _, val_mem = data.split_validation(mem, fraction=0.1, seed=0)
  for i in range(len(val)):
    np.testing.assert_array_equal(val.image(i), val_mem.images[i])
