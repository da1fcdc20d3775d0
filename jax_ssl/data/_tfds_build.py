"""Write image folders (or in-memory images) as a real, prepared TFDS dataset, offline.

`build_tfds_dataset` prepares `DATA_DIR/NAME/1.0.0/` with TFDS's own writer: ArrayRecord
shards (random access, what `load_tfds` streams from) or TFRecord shards, the dataset_info
and the label names, exactly what `tfds build` would leave. `tfds.builder(NAME,
data_dir=DATA_DIR)` then reads it by name like any catalogue dataset (no registration, no
network). Uses: a local folder converted once for fast streaming on every host; the tests'
and benchmarks' TFDS datasets built from the shared images (ImageNet-shaped ones included).
"""

from __future__ import annotations

import os
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from jax_ssl.data._sources import DataError

# split -> callable yielding (encoded image bytes, label int (-1: unlabeled))
SplitFn = Callable[[], Iterable[tuple[bytes, int]]]


def build_tfds_dataset(name: str, data_dir: str, splits: Mapping[str, SplitFn], *,
                       class_names: Sequence[str] = (), image_shape=(None, None, 3),
                       file_format: str = "array_record", encoding: str = "jpeg",
                       num_shards: int | None = None) -> str:
  """Prepares a TFDS image-classification dataset from encoded images; returns its folder.

  Args:
    name: the dataset's name (snake_case), used as `tfds.builder(name, data_dir=data_dir)`.
    data_dir: the TFDS data directory.
    splits: split name -> function yielding (encoded PNG/JPEG bytes, label); a label of -1
      everywhere makes an unlabeled split (no "label" feature when `class_names` is empty).
    class_names: label names; empty for an unlabeled dataset.
    image_shape: the image feature's shape, e.g. (32, 32, 3) or (None, None, 3).
    file_format: "array_record" (random access: streamed) or "tfrecord".
    encoding: the image feature's declared encoding, "jpeg" or "png"; the given bytes are
      stored unchanged.
    num_shards: shards per split (default: TFDS chooses by size).
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  if file_format not in ("array_record", "tfrecord"):
    raise DataError(f"file_format must be 'array_record' or 'tfrecord', got {file_format!r}")
  features = {"image": tfds.features.Image(shape=tuple(image_shape), encoding_format=encoding)}
  if class_names:
    features["label"] = tfds.features.ClassLabel(names=list(class_names))
  labeled = bool(class_names)

  class _Builder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
      return self.dataset_info_from_configs(features=tfds.features.FeaturesDict(features),
                                            supervised_keys=("image", "label") if labeled else None)

    def _split_generators(self, dl_manager):
      del dl_manager
      return {split: self._generate_examples(fn) for split, fn in splits.items()}

    def _generate_examples(self, fn):
      for i, (blob, label) in enumerate(fn()):
        ex = {"image": blob}  # encoded bytes are stored as they are (as TFDS's ImageNet stores its JPEGs)
        if labeled:
          ex["label"] = int(label)
        yield i, ex

  _Builder.name = name
  builder = _Builder(data_dir=data_dir, file_format=file_format)
  config = tfds.download.DownloadConfig(num_shards=num_shards) if num_shards else None
  builder.download_and_prepare(download_config=config)
  return builder.data_dir


def folder_split(paths: Sequence[str], labels: Sequence[int], *, repeat: int = 1) -> SplitFn:
  """A `SplitFn` over image files (read lazily), the list repeated `repeat` times."""
  def gen():
    for _ in range(repeat):
      for path, label in zip(paths, labels):
        with open(path, "rb") as f:
          yield f.read(), int(label)
  return gen


def array_split(images: np.ndarray, labels: Sequence[int]) -> SplitFn:
  """A `SplitFn` over uint8 [N, H, W, 3] images (PNG-encoded on the fly)."""
  def gen():
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    for image, label in zip(images, labels):
      yield tf.io.encode_png(image).numpy(), int(label)
  return gen


def tfds_folder(data_dir: str, name: str) -> str:
  """The prepared folder of `name` under `data_dir` (its single version)."""
  root = os.path.join(data_dir, name)
  versions = sorted(os.listdir(root)) if os.path.isdir(root) else []
  if not versions:
    raise DataError(f"tfds:{name} is not prepared in {data_dir!r}")
  return os.path.join(root, versions[-1])
