"""Data sources: random-access examples from image folders or TFDS.

A source addresses every example of one split by index so the pipeline can draw any global
permutation (exact resume, identical batches on any number of processes). Three storages:
decoded in memory (uint8 [N, H, W, 3]) when all images share one size, encoded bytes in
memory decoded per example in tf.data, or (`files=True`, large folders) only the file paths,
read and decoded per example, or (`records`, TFDS datasets prepared as ArrayRecord) only a
random-access reader of the prepared shards, so host memory does not grow with the dataset
(labels of a record source are read from the records in the pipeline, and as an array only
when asked for: `np.asarray(source.labels)`). In-memory
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
    files: `images` holds file paths (read per example).
    records: a `RecordStore` (a prepared TFDS split read by index); `images` then holds
      int64 indices into the store (so a split of the source is a subset of indices) and
      `labels` is a `RecordLabels` (read from the records on first use as an array).
  """

  images: np.ndarray
  labels: np.ndarray
  class_names: Sequence[str]
  name: str
  encoded: bool = False
  extras: dict = dataclasses.field(default_factory=dict)
  files: bool = False
  records: "RecordStore | None" = None

  def __post_init__(self):
    if (self.files or self.records is not None) and not self.encoded:
      raise DataError(f"{self.name}: a file- or record-backed source is encoded (needs encoded=True)")
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
    """Whether any example has a label (unlabeled folders and TFDS splits have -1 everywhere).

    A record source is judged by its first 64 examples (reading every label of a streamed
    split just to answer this would read the whole split)."""
    if not self.num_classes:
      return False
    if self.records is not None:
      head = self.images[:64]
      return bool(np.any(np.asarray([self.records.parse_np(r)[1] for r in self.records.read(head)]) >= 0))
    return bool(np.any(np.asarray(self.labels) >= 0))

  def blob(self, i: int) -> bytes:
    """The encoded bytes of example `i` (encoded sources only)."""
    if not self.encoded:
      raise DataError(f"{self.name}: a decoded source has no encoded bytes")
    if self.records is not None:
      return self.records.parse_np(self.records.read([self.images[i]])[0])[0]
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


class RecordStore:
  """Random access to the serialized examples of one prepared TFDS split (ArrayRecord shards).

  Reads go through TFDS's `as_data_source` (array_record's reader, safe from several
  threads); a record is a `tf.train.Example` whose image bytes and label are parsed in
  tf.data (`parse`) or in Python (`parse_np`). Nothing of the split is kept in memory
  except, once asked for, its labels.
  """

  def __init__(self, builder, split: str, image_key: str, label_key: str | None):
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

    self.name = f"tfds:{builder.name}/{split}"
    self.data_dir, self.split = str(builder.data_dir), split
    self.image_key, self.label_key = image_key, label_key
    self._source = builder.as_data_source(split=split, deserialize_method=tfds.decode.DeserializeMethod.RAW_BYTES)
    self._labels = None

  def __len__(self) -> int:
    return len(self._source)

  def read(self, indices) -> list[bytes]:
    """The serialized records at `indices` (store positions)."""
    return list(self._source.__getitems__([int(i) for i in np.asarray(indices).reshape(-1)]))

  def parse(self, record):
    """tf.data: a serialized record -> (encoded image bytes, int32 label; -1 when unlabeled)."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    spec = {self.image_key: tf.io.FixedLenFeature([], tf.string)}
    if self.label_key:
      spec[self.label_key] = tf.io.FixedLenFeature([], tf.int64)
    ex = tf.io.parse_single_example(record, spec)
    label = tf.cast(ex[self.label_key], tf.int32) if self.label_key else tf.constant(-1, tf.int32)
    return ex[self.image_key], label

  def parse_np(self, record: bytes) -> tuple[bytes, int]:
    """Python: a serialized record -> (encoded image bytes, label; -1 when unlabeled)."""
    from tensorflow.core.example import example_pb2  # pylint: disable=g-import-not-at-top

    feature = example_pb2.Example.FromString(record).features.feature
    label = int(feature[self.label_key].int64_list.value[0]) if self.label_key else -1
    return feature[self.image_key].bytes_list.value[0], label

  def labels(self, *, chunk: int = 1024, workers: int | None = None) -> np.ndarray:
    """Every record's label (int32 [len]), read once in `workers` threads and kept."""
    if self._labels is None:
      if not self.label_key:
        self._labels = np.full((len(self),), -1, np.int32)
      else:
        from concurrent.futures import ThreadPoolExecutor  # pylint: disable=g-import-not-at-top

        def part(lo):
          return [self.parse_np(r)[1] for r in self.read(range(lo, min(lo + chunk, len(self))))]

        with ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:
          parts = list(pool.map(part, range(0, len(self), chunk)))
        self._labels = np.asarray([x for p in parts for x in p], np.int32)
    return self._labels

  def fingerprint(self) -> bytes:
    """Identifies the prepared files (paths, sizes, modification times) without reading them."""
    parts = [self.name]
    for dirpath, _, names in sorted(os.walk(self.data_dir)):
      for fname in sorted(names):
        st = os.stat(os.path.join(dirpath, fname))
        parts.append(f"{fname}\0{st.st_size}\0{st.st_mtime_ns}")
    return "\n".join(parts).encode()


