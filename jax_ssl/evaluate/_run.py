"""Feature extraction and the evaluation report (kNN + linear probe + baselines)."""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jax_ssl import data as pipeline  # the public data API: eval_dataset, train_dataset, steps_per_epoch
from jax_ssl import parallel
from jax_ssl.data import ArraySource
from jax_ssl.evaluate._clustering import clustering_metrics, kmeans_baseline
from jax_ssl.evaluate._knn import knn_accuracy
from jax_ssl.evaluate._linear import linear_probe
from jax_ssl.methods import Method, example_batch
from jax_ssl.parallel import batch_sharding, make_mesh, replicated, shard_batch


def make_embed_fn(method: Method, mesh, blocks: bool = False):
  """Jitted `(params, state, images) -> features` (or per-block dict) with the batch sharded."""
  return parallel.make_embed_fn(method.embed_blocks if blocks else method.embed, mesh)


def extract_features(method: Method, params, state, source: ArraySource, *, batch_size: int = 256,
                     mesh=None, blocks: bool = False, embed=None):
  """Frozen features of every example of `source` in index order.

  Returns (features [N, F] float32, labels [N]); with `blocks=True`, a dict name -> [N, F_b].
  `embed`: a function from `make_embed_fn(method, mesh, blocks=blocks)` to reuse (one compile
  for many calls); built here when not given.
  """
  mesh = mesh or make_mesh()
  embed = embed or make_embed_fn(method, mesh, blocks=blocks)
  return parallel.extract_features(embed, method.eval_preprocess, params, state, source, batch_size=batch_size,
                                   mesh=mesh)


def pretext_accuracy(method: Method, params, state, source: ArraySource, *, batch_size: int = 256,
                     epochs: int = 4, seed: int = 0, mesh=None) -> float:
  """Top-1 (%) of a pretext classifier (a method with `logits(params, state, batch)`: RotNet,
  Context Prediction, Jigsaw) on puzzles made from `source` -- held-out images when it is the
  test split.

  The puzzles come from the method's own training pipeline (`make_views`) with a fixed `seed`,
  so the number is deterministic; `epochs` passes draw different puzzles from each image
  (random patches, permutations). Each pass covers the largest multiple of the global batch
  (`batch_size`, capped at the split size and rounded down to the device count).
  """
  if not hasattr(method, "logits"):
    raise ValueError(f"method {method.name!r} has no pretext classifier (`logits`)")
  mesh = mesh or make_mesh()
  fn = _pretext_hits_fn(method, mesh)
  hits = [fn(params, state, b) for b in _pretext_batches(method, source, batch_size, epochs, seed, mesh)]
  hits, total = np.sum(jax.device_get(hits), axis=0)  # one host transfer at the end
  return 100.0 * hits / total


