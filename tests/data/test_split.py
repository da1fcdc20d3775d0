"""split_validation: a disjoint, covering, class-balanced, seeded split with clear errors."""

import collections
import dataclasses
import io
import os

import numpy as np
import pytest
from PIL import Image

from jax_ssl.data import ArraySource, DataError, load_image_folder, split_validation

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data")


def _source(class_sizes, *, seed=0, encoded=False, interleave=True):
  """Labels with the given class sizes; image i stores i in its first pixel, the rest is noise."""
  labels = np.concatenate([np.full(n, c, np.int32) for c, n in enumerate(class_sizes)])
  if interleave:  # classes mixed through the split, as in a real folder-free source
    labels = labels[np.random.default_rng(123).permutation(len(labels))]
  n = len(labels)
  images = np.random.default_rng(seed).integers(0, 256, (n, 4, 4, 3), dtype=np.uint8)
  images[:, 0, 0, 0], images[:, 0, 0, 1] = np.arange(n) % 256, np.arange(n) // 256
  extras = {"mask": np.broadcast_to(np.arange(n, dtype=np.uint16)[:, None, None], (n, 4, 4)).copy(),
            "score": np.arange(n, dtype=np.float32) * 0.5}
  if encoded:
    blobs = []
    for im in images:
      buf = io.BytesIO()
      Image.fromarray(im).save(buf, format="PNG")
      blobs.append(buf.getvalue())
    images = np.asarray(blobs, dtype=object)
  return ArraySource(images, labels, [f"c{c}" for c in range(len(class_sizes))], "synthetic",
                     encoded=encoded, extras=extras)


def _index(images):
  """Original example index of each (decoded) synthetic image."""
  return images[:, 0, 0, 0].astype(np.int64) + 256 * images[:, 0, 0, 1].astype(np.int64)


def _bytes(source):
  return collections.Counter(im if source.encoded else im.tobytes() for im in source.images)


@pytest.mark.parametrize("encoded", [False, True])
def test_disjoint_and_covering(encoded):
  src = _source([1, 2, 5, 10, 25, 41], encoded=encoded)
  train, val = split_validation(src, fraction=0.1, seed=0)
  assert len(train) + len(val) == len(src)
  assert not set(_bytes(train)) & set(_bytes(val))
  assert _bytes(train) + _bytes(val) == _bytes(src)


@pytest.mark.parametrize("fraction, expected", [
    # class sizes 1, 2, 5, 10, 25, 41; hand-computed: round() sends halves to even, every class
    # with >= 2 examples gives at least one, and a singleton class gives none.
    (0.1, [0, 1, 1, 1, 2, 4]),
    (0.5, [0, 1, 2, 5, 12, 20]),
])
def test_per_class_counts(fraction, expected):
  src = _source([1, 2, 5, 10, 25, 41])
  train, val = split_validation(src, fraction=fraction, seed=3)
  np.testing.assert_array_equal(np.bincount(val.labels, minlength=6), expected)
  np.testing.assert_array_equal(np.bincount(train.labels, minlength=6),
                                np.array([1, 2, 5, 10, 25, 41]) - expected)


def test_large_fraction_keeps_every_class_in_train():
  # round(0.9 * 2) = 2 and round(0.9 * 3) = 3 would empty those classes in train.
  train, val = split_validation(_source([2, 3, 10]), fraction=0.9)
  np.testing.assert_array_equal(np.bincount(val.labels), [1, 2, 9])
  np.testing.assert_array_equal(np.bincount(train.labels), [1, 1, 1])


def test_order_labels_and_extras_follow_the_images():
  src = _source([3, 8, 20])
  for part in split_validation(src, fraction=0.3, seed=1):
    idx = _index(part.images)
    assert np.all(np.diff(idx) > 0), "both splits keep the source's index order"
    np.testing.assert_array_equal(part.labels, src.labels[idx])
    assert part.labels.dtype == src.labels.dtype
    assert set(part.extras) == {"mask", "score"}
    np.testing.assert_array_equal(part.extras["mask"], src.extras["mask"][idx])
    np.testing.assert_array_equal(part.extras["score"], idx * 0.5)
    assert part.extras["mask"].shape == (len(part), 4, 4)


