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


def test_unlabeled_folders_flat_and_nested(tmp_path):
  # Flat: images directly in the split folder are unlabeled data ("auto").
  for i in range(3):
    _write(str(tmp_path / f"flat/unlabelled/img{i}.png"), _rgb(seed=i))
  src = load_image_folder(str(tmp_path / "flat"), "unlabelled")
  assert len(src) == 3 and src.num_classes == 0 and not src.labeled
  np.testing.assert_array_equal(src.labels, [-1, -1, -1])
  np.testing.assert_array_equal(src.images[1], _rgb(seed=1))
  # Nested without classes: explicit labels="none" reads every image at any depth, in sorted order.
  _write(str(tmp_path / "nested/train/shard0/a/x.png"), _rgb(seed=4))
  _write(str(tmp_path / "nested/train/shard1/y.jpg"), _rgb(16, 16, seed=5), "JPEG")
  _write(str(tmp_path / "nested/train/z.png"), _rgb(seed=6))
  src = load_source(kind="folder", path=str(tmp_path / "nested"), split="train", labels="none")
  assert len(src) == 3 and not src.labeled and src.encoded  # mixed sizes stay encoded
  assert load_image_folder(str(tmp_path / "nested"), "train").name == src.name  # "auto": z.png at the top
  # Labelled folders are still labelled under "auto".
  _write(str(tmp_path / "lab/train/cat/a.png"), _rgb(seed=7))
  assert load_image_folder(str(tmp_path / "lab"), "train").labeled
  os.makedirs(tmp_path / "empty/train/sub")
  with pytest.raises(DataError, match="no images found"):
    load_image_folder(str(tmp_path / "empty"), "train", labels="none")
  with pytest.raises(DataError, match="labels must be"):
    load_image_folder(str(tmp_path / "lab"), "train", labels="maybe")


def _cifar_copy(root, per_class=3):
  for cls in sorted(os.listdir(os.path.join(SHARED, "cifar10_subset", "train")))[:3]:
    src = os.path.join(SHARED, "cifar10_subset", "train", cls)
    os.makedirs(os.path.join(root, "train", cls))
    for name in sorted(os.listdir(src))[:per_class]:
      with open(os.path.join(src, name), "rb") as f, open(os.path.join(root, "train", cls, name), "wb") as g:
        g.write(f.read())
  return root


def test_file_backed_folder_gives_the_batches_of_the_in_memory_one(tmp_path, monkeypatch):
  import jax_ssl.data._sources as sources_mod
  from jax_ssl.data import as_numpy_iterator, split_validation, train_dataset

  root = _cifar_copy(str(tmp_path))
  mem = load_image_folder(root, "train", storage="memory")
  files = load_image_folder(root, "train", storage="files")
  assert files.files and not mem.files and len(files) == len(mem) == 9
  assert all(isinstance(p, str) and p.endswith(".png") for p in files.images)  # paths only, nothing decoded
  np.testing.assert_array_equal(files.labels, mem.labels)
  np.testing.assert_array_equal(files.image(4), mem.images[4])
  view = lambda ex, seed: {"image": ex["image"], "index": ex["index"], "label": ex["label"]}
  a = list(as_numpy_iterator(train_dataset(mem, view, global_batch=3, seed=1).take(6), mem))
  b = list(as_numpy_iterator(train_dataset(files, view, global_batch=3, seed=1).take(6), files))
  for x, y in zip(a, b):
    for k in x:
      np.testing.assert_array_equal(x[k], y[k])
  rest, val = split_validation(files, fraction=0.34, seed=0)
  assert rest.files and val.files and len(rest) + len(val) == 9
  # "auto" keeps small folders in memory and streams large ones.
  assert not load_image_folder(root, "train").files
  monkeypatch.setattr(sources_mod, "MAX_IN_MEMORY_BYTES", 1000)
  assert load_image_folder(root, "train").files
  with pytest.raises(DataError, match="storage must be"):
    load_image_folder(root, "train", storage="disk")


def test_corrupt_file_in_a_file_backed_folder_is_named(tmp_path):
  from jax_ssl.data import as_numpy_iterator, train_dataset, validate_files

  root = _cifar_copy(str(tmp_path))
  bad = os.path.join(root, "train", sorted(os.listdir(os.path.join(root, "train")))[1], "broken.png")
  with open(bad, "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n not a png at all")
  src = load_image_folder(root, "train", storage="files")  # listing does not decode
  with pytest.raises(DataError, match="broken.png"):
    validate_files(src, workers=2)
  view = lambda ex, seed: {"image": ex["image"]}
  with pytest.raises(DataError, match=r"folder:.*train: an image could not be read or decoded.*validate_files"):
    list(as_numpy_iterator(train_dataset(src, view, global_batch=2, seed=0).take(20), src))
  os.remove(bad)
  validate_files(load_image_folder(root, "train", storage="files"))  # a clean folder passes
