"""Evaluators run by the trainer during pretraining (big_vision's `evaluators/` pattern).

An evaluator has `every` (steps) and `run(train_state) -> {name: number}`; `jax_ssl.train.train`
calls it every `every` steps and at the end and logs the numbers as kind "eval" to
metrics.jsonl and TensorBoard.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from jax_ssl import parallel
from jax_ssl.data import ArraySource, DataError
from jax_ssl.evaluate._knn import knn_accuracy


class KnnMonitor:
  """Weighted kNN top-1 (%) of the current frozen features, as the final report computes it.

  Memory bank: `bank` (usually the training split, un-augmented evaluation view); queries:
  `queries` (a validation split: choose recipes on it, not on the test split). Costs one pass
  of feature extraction over both per call; the embedding function is compiled once.
  """

  def __init__(self, method, bank: ArraySource, queries: ArraySource, *, every: int, ks: Sequence[int] = (20,),
               temperature: float = 0.07, batch_size: int = 256, mesh=None):
    if every < 1:
      raise ValueError(f"the kNN monitor's period must be >= 1 step, got {every}")
    for src in (bank, queries):
      if src.num_classes < 2 or (np.asarray(src.labels) < 0).any():
        raise DataError(f"the kNN monitor needs labelled splits; {src.name} has no labels for every image")
    self.method, self.bank, self.queries = method, bank, queries
    self.every, self.ks, self.temperature, self.batch_size = int(every), tuple(ks), float(temperature), int(batch_size)
    self.mesh = mesh or parallel.make_mesh()
    parallel.check_batch_divisible(self.batch_size, self.mesh, "kNN monitor batch size")
    self._embed = parallel.make_embed_fn(method.embed, self.mesh)

  def run(self, train_state) -> dict:
    feats = dict(embed=self._embed, preprocess=self.method.eval_preprocess, params=train_state.params,
                 state=train_state.state, batch_size=self.batch_size, mesh=self.mesh)
    xb, yb = parallel.extract_features(source=self.bank, **feats)
    xq, yq = parallel.extract_features(source=self.queries, **feats)
    out = knn_accuracy(xb, yb, xq, yq, ks=self.ks, num_classes=self.bank.num_classes, temperature=self.temperature,
                       mesh=self.mesh)
    return {f"monitor/{k}": v for k, v in out.items()}
