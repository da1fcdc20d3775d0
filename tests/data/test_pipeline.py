"""Deterministic order and per-example randomness of the tf.data pipeline."""

import numpy as np
import pytest
import tensorflow as tf

from jax_ssl.data import ArraySource, DataError, epoch_order, eval_dataset, train_dataset


def _source(n=40):
  images = np.arange(n, dtype=np.uint8)[:, None, None, None] * np.ones((1, 4, 4, 3), np.uint8)
  return ArraySource(images, np.arange(n, dtype=np.int32) % 5, [str(i) for i in range(5)], "toy")


def _view(example, seed):
  # The image's index survives in its pixels; the noise depends only on the seed.
  return {"index": example["index"], "pixel": tf.cast(example["image"][0, 0, 0], tf.int32),
          "noise": tf.random.stateless_uniform([], seed=seed)}


def _take(ds, k):
  return [b for _, b in zip(range(k), ds.as_numpy_iterator())]


def test_each_epoch_is_a_permutation_and_epochs_differ():
  src = _source(40)
  batches = _take(train_dataset(src, _view, global_batch=8, seed=3), 10)  # 2 epochs of 5 steps
  e0 = np.concatenate([b["index"] for b in batches[:5]])
  e1 = np.concatenate([b["index"] for b in batches[5:]])
  assert sorted(e0) == list(range(40)) and sorted(e1) == list(range(40))
  assert not np.array_equal(e0, e1)
  np.testing.assert_array_equal(np.concatenate([b["pixel"] for b in batches[:5]]), e0)
  np.testing.assert_array_equal(e0, epoch_order(40, 3, 0).numpy())


def test_resume_sees_the_same_batches():
  src = _source(40)
  full = _take(train_dataset(src, _view, global_batch=8, seed=1), 12)
  resumed = _take(train_dataset(src, _view, global_batch=8, seed=1, start_step=7), 5)
  for a, b in zip(full[7:], resumed):
    np.testing.assert_array_equal(a["index"], b["index"])
    np.testing.assert_array_equal(a["noise"], b["noise"])


def test_processes_read_disjoint_slices_of_the_same_global_batches():
  src = _source(40)
  full = _take(train_dataset(src, _view, global_batch=8, seed=2), 6)
  parts = [_take(train_dataset(src, _view, global_batch=8, seed=2, process_index=p, process_count=2), 6)
           for p in range(2)]
  for s in range(6):
    joined = {k: np.concatenate([parts[0][s][k], parts[1][s][k]]) for k in full[s]}
    for k in full[s]:
      np.testing.assert_array_equal(joined[k], full[s][k])


def test_randomness_is_keyed_by_seed_epoch_and_index():
  src = _source(16)
  a = _take(train_dataset(src, _view, global_batch=16, seed=0), 2)
  b = _take(train_dataset(src, _view, global_batch=16, seed=0, num_parallel_calls=1), 2)
  c = _take(train_dataset(src, _view, global_batch=16, seed=5), 1)
  np.testing.assert_array_equal(a[0]["noise"], b[0]["noise"])
  by_index0 = dict(zip(a[0]["index"], a[0]["noise"]))
  by_index1 = dict(zip(a[1]["index"], a[1]["noise"]))
  assert all(by_index0[i] != by_index1[i] for i in range(16))  # a new epoch re-draws
  assert not np.array_equal(np.sort(a[0]["noise"]), np.sort(c[0]["noise"]))


def test_batch_errors():
  with pytest.raises(DataError, match="not divisible by the 3 processes"):
    train_dataset(_source(), _view, global_batch=8, seed=0, process_count=3)
  with pytest.raises(DataError, match="larger than the 40 training examples"):
    train_dataset(_source(), _view, global_batch=64, seed=0)


def test_eval_dataset_covers_every_example_once_in_order():
  src = _source(37)
  ds, nb = eval_dataset(src, lambda im: tf.cast(im, tf.float32), batch_size=8)
  batches = list(ds.as_numpy_iterator())
  assert nb == 5 and len(batches) == 5
  idx = np.concatenate([b["index"] for b in batches])[np.concatenate([b["mask"] for b in batches])]
  np.testing.assert_array_equal(idx, np.arange(37))


