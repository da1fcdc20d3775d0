"""The tf.data input pipeline: deterministic order, per-example stateless randomness.

Order. For epoch e the global order of the N examples is `argsort(uniform(seed=[seed, e]))`;
the first `steps_per_epoch * global_batch` of them make the epoch's batches (the remainder is
dropped, as every SSL recipe does). Global batch b of the epoch is split into
`process_count` contiguous slices and process p reads slice p, so a run on P processes sees
exactly the batches of a run on one process, and a run resumed at step s sees exactly the
batches an uninterrupted run would (the stream simply starts at step s).

Randomness. An example's augmentations are drawn from the stateless seed
`[seed, e * N + index]`, so they depend only on (seed, epoch, example index): not on the
process count, the number of parallel workers, or where a run was resumed.

Samplers. `order=` replaces the uniform permutation with any pure function of (seed, epoch),
e.g. `uniform_over_groups(pseudo_labels)` (DeepCluster's sampler: every cluster equally often).
Partners. `partner_key=` names an extra holding K candidate indices per example (SCAN's mined
neighbours); the pipeline draws one of them per (seed, epoch, example) and adds that example
as `example["partner"]`, so a view can be made from two images.
"""

from __future__ import annotations

import math
from typing import Callable, Iterator

import numpy as np
import tensorflow as tf

from jax_ssl.data._sources import ArraySource, DataError

AUTOTUNE = tf.data.AUTOTUNE
ViewFn = Callable[[dict, tf.Tensor], dict]
# (num_examples, seed, epoch) -> int tensor [M] of example indices, M >= the examples one epoch uses.
OrderFn = Callable[[int, int, tf.Tensor], tf.Tensor]


def _example_fn(source: ArraySource):
  """Returns index -> (uint8 [H, W, 3] image, int32 label) tensors, decoding encoded sources."""
  def decode(blob):
    img = tf.io.decode_image(blob, channels=3, expand_animations=False)
    img.set_shape([None, None, 3])
    return img

  if source.records is not None:
    # Streamed: the graph holds only the store positions; each record is read by index from
    # the prepared shards (a Python call into array_record) and parsed in tf.data.
    store, positions = source.records, tf.constant(np.asarray(source.images, np.int64))

    def read_record(position):
      return np.asarray(store.read([position])[0], dtype=object)

    def get(index):
      record = tf.numpy_function(read_record, [tf.gather(positions, index)], tf.string, stateful=False)
      blob, label = store.parse(tf.reshape(record, []))
      return decode(blob), label
    return get
  labels = tf.constant(source.labels, tf.int32)
  if source.encoded:
    # File-backed sources keep only the paths (about 100 bytes per image) in the graph.
    blobs = tf.constant(list(source.images), dtype=tf.string)
    read = tf.io.read_file if source.files else (lambda blob: blob)
    return lambda index: (decode(read(tf.gather(blobs, index))), tf.gather(labels, index))
  images = tf.constant(source.images)
  return lambda index: (tf.gather(images, index), tf.gather(labels, index))


def _extra_fns(source: ArraySource) -> dict:
  """key -> (index -> tensor) for the source's per-example extras (e.g. segmentation masks)."""
  fns = {}
  for key, values in source.extras.items():
    if key in ("image", "label", "index"):
      raise DataError(f"{source.name}: extra {key!r} would replace the example's own {key!r}")
    if len(values) != len(source):
      raise DataError(f"{source.name}: extra {key!r} has {len(values)} entries for {len(source)} examples")
    if not isinstance(values, np.ndarray):  # a store on disk (e.g. FH masks): read by index
      def read(i, store=values):
        return np.asarray(store[int(i)], dtype=object)

      fns[key] = lambda i, r=read: tf.io.decode_png(
          tf.reshape(tf.numpy_function(r, [i], tf.string, stateful=False), []), channels=1, dtype=tf.uint16)[..., 0]
    elif values.dtype == object:  # PNG-encoded maps of varying size
      blobs = tf.constant(list(values), dtype=tf.string)
      fns[key] = lambda i, b=blobs: tf.io.decode_png(tf.gather(b, i), channels=1, dtype=tf.uint16)[..., 0]
    else:
      table = tf.constant(values)
      fns[key] = lambda i, t=table: tf.gather(t, i)
  return fns


def steps_per_epoch(num_examples: int, global_batch: int) -> int:
  steps = num_examples // global_batch
  if steps == 0:
    raise DataError(f"global batch {global_batch} is larger than the {num_examples} training examples")
  return steps


def epoch_order(num_examples: int, seed: int, epoch) -> tf.Tensor:
  """The global example order of one epoch (int64 [N]); a pure function of (seed, epoch)."""
  u = tf.random.stateless_uniform([num_examples], seed=tf.stack([tf.cast(seed, tf.int64),
                                                                 tf.cast(epoch, tf.int64)]))
  return tf.argsort(u, stable=True)