def _pretext_batches(method: Method, source: ArraySource, batch_size: int, epochs: int, seed: int, mesh):
  """Sharded `make_views` batches of `source` (fixed `seed`): `epochs` passes of the largest
  multiple of the global batch (`batch_size` capped at the split, rounded down to the devices)."""
  per = mesh.size  # every device of every process
  gb = (min(batch_size, len(source)) // per) * per
  if gb == 0:
    raise ValueError(f"{len(source)} examples are fewer than the {per} devices")
  steps = epochs * pipeline.steps_per_epoch(len(source), gb)
  ds = pipeline.train_dataset(source, method.make_views, global_batch=gb, seed=seed,
                              process_index=jax.process_index(), process_count=jax.process_count())
  for batch in ds.take(steps).as_numpy_iterator():
    yield shard_batch(batch, mesh)


@functools.lru_cache(maxsize=8)
def _pretext_hits_fn(method: Method, mesh):
  """Jitted `(params, state, batch) -> [correct, total]`, compiled once per method and mesh."""

  def hits(p, s, batch):
    logits, labels = method.logits(p, s, batch)
    return jnp.stack([jnp.sum(jnp.argmax(logits, -1) == labels), labels.size])

  return jax.jit(hits, in_shardings=(replicated(mesh), replicated(mesh), batch_sharding(mesh)),
                 out_shardings=replicated(mesh))


def pretext_scores(method: Method, params, state, source: ArraySource, *, batch_size: int = 256,
                   epochs: int = 1, seed: int = 0, mesh=None) -> dict:
  """Held-out pretext losses of a method with `heldout_terms(params, state, batch) -> {name:
  [sum, count]}` (Colorization's rebalanced cross-entropy and its predict-the-prior baseline) on
  views made from `source` by the method's training pipeline with a fixed `seed`: {name: sum /
  count} over `epochs` passes of the largest multiple of the global batch."""
  mesh = mesh or make_mesh()
  fn = _heldout_terms_fn(method, mesh)
  terms = jax.device_get([fn(params, state, b) for b in _pretext_batches(method, source, batch_size, epochs, seed, mesh)])
  return {k: float(np.sum([t[k][0] for t in terms]) / np.sum([t[k][1] for t in terms])) for k in terms[0]}


@functools.lru_cache(maxsize=8)
def _heldout_terms_fn(method: Method, mesh):
  return jax.jit(method.heldout_terms, in_shardings=(replicated(mesh), replicated(mesh), batch_sharding(mesh)),
                 out_shardings=replicated(mesh))


def has_raw_view(method: Method) -> bool:
  return type(method).eval_view is not Method.eval_view


def pixel_features(method: Method, source: ArraySource, *, batch_size: int = 256, raw: bool = False) -> np.ndarray:
  """Pixel baselines, flattened: the method's evaluation input (standardized per channel), or
  with `raw=True` the same view's raw pixel values in [0, 1] (`method.eval_view`)."""
  ds, _ = pipeline.eval_dataset(source, method.eval_view if raw else method.eval_preprocess, batch_size=batch_size)
  rows, masks = [], []
  for batch in ds.as_numpy_iterator():
    rows.append(batch["image"].reshape(len(batch["image"]), -1))
    masks.append(batch["mask"])
  return np.concatenate(rows)[np.concatenate(masks)].astype(np.float32)


def evaluate_features(train_x, train_y, test_x, test_y, *, num_classes: int, knn_ks: Sequence[int] = (20, 200),
                      knn_temperature: float = 0.07, linear: bool = True, linear_iters: int = 500,
                      mesh=None, knn_bank_dtype=None, kmeans: bool = False) -> dict:
  """kNN (each k; the memory bank sharded over `mesh`, stored in `knn_bank_dtype`) and
  linear-probe top-1 (%) of one feature set; with `kmeans`, also the k-means-on-features
  clustering ACC / NMI of the test features (`kmeans_baseline`, as many clusters as classes)."""
  out = knn_accuracy(train_x, train_y, test_x, test_y, ks=knn_ks, num_classes=num_classes,
                     temperature=knn_temperature, mesh=mesh, bank_dtype=knn_bank_dtype)
  if linear:
    out.update(linear_probe(train_x, train_y, test_x, test_y, num_classes=num_classes, iters=linear_iters))
  if kmeans:
    out.update(kmeans_baseline(test_x, test_y, num_clusters=num_classes))
  return out


def cluster_predictions(method: Method, params, state, source: ArraySource, *, batch_size: int = 256,
                        mesh=None) -> np.ndarray:
  """The cluster of every example of `source` (argmax of `method.cluster_logits`), int [N]."""
  mesh = mesh or make_mesh()
  fn = parallel.make_embed_fn(
      lambda p, s, x: jnp.argmax(method.cluster_logits(p, s, x), -1)[:, None].astype(jnp.float32), mesh)
  pred, _ = parallel.extract_features(fn, method.eval_preprocess, params, state, source, batch_size=batch_size,
                                      mesh=mesh)
  return pred[:, 0].astype(np.int64)


def evaluate_method(method: Method, params, state, train_source: ArraySource, test_source: ArraySource, *,
                    batch_size: int = 256, knn_ks: Sequence[int] = (20, 200), knn_temperature: float = 0.07,
                    linear: bool = True, linear_iters: int = 500, baselines: bool = True,
                    random_init_seed: int = 12345, mesh=None, per_block: bool = False, knn_bank_dtype=None,
                    pretext_epochs: int = 4, kmeans: bool = True) -> dict:
  """Evaluates trained features, and (with `baselines`) random-init features and pixels.

  Returns {"pretrained": {...}, "random_init": {...}, "pixels": {...}, "pixels_std": {...}} of
  metric dicts: "pixels" are the raw values in [0, 1] of the un-augmented evaluation view (when
  the method defines `eval_view`), "pixels_std" the same view standardized per channel (the
  network's input); under the cosine kNN the standardized one is the stronger baseline. The
  linear probe standardizes every input dimension with the training statistics, which makes the
  two pixel rows the same regression problem (a per-channel affine map disappears under
  per-dimension standardization), so it is fitted once, on the standardized view, and reported in
  both rows (the most expensive fit of the report: 3,072 inputs on 32 px images). With
  `per_block`, also one kNN-only row per entry of `method.embed_blocks` for the pretrained and
  the random-init network ("pretrained/stage1", ...), e.g. RotNet's per-block probes. For a
  pretext classifier (a method with `logits`), the network rows also get "pretext_top1": its
  accuracy on puzzles made from the test split (`pretext_accuracy`, `pretext_epochs` passes);
  the random-init row gives the chance level of the same puzzles. A method with `heldout_terms`
  (Colorization) gets its held-out pretext losses instead (`pretext_scores`). Every network row gets the
  k-means-on-features baseline ("kmeans_acc", "kmeans_nmi": test features, as many clusters as
  classes; `kmeans`), and a clustering method (one with `cluster_logits`) its own clusters'
  "cluster_acc", "cluster_nmi", "cluster_ari" on the test split (`clustering_metrics`).
  """
  if train_source.num_classes != test_source.num_classes:
    raise ValueError(f"train and test splits disagree on classes: {train_source.class_names} vs "
                     f"{test_source.class_names}")
  mesh = mesh or make_mesh()
  kw = dict(num_classes=train_source.num_classes, knn_ks=knn_ks, knn_temperature=knn_temperature,
            linear=linear, linear_iters=linear_iters, mesh=mesh, knn_bank_dtype=knn_bank_dtype)

  embed = {b: make_embed_fn(method, mesh, blocks=b) for b in ((False, True) if per_block else (False,))}
  feats = dict(batch_size=batch_size, mesh=mesh)

  def run(p, s):
    xtr, ytr = extract_features(method, p, s, train_source, embed=embed[False], **feats)
    xte, yte = extract_features(method, p, s, test_source, embed=embed[False], **feats)
    row = evaluate_features(xtr, ytr, xte, yte, kmeans=kmeans, **kw)
    if hasattr(method, "cluster_logits"):  # a clustering method: its own clusters of the test split
      m = clustering_metrics(yte, cluster_predictions(method, p, s, test_source, **feats))
      row.update({f"cluster_{k}": v for k, v in m.items()})
    if hasattr(method, "heldout_terms") and pretext_epochs:  # a dense pretext task: its held-out losses
      row.update(pretext_scores(method, p, s, test_source, **feats))
    elif hasattr(method, "logits") and pretext_epochs:
      row["pretext_top1"] = pretext_accuracy(method, p, s, test_source, epochs=pretext_epochs, **feats)
    return row

  def run_blocks(p, s, row):
    btr, ytr = extract_features(method, p, s, train_source, blocks=True, embed=embed[True], **feats)
    bte, yte = extract_features(method, p, s, test_source, blocks=True, embed=embed[True], **feats)
    block_kw = dict(kw, linear=False)  # kNN only: cheap enough for every block
    return {f"{row}/{name}": evaluate_features(btr[name], ytr, bte[name], yte, **block_kw) for name in btr}

  state = method.calibrate(params, state, train_source, mesh=mesh)  # (DCGAN: real-image BN statistics)
  report = {"pretrained": run(params, state)}
  if per_block:
    report.update(run_blocks(params, state, "pretrained"))
  if baselines:
    p0, s0 = method.init(jax.random.key(random_init_seed), example_batch(method, train_source))
    s0 = method.calibrate(p0, s0, train_source, mesh=mesh)
    report["random_init"] = run(p0, s0)
    if per_block:
      report.update(run_blocks(p0, s0, "random_init"))

    def pixel_row(raw, **over):
      return evaluate_features(pixel_features(method, train_source, batch_size=batch_size, raw=raw),
                               train_source.labels,
                               pixel_features(method, test_source, batch_size=batch_size, raw=raw),
                               test_source.labels, **dict(kw, **over))

    standardized = pixel_row(False)
    if has_raw_view(method):  # the probe is fitted once, on the standardized view
      report["pixels"] = pixel_row(True, linear=False)
      report["pixels"].update((k, v) for k, v in standardized.items() if k.startswith("linear"))
    report["pixels_std"] = standardized
  return report


def format_report(report: dict, *, title: str = "") -> str:
  """A plain-text table: rows = feature sets, columns = metrics (accuracy in %)."""
  cols = []
  for metrics in report.values():
    cols += [c for c in metrics if c not in cols and not c.endswith("_l2")]
  names = {"pretrained": "pretrained", "random_init": "random init", "pixels": "raw pixels",
           "pixels_std": "standardized pixels"}
  width = max(len(names.get(r, r)) for r in report) + 2
  lines = [title] if title else []
  lines.append("features".ljust(width) + "".join(c.rjust(16) for c in cols))
  for row, metrics in report.items():
    lines.append(names.get(row, row).ljust(width) + "".join(
        f"{metrics[c]:16.2f}" if c in metrics else "-".rjust(16) for c in cols))
  return "\n".join(lines)