def test_encoded_extras_are_sliced_too():
  src = _source([4, 6], encoded=True)
  masks = np.empty(len(src), dtype=object)
  masks[:] = [f"png{i}".encode() for i in range(len(src))]
  src = dataclasses.replace(src, extras={"mask": masks})
  for part in split_validation(src, fraction=0.5):
    idx = _index(np.stack([np.asarray(Image.open(io.BytesIO(b))) for b in part.images]))
    assert part.encoded and part.image_shape is None
    assert list(part.extras["mask"]) == [f"png{i}".encode() for i in idx]


def test_names_class_names_and_source_untouched():
  src = _source([5, 5])
  before = src.images.copy(), src.labels.copy()
  train, val = split_validation(src, fraction=0.2)
  assert train.name == "synthetic[train-val0.2]" and val.name == "synthetic[val0.2]"
  assert list(train.class_names) == list(val.class_names) == ["c0", "c1"]
  assert not train.encoded and not val.encoded and train.image_shape == (4, 4, 3)
  np.testing.assert_array_equal(src.images, before[0])
  np.testing.assert_array_equal(src.labels, before[1])


def test_seeded_deterministic_and_seed_dependent():
  src = _source([30, 40, 50])
  a = split_validation(src, fraction=0.2, seed=7)[1]
  b = split_validation(src, fraction=0.2, seed=7)[1]
  c = split_validation(src, fraction=0.2, seed=8)[1]
  np.testing.assert_array_equal(a.images, b.images)
  np.testing.assert_array_equal(a.extras["mask"], b.extras["mask"])
  assert not np.array_equal(_index(a.images), _index(c.images))
  np.testing.assert_array_equal(np.bincount(a.labels), np.bincount(c.labels))


def test_pinned_split():
  # Guards "same seed, same split on any machine": changes if the draw order or NumPy's
  # permutation algorithm changes, which would silently move examples between splits.
  src = _source([4, 6, 10], interleave=False)
  _, val = split_validation(src, fraction=0.25, seed=0)
  # Classes 0 (4 examples), 1 (6) and 2 (10) give 1, 2 (1.5 rounds to even) and 2 (2.5 likewise).
  np.testing.assert_array_equal(_index(val.images), [2, 7, 9, 12, 19])


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5, float("nan"), True, "0.1", None])
def test_bad_fraction(fraction):
  with pytest.raises(DataError, match=r"synthetic: validation fraction must be a number strictly "
                                      r"between 0 and 1"):
    split_validation(_source([5, 5]), fraction=fraction)


def test_unlabeled_source():
  src = _source([5, 5])
  with pytest.raises(DataError, match=r"synthetic: the source has no labels"):
    split_validation(dataclasses.replace(src, labels=np.full(len(src), -1, np.int32)))
  no_labels = _source([5, 5])
  no_labels.labels = None
  with pytest.raises(DataError, match=r"synthetic: the source has no labels"):
    split_validation(no_labels)
  partly = src.labels.copy()
  partly[:3] = -1
  with pytest.raises(DataError, match=r"3 of 10 examples have no label \(-1\)"):
    split_validation(dataclasses.replace(src, labels=partly))
  with pytest.raises(DataError, match=r"labels must be integer class ids, got dtype float32"):
    split_validation(dataclasses.replace(src, labels=src.labels.astype(np.float32)))


def test_empty_validation_and_bad_extras():
  with pytest.raises(DataError, match=r"validation split \(fraction=0.5\) is empty: every class has a "
                                      r"single example"):
    split_validation(_source([1, 1, 1]), fraction=0.5)
  src = _source([5, 5])
  with pytest.raises(DataError, match=r"extras\['mask'\] must be a per-example array of length 10"):
    split_validation(dataclasses.replace(src, extras={"mask": src.extras["mask"][:4]}))


def test_shared_cifar_subset_is_class_balanced():
  src = load_image_folder(os.path.join(SHARED, "cifar10_subset"), "train")
  assert len(src) == 4153
  train, val = split_validation(src, fraction=0.1, seed=0)
  n_c = np.bincount(src.labels, minlength=10)
  expected = np.array([round(0.1 * n) for n in n_c])
  np.testing.assert_array_equal(np.bincount(val.labels, minlength=10), expected)
  np.testing.assert_array_equal(np.bincount(train.labels, minlength=10), n_c - expected)
  assert 410 <= len(val) <= 420 and len(train) == 4153 - len(val)
  assert list(val.class_names) == list(src.class_names)
  assert not set(_bytes(train)) & set(_bytes(val))
  assert _bytes(train) + _bytes(val) == _bytes(src)