def test_uniform_over_groups_samples_every_cluster_equally_often():
  from jax_ssl.data import uniform_over_groups

  n = 60
  groups = np.zeros(n, np.int64)
  groups[:5] = 1  # a small cluster (sampled with replacement) ...
  groups[5:8] = 2
  groups[8:10] = -1  # ... and unassigned examples, never drawn
  order = uniform_over_groups(groups)
  idx = order(n, 4, 0).numpy()
  per = n // 3 + 1
  assert len(idx) == 3 * per
  np.testing.assert_array_equal(np.bincount(groups[idx], minlength=3), [per] * 3)
  assert not np.isin(idx, [8, 9]).any()
  big = idx[groups[idx] == 0]
  assert len(np.unique(big)) == per  # the big cluster (50 members > 21 draws): without replacement
  assert set(idx[groups[idx] == 1]) == set(range(5))  # 21 draws over 5 members reach all of them
  assert not np.array_equal(idx, order(n, 4, 1).numpy()) and np.array_equal(idx, order(n, 4, 0).numpy())
  # Through the pipeline: the epoch reads that order, resumes exactly, and is split over processes.
  src = _source(n)
  full = _take(train_dataset(src, _view, global_batch=10, seed=4, order=order), 8)
  np.testing.assert_array_equal(np.concatenate([b["index"] for b in full[:6]]), idx[:60])
  resumed = _take(train_dataset(src, _view, global_batch=10, seed=4, order=order, start_step=3), 5)
  for a, b in zip(full[3:], resumed):
    np.testing.assert_array_equal(a["index"], b["index"])
    np.testing.assert_array_equal(a["noise"], b["noise"])
  part = _take(train_dataset(src, _view, global_batch=10, seed=4, order=order, process_index=1, process_count=2), 2)
  np.testing.assert_array_equal(part[1]["index"], full[1]["index"][5:])
  with pytest.raises(DataError, match="negative"):
    uniform_over_groups(-np.ones(4))


def test_partner_examples_come_from_the_candidates():
  n, k = 40, 3
  cands = (np.arange(n)[:, None] + np.arange(1, k + 1)[None]) % n  # i -> i+1, i+2, i+3
  src = ArraySource(_source(n).images, _source(n).labels, _source(n).class_names, "toy",
                    extras={"neighbours": cands.astype(np.int32)})

  def view(example, seed):
    p = example["partner"]
    return {"index": example["index"], "p_index": p["index"], "p_label": p["label"],
            "p_pixel": tf.cast(p["image"][0, 0, 0], tf.int32), "noise": tf.random.stateless_uniform([], seed=seed)}

  bs = _take(train_dataset(src, view, global_batch=8, seed=0, partner_key="neighbours"), 10)
  idx = np.concatenate([b["index"] for b in bs])
  pidx = np.concatenate([b["p_index"] for b in bs])
  assert all(p in cands[i] for i, p in zip(idx, pidx))
  np.testing.assert_array_equal(np.concatenate([b["p_pixel"] for b in bs]), pidx)  # the partner's own image
  np.testing.assert_array_equal(np.concatenate([b["p_label"] for b in bs]), src.labels[pidx])
  assert len(np.unique((pidx - idx) % n)) == k  # all K candidates get drawn
  # The example's own randomness is unchanged by adding a partner.
  plain = _take(train_dataset(src, _view, global_batch=8, seed=0), 10)
  np.testing.assert_array_equal(np.concatenate([b["noise"] for b in bs]), np.concatenate([b["noise"] for b in plain]))
  again = _take(train_dataset(src, view, global_batch=8, seed=0, partner_key="neighbours", start_step=6), 4)
  np.testing.assert_array_equal(np.concatenate([b["p_index"] for b in again]),
                                np.concatenate([b["p_index"] for b in bs[6:]]))
  with pytest.raises(DataError, match="not among the extras"):
    train_dataset(src, view, global_batch=8, seed=0, partner_key="nope")
  bad = ArraySource(src.images, src.labels, src.class_names, "toy", extras={"neighbours": cands + n})
  with pytest.raises(DataError, match="outside"):
    train_dataset(bad, view, global_batch=8, seed=0, partner_key="neighbours")


_EDITED_MODULE = '''
import tensorflow as tf


class Scale:
  def __call__(self, image):
    return image * 2


def helper(image, *, size):
  return tf.image.resize(tf.cast(image, tf.float32), [size, size])


def view(example, seed):
  return {"x": helper(example["image"], size=2)}


def preprocess(image):
  return helper(image, size=2)
'''


def test_pipelines_survive_source_files_edited_during_a_run(tmp_path, monkeypatch):
  # AutoGraph re-reads a function's source from disk when `map` traces it; after an edit that
  # shifts lines it converted the wrong function (a TypeError from `Scale.__call__` at the
  # evaluation after a long MAE run). The pipelines trace the functions as written instead.
  import importlib
  (tmp_path / "edited_views.py").write_text(_EDITED_MODULE)
  monkeypatch.syspath_prepend(str(tmp_path))
  mod = importlib.import_module("edited_views")
  (tmp_path / "edited_views.py").write_text(_EDITED_MODULE.replace("import tensorflow as tf\n", "import tensorflow as tf\n\n\n\n\n\n"))
  src = _source(8)
  train = next(train_dataset(src, mod.view, global_batch=4, seed=0).as_numpy_iterator())
  ds, _ = eval_dataset(src, mod.preprocess, batch_size=4)
  evals = next(ds.as_numpy_iterator())
  assert train["x"].shape == evals["image"].shape == (4, 2, 2, 3)
  np.testing.assert_allclose(evals["image"][:, 0, 0, 0], np.arange(4))
