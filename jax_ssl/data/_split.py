"""A seeded, class-balanced validation split carved out of a labelled training source.

Why: hyperparameters and recipes (augmentation strength, temperature, probe learning rate,
epochs, ...) are chosen on a validation split held out from the training images; the test
split is only reported, never used to choose, so the reported figure stays an unbiased
estimate. `split_validation(train)` gives (train_rest, validation); pretrain and fit probes
on `train_rest`, compare recipes on `validation`, report the chosen one on `test`.
"""

from __future__ import annotations

import dataclasses
import numbers

import numpy as np

from jax_ssl.data._sources import ArraySource, DataError


def _take(source: ArraySource, index: np.ndarray, name: str) -> ArraySource:
  """The examples `index` (sorted int array) of `source`, every per-example array sliced alike."""
  extras = {}
  for key, values in source.extras.items():
    # Arrays, or per-example stores on disk indexed the same way (e.g. FH masks: data.BlobStore).
    if not (isinstance(values, np.ndarray) or hasattr(values, "__getitem__")) or not hasattr(values, "__len__") \
        or len(values) != len(source):
      got = f"length {len(values)}" if hasattr(values, "__len__") else type(values).__name__
      raise DataError(f"{source.name}: extras[{key!r}] must be a per-example array of length "
                      f"{len(source)} to be split with the images, got {got}")
    extras[key] = values[index]
  # `replace` keeps every other field (`encoded`, ...) and re-runs the ArraySource checks.
  return dataclasses.replace(source, images=source.images[index], labels=source.labels[index],
                             class_names=list(source.class_names), name=name, extras=extras)


def take_examples(source: ArraySource, index, name: str | None = None) -> ArraySource:
  """The examples `index` (ints, in order) of `source` as a source of their own (extras sliced alike)."""
  index = np.asarray(index, dtype=np.int64)
  return _take(source, index, name or f"{source.name}[{len(index)} examples]")


def split_validation(source: ArraySource, *, fraction: float = 0.1,
                     seed: int = 0) -> tuple[ArraySource, ArraySource]:
  """Splits a labelled source into (train_rest, validation), class by class.

  Conventions:
    * Class balance: a class with n_c >= 2 examples gives k_c = round(fraction * n_c) of
      them (Python's `round`: halves go to the even integer) to validation, clamped to
      [1, n_c - 1] so every class is in both splits. A class with a single example gives
      0: it stays in train_rest and is absent from validation.
    * Randomness: one `np.random.default_rng(seed)` draws a permutation of each class's
      examples in sorted label order, and the first k_c go to validation. The split
      depends only on (labels, fraction, seed): the same on any machine and any number of
      processes (PCG64's stream is platform-independent; NumPy does not promise the exact
      `permutation` algorithm across major versions, so a pinned test guards it).
    * Both outputs keep the source's order (ascending example index), every key of
      `source.extras` sliced like the images, the same `class_names`, `encoded` flag and
      label dtype; together they hold each example exactly once.
    * Names: f"{source.name}[train-val{fraction}]" and f"{source.name}[val{fraction}]".

  Args:
    source: a labelled split, labels int [N] in [0, num_classes).
    fraction: share of each class held out, strictly between 0 and 1.
    seed: which split; different seeds give different (equally balanced) splits.

  Returns:
    (train_rest, validation) ArraySources of N - V and V examples.

  Raises:
    DataError: `fraction` not in (0, 1); labels that are not integers; a source without
      labels (None, or any label < 0: a class-balanced split needs every example's class);
      an extras entry that is not a per-example array; or no class with >= 2 examples, so
      validation would be empty.
  """
  if (isinstance(fraction, bool) or not isinstance(fraction, numbers.Real)
      or not 0 < fraction < 1):
    raise DataError(f"{source.name}: validation fraction must be a number strictly between 0 and 1, "
                    f"got {fraction!r}")
  labels = None if source.labels is None else np.asarray(source.labels)
  if labels is not None and not np.issubdtype(labels.dtype, np.integer):
    raise DataError(f"{source.name}: labels must be integer class ids, got dtype {labels.dtype}")
  if labels is None or np.all(labels < 0):
    raise DataError(f"{source.name}: the source has no labels, so it cannot be split by class; "
                    "a validation split needs a labelled training split")
  unknown = int(np.sum(labels < 0))
  if unknown:
    raise DataError(f"{source.name}: {unknown} of {len(labels)} examples have no label (-1); "
                    "a class-balanced validation split needs every example's class")

  rng = np.random.default_rng(seed)
  held_out = []
  for label in np.unique(labels):  # sorted, so the draws do not depend on example order
    members = np.flatnonzero(labels == label)
    n = len(members)
    k = 0 if n < 2 else min(max(round(fraction * n), 1), n - 1)
    held_out.append(members[rng.permutation(n)[:k]])
  val_index = np.sort(np.concatenate(held_out))
  if not len(val_index):
    raise DataError(f"{source.name}: validation split (fraction={fraction}) is empty: every class has a "
                    "single example, and a class with one example stays in train")
  is_val = np.zeros(len(labels), bool)
  is_val[val_index] = True
  train_index = np.flatnonzero(~is_val)
  return (_take(source, train_index, f"{source.name}[train-val{fraction}]"),
          _take(source, val_index, f"{source.name}[val{fraction}]"))


def label_subset(source: ArraySource, *, fraction: float, seed: int = 0) -> ArraySource:
  """A seeded, class-balanced `fraction` of a labelled source (semi-supervised fine-tuning).

  Each class keeps round(fraction * n_c) of its examples (the first of one
  `np.random.default_rng(seed)` permutation per class, in sorted label order), in the
  source's order; fraction 1 returns `source`. Raises DataError for a fraction outside
  (0, 1], an unlabelled source, or a fraction that leaves a class with no example.
  """
  if not 0.0 < fraction <= 1.0:
    raise DataError(f"label fraction must be in (0, 1], got {fraction}")
  if fraction == 1.0:
    return source
  labels = np.asarray(source.labels)
  if labels.size == 0 or labels.min() < 0:
    raise DataError(f"{source.name}: a label subset needs every example's label")
  rng = np.random.default_rng(seed)
  keep = []
  for c in np.unique(labels):
    idx = np.flatnonzero(labels == c)
    k = int(round(fraction * len(idx)))
    if k == 0:
      name = source.class_names[c] if c < len(source.class_names) else str(c)
      raise DataError(f"label fraction {fraction} leaves class {name!r} ({len(idx)} examples in {source.name}) "
                      f"with no labelled example; use a fraction of at least {1 / len(idx):.3g}")
    keep.append(idx[rng.permutation(len(idx))[:k]])
  return _take(source, np.sort(np.concatenate(keep)), f"{source.name}[labels{fraction:g}]")
