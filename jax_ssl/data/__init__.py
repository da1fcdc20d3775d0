"""Input pipeline: sources (image folders, TFDS), tf.data pipelines and augmentation ops."""

from jax_ssl.data import ops
from jax_ssl.data._pipeline import OrderFn, as_numpy_iterator, epoch_order, eval_dataset, steps_per_epoch, train_dataset, uniform_over_groups
from jax_ssl.data._exemplar import exemplar_seeds
from jax_ssl.data._masks import BlobStore, fh_masks, fh_segment, with_masks
from jax_ssl.data._preprocess import center_view
from jax_ssl.data._sources import (MAX_IN_MEMORY_BYTES, ArraySource, DataError, RecordLabels, RecordStore,
                                   list_image_folder, load_image_folder, load_source, load_tfds, validate_files)
from jax_ssl.data._tfds_build import array_split, build_tfds_dataset, folder_split
from jax_ssl.data._split import label_subset, split_validation, take_examples

__all__ = ["ops", "BlobStore", "OrderFn", "as_numpy_iterator", "epoch_order", "uniform_over_groups", "eval_dataset", "steps_per_epoch", "train_dataset", "center_view", "fh_masks",
           "fh_segment", "with_masks", "ArraySource", "DataError", "list_image_folder", "load_image_folder", "load_source", "load_tfds",
           "validate_files", "MAX_IN_MEMORY_BYTES", "RecordLabels", "RecordStore", "array_split",
           "build_tfds_dataset", "exemplar_seeds", "folder_split",
           "label_subset", "split_validation", "take_examples"]