def uniform_over_groups(groups) -> OrderFn:
  """An epoch order that samples every non-empty group equally often (DeepCluster's sampler).

  Follows the official `UnifLabelSampler` (Caron et al. 2018, Sec. 3.3, "Empty clusters" /
  "trivial parametrization"): with G non-empty groups, each contributes `N // G + 1` examples,
  drawn without replacement when it has more members than that, else with replacement; the
  draws are shuffled together. Examples whose group is negative are never drawn.

  Args:
    groups: int [N] group (cluster) of every example.

  Returns:
    An `OrderFn`: a pure function of (seed, epoch), so resumed and multi-process runs read
    the same batches. An epoch still has `N // global_batch` steps.
  """
  groups = np.asarray(groups, np.int64)
  members = np.flatnonzero(groups >= 0)
  if members.size == 0:
    raise DataError("uniform_over_groups: every example's group is negative (nothing to sample)")
  uniq, counts = np.unique(groups[members], return_counts=True)
  per_group = len(groups) // len(uniq) + 1
  starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
  g_members = tf.constant(members, tf.int64)
  g_groups = tf.constant(np.searchsorted(uniq, groups[members]), tf.int64)  # dense group ids
  g_counts = tf.constant(counts, tf.int64)
  g_starts = tf.constant(starts, tf.int64)
  with_replacement = tf.constant(counts <= per_group)

  def order(num_examples, seed, epoch):
    if num_examples != len(groups):
      raise DataError(f"uniform_over_groups: {len(groups)} groups for {num_examples} examples")
    s = lambda k: tf.stack([tf.cast(seed, tf.int64), tf.cast(epoch, tf.int64) * 4 + k])
    # Members grouped (stable sort by group) in a random order within each group.
    shuffled = tf.argsort(tf.random.stateless_uniform([members.size], seed=s(1)), stable=True)
    by_group = tf.gather(shuffled, tf.argsort(tf.gather(g_groups, shuffled), stable=True))
    j = tf.range(per_group, dtype=tf.int64)[None, :]  # [1, k]
    pick = tf.cast(tf.random.stateless_uniform([len(uniq), per_group], seed=s(2)) *
                   tf.cast(g_counts[:, None], tf.float32), tf.int64)
    pick = tf.minimum(pick, g_counts[:, None] - 1)
    offset = tf.where(with_replacement[:, None], pick, j)  # first k of a permutation: no replacement
    draws = tf.reshape(tf.gather(g_members, tf.gather(by_group, g_starts[:, None] + offset)), [-1])
    mix = tf.argsort(tf.random.stateless_uniform(tf.shape(draws), seed=s(3)), stable=True)
    return tf.gather(draws, mix)

  return order


def _partner_fn(source: ArraySource, key: str, n: int):
  """(candidates [K], example seed) -> one candidate index, uniformly, keyed by the seed."""
  if key not in source.extras:
    raise DataError(f"{source.name}: partner_key {key!r} is not among the extras {sorted(source.extras)}")
  table = np.asarray(source.extras[key])
  if table.ndim != 2 or not np.issubdtype(table.dtype, np.integer):
    raise DataError(f"{source.name}: partner extra {key!r} must be int [N, K] candidate indices, "
                    f"got {table.dtype} {table.shape}")
  if table.size and (table.min() < 0 or table.max() >= n):
    raise DataError(f"{source.name}: partner extra {key!r} holds indices outside [0, {n})")
  table = tf.constant(table.astype(np.int32))
  k = int(table.shape[1])

  def choose(index, ex_seed):
    j = tf.random.stateless_uniform([], seed=tf.random.experimental.stateless_fold_in(ex_seed, 7919),
                                    maxval=k, dtype=tf.int32)
    return tf.gather(tf.gather(table, index), j)

  return choose


