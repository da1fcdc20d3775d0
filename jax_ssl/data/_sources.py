"""Data sources: random-access, in-memory examples from image folders or TFDS.

A source holds every example of one split so the pipeline can draw any global permutation
(exact resume, identical batches on any number of processes). Images are kept decoded
(uint8 [N, H, W, 3]) when all share one size, else as encoded bytes decoded per example in
tf.data. Folder images are checked once at load time, so a bad file fails with its name
instead of crashing a worker mid-run.

File conventions (documented conversions): grayscale, palette, CMYK and RGBA/LA images are
converted to RGB (alpha dropped, pixels not composited); hidden files (".*") are skipped;
any other file whose extension is not an image extension is an error.
"""

from __future__ import annotations

import dataclasses
import io
import os
from typing import Sequence

import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


class DataError(ValueError):
  """Raised for unusable input data; the message names the offending file or split."""


@dataclasses.dataclass
class ArraySource:
  """All examples of one split, in memory.

  Attributes:
    images: uint8 [N, H, W, 3] when `encoded` is False, else an object array of N encoded
      image byte strings (PNG/JPEG), decoded per example by the pipeline.
    labels: int32 [N] class ids (-1 where unknown).
    class_names: names of the classes, index = label.
    name: a human-readable name (e.g. "folder:/data/cifar/train" or "tfds:cifar10/train").
    extras: optional per-example arrays the training pipeline adds to each example dict under
      their key (e.g. DetCon's segmentation masks, "mask"): either an array [N, ...] or, for
      images of varying size, an object array of N PNG-encoded single-channel uint8/uint16
      maps, decoded to [H, W] per example.
  """

  images: np.ndarray
  labels: np.ndarray
  class_names: Sequence[str]
  name: str
  encoded: bool = False
  extras: dict = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    if len(self.images) == 0:
      raise DataError(f"{self.name}: the split is empty (no images found)")
    if len(self.images) != len(self.labels):
      raise DataError(f"{self.name}: {len(self.images)} images but {len(self.labels)} labels")

  def __len__(self) -> int:
    return len(self.images)

  @property
  def num_classes(self) -> int:
    return len(self.class_names)

  @property
  def image_shape(self):
    """(H, W, 3) for decoded sources, None when sizes vary."""
    return None if self.encoded else tuple(self.images.shape[1:])


def _read_rgb(path: str):
  """Decode and validate one file; returns (uint8 [H, W, 3], encoded bytes)."""
  from PIL import Image, UnidentifiedImageError  # pylint: disable=g-import-not-at-top

  with open(path, "rb") as f:
    data = f.read()
  if not data:
    raise DataError(f"{path}: empty file, not an image")
  try:
    with Image.open(io.BytesIO(data)) as im:
      im.load()  # forces a full decode: truncated JPEG/PNG files raise here
      fmt, mode = im.format, im.mode
      if im.mode != "RGB":
        im = im.convert("RGB")
      arr = np.asarray(im, dtype=np.uint8)
  except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
    raise DataError(f"{path}: not a readable image ({type(e).__name__}: {e})") from None
  if arr.ndim != 3 or arr.shape[0] < 1 or arr.shape[1] < 1:
    raise DataError(f"{path}: decoded to an unexpected shape {arr.shape}")
  if fmt not in ("PNG", "JPEG") or mode not in ("RGB", "L"):
    # Keep what tf.io.decode_image reads the same as what PIL converted (CMYK, palette, alpha).
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    data = buf.getvalue()
  return arr, data


def list_image_folder(root: str, split: str):
  """Lists `root/split/CLASS/IMAGE` files; returns (paths, labels, class_names)."""
  split_dir = os.path.join(root, split)
  if not os.path.isdir(split_dir):
    raise DataError(f"image folder split not found: {split_dir}")
  class_names = sorted(d for d in os.listdir(split_dir)
                       if not d.startswith(".") and os.path.isdir(os.path.join(split_dir, d)))
  if not class_names:
    raise DataError(f"{split_dir}: no class folders (expected {split_dir}/CLASS/IMAGE files)")
  paths, labels = [], []
  for label, name in enumerate(class_names):
    class_dir = os.path.join(split_dir, name)
    for fname in sorted(os.listdir(class_dir)):
      if fname.startswith("."):
        continue
      path = os.path.join(class_dir, fname)
      if os.path.isdir(path):
        continue
      if not fname.lower().endswith(IMAGE_EXTENSIONS):
        raise DataError(f"{path}: not an image file (expected one of {', '.join(IMAGE_EXTENSIONS)}); "
                        "remove it or move it out of the dataset folder")
      paths.append(path)
      labels.append(label)
  if not paths:
    raise DataError(f"{split_dir}: the split is empty (no images in its class folders)")
  return paths, np.asarray(labels, np.int32), class_names


