"""The interface every self-supervised method implements.

A method owns three things: the training views the input pipeline makes from one image
(`make_views`, TensorFlow, per example), its networks and non-trainable state (`init`), and
its objective (`loss`). The trainer owns everything else (optimizer, sharding, the jitted step,
checkpoints) and never branches on which method it runs. Hooks with default no-op
implementations cover what some methods need around the optimizer update:

* `update_state(params, state, step)` runs after each update: EMA target networks (BYOL,
  DetCon-B, MSN), pushing a queue (SwAV), momentum encoders.
* `process_grads(grads, step)`: freezing parameters for a while (SwAV's prototypes).
* `process_updates(updates, step)`: the optimizer's updates before they are applied, e.g.
  a learning-rate multiplier for one part of the network (BYOL's `predictor_lr_mult`).
* `project_params(params)`: constraints after each update (SwAV's unit-norm prototypes).
* `on_epoch_start(...)`: dataset-level work between epochs (DeepCluster, SeLA, SCAN); the
  trainer calls it with a feature extractor when a method defines `needs_epoch_hook = True`.
* `set_schedule(steps_per_epoch=, total_steps=)`: the trainer tells the method the run's
  length before initializing, for schedules that live in the method (BYOL's EMA decay,
  SwAV's prototype freezing and queue start).
* `check_metrics(metrics)`: a host-side look at the averaged metrics at every log step; a
  returned message stops the run with the last checkpoint intact (e.g. SwAV's collapse watch).
* `write_artifacts(workdir, ...)`: pictures for the run folder after training (DetCon's
  masks, Context Prediction's nearest-neighbour patches).
* `prepare_source(source)`: dataset-level inputs computed once before training or
  evaluation and attached to the source (DetCon's cached Felzenszwalb-Huttenlocher masks).

Everything is a pure function of pytrees so the one train step can `jit` it.
"""

from __future__ import annotations

import abc
from typing import Any

import jax

PyTree = Any


class Method(abc.ABC):
  """Base class. Subclasses set `name` and implement the abstract methods."""

  name: str = "method"
  needs_epoch_hook: bool = False
  steps_per_epoch: int | None = None  # set by `set_schedule`
  total_steps: int | None = None

  # ----------------------------------------------------------------------- data (tf.data side)
  @abc.abstractmethod
  def make_views(self, example: dict, seed) -> dict:
    """TensorFlow: one example {"image": uint8 [H, W, 3], "label", "index"} -> training tensors."""

  def eval_preprocess(self, image):
    """TensorFlow: uint8 [H, W, 3] -> float32 network input for feature extraction.

    Default: `self.normalize(self.eval_view(image))`; override when the input is not a
    normalized view."""
    return self.normalize(self.eval_view(image))

  def eval_view(self, image):
    """TensorFlow: uint8 [H, W, 3] -> float32 [S, S, 3] in [0, 1]: the evaluation view before
    normalization. Also gives the raw-pixel baseline of the evaluation report."""
    raise NotImplementedError

  # ----------------------------------------------------------------------- model (jax side)
  @abc.abstractmethod
  def init(self, rng: jax.Array, batch: dict) -> tuple[PyTree, PyTree]:
    """Returns (params, state): trainable parameters and everything else (BN statistics, EMA...)."""

  @abc.abstractmethod
  def loss(self, params: PyTree, state: PyTree, batch: dict, rng: jax.Array, step: jax.Array):
    """Returns (loss, (new_state, metrics)) for one global batch; metrics are scalars."""

  @abc.abstractmethod
  def embed(self, params: PyTree, state: PyTree, images: jax.Array) -> jax.Array:
    """Frozen-evaluation features [N, F] of preprocessed images (inference mode)."""

  def embed_blocks(self, params: PyTree, state: PyTree, images: jax.Array) -> dict:
    """Optional per-block features for per-block probes; defaults to the final features."""
    return {"final": self.embed(params, state, images)}

  # ----------------------------------------------------------------------- optimizer hooks
  def process_grads(self, grads: PyTree, step: jax.Array) -> PyTree:
    return grads

  def process_updates(self, updates: PyTree, step: jax.Array) -> PyTree:
    return updates

  def project_params(self, params: PyTree) -> PyTree:
    return params

  def update_state(self, params: PyTree, state: PyTree, step: jax.Array) -> PyTree:
    return state

  # ----------------------------------------------------------------------- run hooks
  def prepare_source(self, source):
    """Host side, before `make_views` sees `source` (training, evaluation's init batch).

    Returns the source to use, e.g. with per-example `extras` such as segmentation masks.
    """
    return source

  def set_schedule(self, *, steps_per_epoch: int, total_steps: int) -> None:
    """Called by the trainer before `init`: the run's length (steps), for in-method schedules."""
    self.steps_per_epoch = int(steps_per_epoch)
    self.total_steps = int(total_steps)

  def check_metrics(self, metrics: dict) -> str | None:
    """Host side, every log step, with metrics averaged since the last one (floats).

    Return a message to stop the run (the trainer raises `TrainingStopped` with it and keeps
    the last good checkpoint), or None to go on.
    """
    del metrics
    return None

  def write_artifacts(self, workdir: str, *, params: PyTree, state: PyTree, source) -> list[str]:
    """After training, on the chief process: writes pictures into `workdir`; returns their paths."""
    del workdir, params, state, source
    return []

  # ----------------------------------------------------------------------- identity
  def signature(self) -> dict:
    """What a checkpoint must match to be restored into this method (JSON-serializable)."""
    return {"method": self.name}