def train_dataset(source: ArraySource, view_fn: ViewFn, *, global_batch: int, seed: int,
                  start_step: int = 0, process_index: int = 0, process_count: int = 1,
                  num_parallel_calls=AUTOTUNE, prefetch: int = 2, deterministic: bool = True,
                  order: OrderFn | None = None, partner_key: str | None = None) -> tf.data.Dataset:
  """Infinite dataset of this process's share of each global training batch.

  Args:
    source: the examples.
    view_fn: `(example, seed) -> dict of tensors`; `example` has "image" (uint8 [H, W, 3]),
      "label" (int32), "index" (int32) and one entry per `source.extras` key; `seed` is an
      int64 [2] stateless seed.
    global_batch: examples per step over all processes.
    seed: the data seed.
    start_step: the first step to produce (for resuming).
    process_index, process_count: this process and how many read in parallel.
    order: the epoch's example order, `(N, seed, epoch) -> indices` (default `epoch_order`,
      a uniform permutation), e.g. `uniform_over_groups(pseudo_labels)`.
    partner_key: an extra of int [N, K] candidate indices; one is drawn per example and
      loaded as `example["partner"] = {"image", "label", "index"}`.

  Returns:
    Batches of `global_batch // process_count` examples, in step order from `start_step`.
  """
  if global_batch % process_count:
    raise DataError(f"global batch {global_batch} is not divisible by the {process_count} processes")
  n = len(source)
  spe = steps_per_epoch(n, global_batch)
  local = global_batch // process_count
  get_example = _example_fn(source)
  extras = _extra_fns(source)
  order_fn = order or epoch_order
  partner = _partner_fn(source, partner_key, n) if partner_key else None

  def epoch_indices(epoch):
    idx = order_fn(n, seed, epoch)
    tf.debugging.assert_greater_equal(tf.size(idx, out_type=tf.int64), tf.cast(spe * global_batch, tf.int64),
                                      message="the sampler's order is shorter than an epoch")
    idx = tf.cast(idx[: spe * global_batch], tf.int32)
    mine = tf.reshape(idx, [spe, process_count, local])[:, process_index, :]
    idx = tf.reshape(mine, [-1])
    return tf.data.Dataset.from_tensor_slices((tf.fill(tf.shape(idx), epoch), idx))

  start_epoch, offset = divmod(start_step, spe)
  ds = tf.data.Dataset.range(start_epoch, 2**62).flat_map(epoch_indices)
  if offset:
    ds = ds.skip(offset * local)

  def load(epoch, index):
    image, label = get_example(index)
    ex = {"image": image, "label": label, "index": index}
    ex.update({key: get(index) for key, get in extras.items()})
    ex_seed = tf.stack([tf.constant(seed, tf.int64), epoch * n + tf.cast(index, tf.int64)])
    if partner is not None:
      j = partner(index, ex_seed)
      p_image, p_label = get_example(j)
      ex["partner"] = {"image": p_image, "label": p_label, "index": j}
    return view_fn(ex, ex_seed)

  options = tf.data.Options()
  options.deterministic = deterministic
  options.threading.private_threadpool_size = 0
  ds = ds.map(_plain_graph(load), num_parallel_calls=num_parallel_calls)
  ds = ds.batch(local, drop_remainder=True)
  return ds.prefetch(prefetch).with_options(options)


def _plain_graph(fn):
  """`fn` traced as written, without AutoGraph's source rewriting.

  All augmentation code here uses explicit `tf.cond` / `tf.switch_case`, never Python control
  flow on tensors, so AutoGraph has nothing to convert; left on, it re-reads each function's
  source from disk when `map` first traces it, and a source file edited while a long run is
  in progress (a researcher's normal day) then hands it the wrong lines: the evaluation after
  training failed with a TypeError from an unrelated function. Tracing also gets cheaper.
  """
  return tf.autograph.experimental.do_not_convert(fn)


def eval_dataset(source: ArraySource, preprocess: Callable[[tf.Tensor], tf.Tensor], *, batch_size: int,
                 process_index: int = 0, process_count: int = 1) -> tuple[tf.data.Dataset, int]:
  """Every example once, in index order, padded to full batches.

  Returns a dataset of {"image", "label", "index", "mask"} batches (mask False on padding) and
  the number of batches. Each process reads a contiguous block of every batch, like training.
  """
  if batch_size % process_count:
    raise DataError(f"eval batch {batch_size} is not divisible by the {process_count} processes")
  n = len(source)
  num_batches = math.ceil(n / batch_size)
  local = batch_size // process_count
  get_example = _example_fn(source)
  padded = np.arange(num_batches * batch_size).reshape(num_batches, process_count, local)
  mine = padded[:, process_index, :].reshape(-1).astype(np.int32)

  def load(i):
    valid = i < n
    index = tf.minimum(i, n - 1)
    image, label = get_example(index)
    return {"image": preprocess(image), "label": label, "index": index, "mask": valid}

  ds = tf.data.Dataset.from_tensor_slices(mine).map(_plain_graph(load), num_parallel_calls=AUTOTUNE)
  return ds.batch(local, drop_remainder=True).prefetch(2), num_batches


def as_numpy_iterator(ds: tf.data.Dataset, source: ArraySource | None = None) -> Iterator[dict]:
  """`ds.as_numpy_iterator()`; an image that fails to decode mid-run (file-backed sources are
  not decoded up front) becomes one `DataError` naming the source and the way to find the file."""
  it = ds.as_numpy_iterator()
  while True:
    try:
      yield next(it)
    except StopIteration:
      return
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError, tf.errors.DataLossError) as e:
      where = source.name if source is not None else "the training data"
      hint = (" Find the file with jax_ssl.data.validate_files(source) (decodes every image in parallel)."
              if source is not None and source.files else "")
      raise DataError(f"{where}: an image could not be read or decoded "
                      f"({type(e).__name__}: {' '.join(e.message.split())[:300]}).{hint}") from None
