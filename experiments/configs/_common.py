"""Pieces shared by the config files (imported as `experiments.configs._common`)."""

import ml_collections


def eval_config(*, batch_size: int = 512, baselines: bool = True, per_block: bool = False,
                linear_iters: int = 500, pretext_epochs: int = 4) -> ml_collections.ConfigDict:
  """The frozen-feature evaluation block: kNN (k = 20, 200, temperature 0.07) and linear probe.

  baselines: also evaluate the random-init network and pixels (cheap on small data).
  per_block: one kNN row per ResNet stage (RotNet's per-block probes).
  pretext_epochs: passes over the test split to measure a pretext classifier's held-out
    accuracy (RotNet, Context Prediction, Jigsaw; other methods ignore it); 0 skips it.
  """
  e = ml_collections.ConfigDict()
  e.batch_size = batch_size
  e.knn_ks = (20, 200)
  e.knn_temperature = 0.07
  e.linear = True
  e.linear_iters = linear_iters
  e.baselines = baselines
  e.per_block = per_block
  e.pretext_epochs = pretext_epochs
  return e
