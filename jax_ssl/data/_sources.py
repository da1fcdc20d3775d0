"""Data sources: random-access examples from image folders or TFDS.

A source addresses every example of one split by index so the pipeline can draw any global
permutation (exact resume, identical batches on any number of processes). Three storages:
decoded in memory (uint8 [N, H, W, 3]) when all images share one size, encoded bytes in
memory decoded per example in tf.data, or (`files=True`, large folders) only the file paths,
read and decoded per example, so host memory does not grow with the dataset. In-memory
folder images are checked once at load time, so a bad file fails with its name instead of
crashing a worker mid-run; file-backed folders are checked by `validate_files` (parallel).

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
      image byte strings (PNG/JPEG), decoded per example by the pipeline, or with `files`
      an object array of N image file paths, read and decoded per example.
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
  files: bool = False

  def __post_init__(self):
    if self.files and not self.encoded:
      raise DataError(f"{self.name}: a file-backed source is encoded (files=True needs encoded=True)")
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
  def labeled(self) -> bool:
    """Whether any example has a label (unlabeled folders and TFDS splits have -1 everywhere)."""
    return bool(self.num_classes) and bool(np.any(np.asarray(self.labels) >= 0))

  def blob(self, i: int) -> bytes:
    """The encoded bytes of example `i` (encoded sources only)."""
    if not self.encoded:
      raise DataError(f"{self.name}: a decoded source has no encoded bytes")
    if self.files:
      with open(self.images[i], "rb") as f:
        return f.read()
    return self.images[i]

  def image(self, i: int) -> np.ndarray:
    """Example `i` as uint8 [H, W, 3], decoded as the pipeline decodes it (`tf.io.decode_image`)."""
    if not self.encoded:
      return self.images[i]
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    return tf.io.decode_image(self.blob(i), channels=3, expand_animations=False).numpy()

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


def _is_image(fname: str) -> bool:
  return fname.lower().endswith(IMAGE_EXTENSIONS)


def _list_unlabeled(split_dir: str):
  """Every image under `split_dir` (any depth, sorted paths); other non-hidden files are errors."""
  paths = []
  for dirpath, dirnames, filenames in os.walk(split_dir):
    dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
    for fname in sorted(filenames):
      if fname.startswith("."):
        continue
      path = os.path.join(dirpath, fname)
      if not _is_image(fname):
        raise DataError(f"{path}: not an image file (expected one of {', '.join(IMAGE_EXTENSIONS)}); "
                        "remove it or move it out of the dataset folder")
      paths.append(path)
  if not paths:
    raise DataError(f"{split_dir}: no images found (searched every sub-folder)")
  return paths, np.full((len(paths),), -1, np.int32), []


def list_image_folder(root: str, split: str, labels: str = "auto"):
  """Lists the images of `root/split`; returns (paths, labels, class_names).

  labels: "folders": `root/split/CLASS/IMAGE`, the class from the folder; "none": every
    image below `root/split` at any depth, unlabeled (label -1, no classes); "auto": "none"
    when `root/split` holds image files itself, else "folders".
  """
  split_dir = os.path.join(root, split)
  if not os.path.isdir(split_dir):
    raise DataError(f"image folder split not found: {split_dir}")
  if labels not in ("auto", "folders", "none"):
    raise DataError(f"labels must be 'auto', 'folders' or 'none', got {labels!r}")
  if labels == "auto":
    top = [f for f in os.listdir(split_dir) if not f.startswith(".")]
    labels = "none" if any(_is_image(f) and os.path.isfile(os.path.join(split_dir, f)) for f in top) else "folders"
  if labels == "none":
    return _list_unlabeled(split_dir)
  class_names = sorted(d for d in os.listdir(split_dir)
                       if not d.startswith(".") and os.path.isdir(os.path.join(split_dir, d)))
  if not class_names:
    raise DataError(f"{split_dir}: no class folders and no images (expected {split_dir}/CLASS/IMAGE files, "
                    f"or images in {split_dir} for unlabeled data)")
  paths, labels = [], []
  for label, name in enumerate(class_names):
    class_dir = os.path.join(split_dir, name)
    for fname in sorted(os.listdir(class_dir)):
      if fname.startswith("."):
        continue
      path = os.path.join(class_dir, fname)
      if os.path.isdir(path):
        continue
      if not _is_image(fname):
        raise DataError(f"{path}: not an image file (expected one of {', '.join(IMAGE_EXTENSIONS)}); "
                        "remove it or move it out of the dataset folder")
      paths.append(path)
      labels.append(label)
  if not paths:
    raise DataError(f"{split_dir}: the split is empty (no images in its class folders)")
  return paths, np.asarray(labels, np.int32), class_names


# Folders up to this many bytes of image files are loaded into memory by storage="auto".
MAX_IN_MEMORY_BYTES = 1 << 30
# Formats `tf.io.decode_image` reads; a file-backed folder may hold only these.
_TF_DECODABLE = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def load_image_folder(root: str, split: str, *, class_names: Sequence[str] | None = None,
                      labels: str = "auto", storage: str = "auto") -> ArraySource:
  """Loads `root/split/CLASS/*.png|jpg` (or, unlabeled, every image below `root/split`) into
  memory, validating every file.

  Args:
    root: dataset root folder.
    split: split sub-folder (e.g. "train", "test", "val").
    class_names: expected classes (e.g. those of the train split) so labels agree across
      splits; a class folder not in the list is an error.
    labels: "auto", "folders" or "none" (see `list_image_folder`).
    storage: "memory" (every image read and checked now, kept in memory), "files" (only the
      paths are kept; images are read per example, so memory does not grow with the
      dataset: for ImageNet-size folders; check them with `validate_files`), or "auto":
      "memory" up to `MAX_IN_MEMORY_BYTES` of image files, else "files".
  """
  if storage not in ("auto", "memory", "files"):
    raise DataError(f"storage must be 'auto', 'memory' or 'files', got {storage!r}")
  paths, labels, names = list_image_folder(root, split, labels)
  if class_names is not None and names:
    unknown = sorted(set(names) - set(class_names))
    if unknown:
      raise DataError(f"{os.path.join(root, split)}: class folders {unknown} are not among {list(class_names)}")
    remap = np.asarray([list(class_names).index(n) for n in names], np.int32)
    labels = remap[labels]
    names = list(class_names)
  name = f"folder:{os.path.join(root, split)}"
  if storage == "auto":
    total = 0
    for p in paths:
      total += os.path.getsize(p)
      if total > MAX_IN_MEMORY_BYTES:
        break
    storage = "files" if total > MAX_IN_MEMORY_BYTES else "memory"
  if storage == "files":
    bad = [p for p in paths if not p.lower().endswith(_TF_DECODABLE)]
    if bad:
      raise DataError(f"{bad[0]}: file-backed folders hold {', '.join(_TF_DECODABLE)} images only "
                      f"({len(bad)} other files); convert them or use storage='memory'")
    return ArraySource(np.asarray(paths, dtype=object), labels, names, name, encoded=True, files=True)
  arrays, encoded = [], []
  for p in paths:
    arr, data = _read_rgb(p)
    arrays.append(arr)
    encoded.append(data)
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
                class_names: Sequence[str] | None = None, labels: str = "auto",
                storage: str = "auto") -> ArraySource:
  """One entry point for both kinds: `kind="folder"` (path) or `kind="tfds"` (name).

  `labels` ("auto" | "folders" | "none") and `storage` ("auto" | "memory" | "files") apply to
  folders (see `load_image_folder`).
  """
  if kind == "folder":
    if not path:
      raise DataError("data source 'folder' needs a path (ROOT with ROOT/SPLIT/CLASS/IMAGE files)")
    return load_image_folder(path, split, class_names=class_names, labels=labels, storage=storage)
  if kind == "tfds":
    if not name:
      raise DataError("data source 'tfds' needs a dataset name (e.g. 'cifar10')")
    return load_tfds(name, split, data_dir=data_dir, download=download)
  raise DataError(f"unknown data source kind {kind!r}; expected 'folder' or 'tfds'")


def _check_file(path: str):
  """None if `path` decodes as the pipeline decodes it, else the error."""
  try:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    return None
  except Exception as e:  # pylint: disable=broad-except
    return f"{type(e).__name__}: {' '.join(str(e).split())[:200]}"


def validate_files(source: ArraySource, *, workers: int | None = None, chunk: int = 256) -> None:
  """Decodes every image of a file-backed source in `workers` threads (tf releases the GIL);
  raises `DataError` naming the first unreadable files. Nothing to do for in-memory sources
  (they were checked when loaded)."""
  if not source.files:
    return
  from concurrent.futures import ThreadPoolExecutor  # pylint: disable=g-import-not-at-top

  workers = workers or os.cpu_count() or 1
  with ThreadPoolExecutor(workers) as pool:
    errors = [(p, e) for p, e in zip(source.images, pool.map(_check_file, source.images, chunksize=chunk)) if e]
  if errors:
    listed = "; ".join(f"{p}: {e}" for p, e in errors[:3])
    raise DataError(f"{source.name}: {len(errors)} unreadable image file(s): {listed}"
                    + ("; ..." if len(errors) > 3 else ""))
