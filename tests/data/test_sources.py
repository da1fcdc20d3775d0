"""Image-folder and TFDS sources: loading, conversions, and clear errors on bad input."""

import os

import numpy as np
import pytest
from PIL import Image

from jax_ssl.data import DataError, load_image_folder, load_source

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data")


def _write(path, arr, fmt=None):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(arr).save(path, format=fmt)


def _rgb(h=8, w=8, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_loads_shared_cifar_subset_exactly():
  src = load_image_folder(os.path.join(SHARED, "cifar10_subset"), "test")
  assert len(src) == 1017
  assert src.images.shape == (1017, 32, 32, 3) and src.images.dtype == np.uint8
  assert list(src.class_names)[:3] == ["airplane", "automobile", "bird"]
  assert set(np.unique(src.labels)) == set(range(10))
  # Pixels are the PNG's exactly.
  first = os.path.join(SHARED, "cifar10_subset", "test", "airplane", sorted(
      os.listdir(os.path.join(SHARED, "cifar10_subset", "test", "airplane")))[0])
  np.testing.assert_array_equal(src.images[0], np.asarray(Image.open(first).convert("RGB")))


def test_variable_size_photos_stay_encoded():
  src = load_image_folder(os.path.join(SHARED, "hymenoptera_data"), "val")
  assert src.encoded and len(src) == 153 and src.class_names == ["ants", "bees"]


def test_grayscale_and_rgba_are_converted_to_rgb(tmp_path):
  _write(str(tmp_path / "train/a/rgb.png"), _rgb())
  _write(str(tmp_path / "train/a/gray.png"), _rgb()[..., 0])
  rgba = np.concatenate([_rgb(seed=1), np.full((8, 8, 1), 7, np.uint8)], -1)
  _write(str(tmp_path / "train/b/rgba.png"), rgba)
  src = load_image_folder(str(tmp_path), "train")
  assert src.images.shape == (3, 8, 8, 3)
  gray = src.images[0]  # sorted: gray.png before rgb.png
  assert np.all(gray[..., 0] == gray[..., 1])
  np.testing.assert_array_equal(src.images[2], rgba[..., :3])
  np.testing.assert_array_equal(src.labels, [0, 0, 1])


def test_non_image_file_is_named(tmp_path):
  _write(str(tmp_path / "train/a/ok.png"), _rgb())
  (tmp_path / "train/a/notes.txt").write_text("hello")
  with pytest.raises(DataError, match=r"notes\.txt: not an image file"):
    load_image_folder(str(tmp_path), "train")


def test_corrupt_and_truncated_files_are_named(tmp_path):
  _write(str(tmp_path / "train/a/ok.png"), _rgb())
  (tmp_path / "train/a/bad.png").write_bytes(b"this is not a png")
  with pytest.raises(DataError, match=r"bad\.png: not a readable image"):
    load_image_folder(str(tmp_path), "train")
  os.remove(tmp_path / "train/a/bad.png")
  _write(str(tmp_path / "train/a/big.jpg"), _rgb(64, 64), fmt="JPEG")
  data = (tmp_path / "train/a/big.jpg").read_bytes()
  (tmp_path / "train/a/big.jpg").write_bytes(data[: len(data) // 2])
  with pytest.raises(DataError, match=r"big\.jpg: not a readable image"):
    load_image_folder(str(tmp_path), "train")


def test_empty_split_and_missing_split(tmp_path):
  os.makedirs(tmp_path / "train/a")
  with pytest.raises(DataError, match="split is empty"):
    load_image_folder(str(tmp_path), "train")
  with pytest.raises(DataError, match="split not found"):
    load_image_folder(str(tmp_path), "test")
  with pytest.raises(DataError, match="unknown data source kind"):
    load_source(kind="csv", split="train", path=str(tmp_path))


def test_test_split_labels_follow_train_classes(tmp_path):
  for c in ("a", "b", "c"):
    _write(str(tmp_path / f"train/{c}/x.png"), _rgb())
  _write(str(tmp_path / "test/c/y.png"), _rgb())
  src = load_image_folder(str(tmp_path), "test", class_names=["a", "b", "c"])
  np.testing.assert_array_equal(src.labels, [2])
  assert src.num_classes == 3


def test_tfds_by_name_with_mock_data():
  import tensorflow_datasets as tfds

  with tfds.testing.mock_data(num_examples=12):
    src = load_source(kind="tfds", name="cifar10", split="train")
  assert len(src) == 12 and src.images.shape == (12, 32, 32, 3)
  assert src.num_classes == 10 and src.name == "tfds:cifar10/train"