class RecordLabels:
  """The labels of a record source's examples, read from the records only when needed.

  Behaves as the label array where it is used: `len`, indexing by an index array (a subset,
  still lazy), and `np.asarray(labels)` (reads every label of the store once, in parallel).
  """

  def __init__(self, store: RecordStore, index: np.ndarray):
    self.store, self.index = store, np.asarray(index, np.int64)

  def __len__(self) -> int:
    return len(self.index)

  def __getitem__(self, index):
    if isinstance(index, (int, np.integer)):
      return int(self.store.labels()[self.index[index]])
    return RecordLabels(self.store, self.index[index])

  def __array__(self, dtype=None, copy=None):
    out = self.store.labels()[self.index]
    return out.astype(dtype) if dtype is not None else out


def _tfds_builder(name: str, split: str, data_dir: str | None, download: bool):
  """`tfds.builder` with one clear error for an unknown, unprepared or split-less dataset."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError as e:
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise DataError(f"tfds:{name}: no such dataset, neither in the TFDS catalogue nor prepared in "
                    f"data_dir={data_dir!r} ({first})") from None
  if download:
    builder.download_and_prepare()
  if not builder.is_prepared():
    raise DataError(f"tfds:{name} is not prepared in {str(builder.data_dir)!r} and download=False; "
                    "prepare it there (`tfds build`, or download=True on a machine with internet), "
                    "or set data_dir to where it is prepared")
  try:
    builder.info.splits[split]
  except (KeyError, ValueError) as e:
    raise DataError(f"tfds:{name} has no split {split!r} (splits: {sorted(builder.info.splits)}; "
                    f"{' '.join(str(e).split())[:200]})") from None
  return builder


def load_tfds(name: str, split: str, *, data_dir: str | None = None, download: bool = False,
              image_key: str = "image", label_key: str = "label", storage: str = "auto") -> ArraySource:
  """A TFDS split (by dataset name): in memory, or streamed from its ArrayRecord files.

  Downloads only when `download=True`; otherwise the dataset must already be prepared in
  `data_dir` (or the TFDS default), and a clear error says so.

  storage: "memory" (every example read now; fixed-size images decoded), "files" (streamed:
    a `RecordStore` reads each example by index from the prepared ArrayRecord shards, so
    memory does not grow with the split; TFRecord-prepared datasets cannot be read by index
    and are an error naming the fix), or "auto": "memory" up to `MAX_IN_MEMORY_BYTES` of
    prepared files, else "files".
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  if storage not in ("auto", "memory", "files"):
    raise DataError(f"storage must be 'auto', 'memory' or 'files', got {storage!r}")
  builder = _tfds_builder(name, split, data_dir, download)
  feats = builder.info.features
  if image_key not in feats:
    raise DataError(f"tfds:{name} has no feature {image_key!r}; features: {list(feats)}")
  has_label = label_key in feats
  class_names = list(feats[label_key].names) if has_label else []
  src_name = f"tfds:{name}/{split}"
  if storage == "auto":
    storage = "files" if builder.info.splits[split].num_bytes > MAX_IN_MEMORY_BYTES else "memory"
  formats = [str(f.value) if hasattr(f, "value") else str(f) for f in builder.info.available_file_formats()]
  if storage == "files" and "array_record" not in formats:
    size = builder.info.splits[split].num_bytes / 2**30
    raise DataError(f"{src_name} is prepared as {', '.join(formats) or 'tfrecord'} ({size:.1f} GiB), which "
                    "cannot be read by example index; prepare it as ArrayRecord (`tfds build "
                    f"{name} --file_format=array_record`) to stream it, or set data.storage=memory to "
                    "load it into memory")
  if "array_record" in formats:  # TFDS reads ArrayRecord only by index (no `as_dataset`)
    store = RecordStore(builder, split, image_key, label_key if has_label else None)
    if not len(store):
      raise DataError(f"{src_name}: the split is empty")
    if storage == "files":
      index = np.arange(len(store), dtype=np.int64)
      return ArraySource(index, RecordLabels(store, index), class_names, src_name, encoded=True, records=store)
    parsed = [store.parse_np(r) for lo in range(0, len(store), 1024)
              for r in store.read(range(lo, min(lo + 1024, len(store))))]
    blobs, labels = [b for b, _ in parsed], [y for _, y in parsed]
  else:
    ds = builder.as_dataset(split=split, decoders={image_key: tfds.decode.SkipDecoding()}, shuffle_files=False)
    blobs, labels = [], []
    for ex in tfds.as_numpy(ds):
      blobs.append(ex[image_key])
      labels.append(int(ex[label_key]) if has_label else -1)
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

  `labels` ("auto" | "folders" | "none") applies to folders (see `load_image_folder`);
  `storage` ("auto" | "memory" | "files") to both (see `load_image_folder`, `load_tfds`).
  """
  if kind == "folder":
    if not path:
      raise DataError("data source 'folder' needs a path (ROOT with ROOT/SPLIT/CLASS/IMAGE files)")
    return load_image_folder(path, split, class_names=class_names, labels=labels, storage=storage)
  if kind == "tfds":
    if not name:
      raise DataError("data source 'tfds' needs a dataset name (e.g. 'cifar10')")
    return load_tfds(name, split, data_dir=data_dir, download=download, storage=storage)
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