def load_image_folder(root: str, split: str, *, class_names: Sequence[str] | None = None) -> ArraySource:
  """Loads `root/split/CLASS/*.png|jpg` into memory, validating every file.

  Args:
    root: dataset root folder.
    split: split sub-folder (e.g. "train", "test", "val").
    class_names: expected classes (e.g. those of the train split) so labels agree across
      splits; a class folder not in the list is an error.
  """
  paths, labels, names = list_image_folder(root, split)
  if class_names is not None:
    unknown = sorted(set(names) - set(class_names))
    if unknown:
      raise DataError(f"{os.path.join(root, split)}: class folders {unknown} are not among {list(class_names)}")
    remap = np.asarray([list(class_names).index(n) for n in names], np.int32)
    labels = remap[labels]
    names = list(class_names)
  arrays, encoded = [], []
  for p in paths:
    arr, data = _read_rgb(p)
    arrays.append(arr)
    encoded.append(data)
  name = f"folder:{os.path.join(root, split)}"
  if len({a.shape for a in arrays}) == 1:
    return ArraySource(np.stack(arrays), labels, names, name)
  return ArraySource(np.asarray(encoded, dtype=object), labels, names, name, encoded=True)


def load_tfds(name: str, split: str, *, data_dir: str | None = None, download: bool = False,
              image_key: str = "image", label_key: str = "label") -> ArraySource:
  """Loads a TFDS split (by dataset name) into memory.

  Downloads only when `download=True`; otherwise the dataset must already be prepared in
  `data_dir` (or the TFDS default), and a clear error says so.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  builder = tfds.builder(name, data_dir=data_dir)
  if download:
    builder.download_and_prepare()
  try:
    ds = builder.as_dataset(split=split, decoders={image_key: tfds.decode.SkipDecoding()},
                            shuffle_files=False)
  except AssertionError as e:  # TFDS raises AssertionError when the data is not prepared
    raise DataError(f"tfds:{name}/{split} is not prepared in {builder.data_dir!r} and download=False "
                    f"({e}); pass download=True on a machine with internet, or set data_dir") from None
  feats = builder.info.features
  if image_key not in feats:
    raise DataError(f"tfds:{name} has no feature {image_key!r}; features: {list(feats)}")
  has_label = label_key in feats
  class_names = list(feats[label_key].names) if has_label else []
  blobs, labels = [], []
  for ex in tfds.as_numpy(ds):
    blobs.append(ex[image_key])
    labels.append(int(ex[label_key]) if has_label else -1)
  src_name = f"tfds:{name}/{split}"
  if not blobs:
    raise DataError(f"{src_name}: the split is empty")
  shape = feats[image_key].shape
  if None not in shape and shape[-1] in (1, 3):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    images = np.stack([tf.io.decode_image(b, channels=3, expand_animations=False).numpy() for b in blobs])
    return ArraySource(images, np.asarray(labels, np.int32), class_names, src_name)
  return ArraySource(np.asarray(blobs, dtype=object), np.asarray(labels, np.int32), class_names,
                     src_name, encoded=True)


def load_source(*, kind: str, split: str, path: str | None = None, name: str | None = None,
                data_dir: str | None = None, download: bool = False,
                class_names: Sequence[str] | None = None) -> ArraySource:
  """One entry point for both kinds: `kind="folder"` (path) or `kind="tfds"` (name)."""
  if kind == "folder":
    if not path:
      raise DataError("data source 'folder' needs a path (ROOT with ROOT/SPLIT/CLASS/IMAGE files)")
    return load_image_folder(path, split, class_names=class_names)
  if kind == "tfds":
    if not name:
      raise DataError("data source 'tfds' needs a dataset name (e.g. 'cifar10')")
    return load_tfds(name, split, data_dir=data_dir, download=download)
  raise DataError(f"unknown data source kind {kind!r}; expected 'folder' or 'tfds'")
