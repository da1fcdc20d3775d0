"""The interface every self-supervised method implements.

A method owns three things: the training views the input pipeline makes from one image
(`make_views`, TensorFlow, per example), its networks and non-trainable state (`init`), and
its objective (`loss`). The trainer owns everything else (optimizer, sharding, the jitted step,
checkpoints) and never branches on which method it runs. Hooks with default no-op
implementations cover what some methods need around the optimizer update:

* `update_state(params, state, step)` runs after each update: EMA target networks (BYOL,
  DetCon-B, MSN), momentum encoders.
* `project_params(params)`: constraints after each update (SwAV's unit-norm prototypes).
* Optimization is the method's to declare (`jax_ssl.train.method_optimizer` builds it):
  `param_groups()` names groups with their own learning-rate multiplier, freezing for the
  first steps or no training at all (`ParamGroup`), `param_labels(params)` assigns every
  parameter to a group, `decay_mask(params)` says which parameters get weight decay (not
  biases or norms; not the names in `no_decay_names`, e.g. ViT position embeddings and
  class / mask tokens). `phases()` splits one train step into several updates, each with
  its own loss, its own part of the parameters, its own optimizer (`Phase.tx`, or the run's),
  its own non-finite guard and its own metrics: a generator / discriminator pair updates
  alternately (each phase sees the previous phase's update) or, with
  `simultaneous_phases = True`, from the same parameters.
* `dataset_pass`: dataset-level work (DeepCluster's k-means, SeLA's Sinkhorn labels, SCAN's
  neighbours). A method that sets `dataset_pass_every = ("epochs", n)` or `("steps", n)`
  gets, at those boundaries and before the step, the features of the whole training set
  (`pass_features`, default `embed`) as device-sharded chunks
  (`jax_ssl.parallel.ShardedFeatures`), and returns its new state; the state is checkpointed
  with the rest. `dataset_extras(state)` turns it into per-example arrays the input pipeline
  adds to every example (pseudo-labels), and the pipeline is rebuilt from them;
  `after_dataset_pass(params, state)` may set parameters from the new state (DeepCluster-v2
  and SMoG reset prototypes to the k-means centroids, DeepCluster re-initializes its
  classifier), and the parameters named in `reset_optimizer_after_pass` start the next
  epoch with a fresh optimizer state (DeepCluster's new classifier and its new SGD); `sampler(state, N)` may replace the
  uniform epoch order (DeepCluster: `data.uniform_over_groups(pseudo_labels)`), and
  `partner_key` names an extra of candidate indices from which the pipeline adds one partner
  example to every example (SCAN: an anchor and one of its mined neighbours).
* `set_schedule(steps_per_epoch=, total_steps=)`: the trainer tells the method the run's
  length before initializing, for schedules that live in the method (BYOL's EMA decay,
  SwAV's prototype freezing and queue start).
* `check_metrics(metrics)`: a host-side look at the averaged metrics at every log step; a
  returned message stops the run with the last checkpoint intact (e.g. SwAV's collapse watch).
* `write_artifacts(workdir, ...)`: pictures for the run folder after training (DetCon's
  masks, Context Prediction's nearest-neighbour patches).
* `prepare_source(source)`: dataset-level inputs computed once before training or
  evaluation and attached to the source (DetCon's cached Felzenszwalb-Huttenlocher masks).
* `warm_start(params, state, source)`: a fresh run that names another run's checkpoint
  (`train.init_from`) starts from it: by default its backbone (parameters and BatchNorm
  statistics) replaces this method's; SCAN's self-labelling also takes SCAN's best head.
* `restored(params, state)`: `jax_ssl.load` hands a restored checkpoint to the method, which
  may set host-side attributes from its state (Colorization's colour prior).
* `calibrate(params, state, source, mesh=)`: inference-time statistics recomputed from the
  training images (DCGAN's discriminator BatchNorm statistics of real images); the trainer
  calls it after the last step (before the final checkpoint), the evaluation for every
  network row (the random-init one included).

Everything is a pure function of pytrees so the one train step can `jit` it.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, Callable

import jax
import optax

PyTree = Any


@dataclasses.dataclass(frozen=True)
class ParamGroup:
  """How the optimizer treats one group of parameters (see `Method.param_groups`).

  Attributes:
    lr_mult: the group's updates are scaled by this (its learning rate, decoupled weight
      decay included, times `lr_mult`).
    frozen_steps: the group's gradients are zero for the first `frozen_steps` optimizer
      updates (SwAV's prototypes during the first epoch).
    trainable: False: the group is never updated (a frozen pretrained trunk).
  """

  lr_mult: float = 1.0
  frozen_steps: int = 0
  trainable: bool = True

  @property
  def is_default(self) -> bool:
    return self.lr_mult == 1.0 and not self.frozen_steps and self.trainable


@dataclasses.dataclass(frozen=True)
class Phase:
  """One optimizer update of a train step (see `Method.phases`).

  Attributes:
    name: names the phase's metrics ("generator/loss") and optimizer state.
    loss: `(params, state, batch, rng, step) -> (loss, (new_state, metrics))` on the *whole*
      params tree; gradients are taken only with respect to `params[key]`.
    key: the top-level entry of the params this phase updates; None: all of them.
    tx: the phase's own optimizer (e.g. DCGAN's Adam(2e-4, b1=0.5)); None: the run's
      optimizer from the config, built with the method's decay mask.
    lr_mult: the phase's updates are scaled by this (its learning rate times `lr_mult`: the
      Context Encoder's generator learns 10x faster than its discriminator).
  """

  name: str
  loss: Callable
  key: str | None = None
  tx: optax.GradientTransformation | None = None
  lr_mult: float = 1.0


def _path_names(path) -> set:
  return {str(getattr(k, "key", getattr(k, "name", k))) for k in path}


class Method(abc.ABC):
  """Base class. Subclasses set `name` and implement the abstract methods."""

  name: str = "method"
  # Parameters (by name, anywhere in their path) that get no weight decay besides biases and
  # norms: a ViT's position embeddings and class / mask tokens (MAE, DeiT; timm's no_weight_decay).
  no_decay_names: tuple = ("pos_embedding", "cls_pos_embedding", "cls", "mask_token")
  # Several phases update from the same parameters (True) or one after the other (False).
  simultaneous_phases: bool = False
  # ("epochs", n) or ("steps", n): run `dataset_pass` at those boundaries; None: never.
  dataset_pass_every: tuple | None = None
  # An extra (from `dataset_extras`) of int [N, K] candidate indices: the pipeline draws one per
  # example and adds it as `example["partner"]` ({"image", "label", "index"}); None: no partner.
  partner_key: str | None = None
  # Whether a dataset pass can change what the input pipeline reads (`dataset_extras`,
  # `sampler`); False: the pipeline is not rebuilt after a pass and the state never goes to the
  # host for it (SMoG, whose pass only resets its groups from a device-resident memory bank).
  pass_changes_inputs: bool = True
  # Parameters (by name, anywhere in their path) whose optimizer state (momentum, Adam moments)
  # is re-initialized after every dataset pass; the optimizer's step counts are kept.
  reset_optimizer_after_pass: tuple = ()
  # What `eval_preprocess` feeds the network, for the exported backbone's model card.
  input_description: str = "RGB in [0, 1] minus data.mean, divided by data.std: [N, H, W, 3]"
  steps_per_epoch: int | None = None  # set by `set_schedule`
  total_steps: int | None = None
  num_examples: int | None = None

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

  def loss(self, params: PyTree, state: PyTree, batch: dict, rng: jax.Array, step: jax.Array):
    """Returns (loss, (new_state, metrics)) for one global batch; metrics are scalars.

    The objective of the default single phase; a method with several `phases` need not define it.
    """
    raise NotImplementedError(f"{type(self).__name__} defines neither `loss` nor `phases`")

  @abc.abstractmethod
  def embed(self, params: PyTree, state: PyTree, images: jax.Array) -> jax.Array:
    """Frozen-evaluation features [N, F] of preprocessed images (inference mode)."""

  def embed_blocks(self, params: PyTree, state: PyTree, images: jax.Array) -> dict:
    """Optional per-block features for per-block probes; defaults to the final features."""
    return {"final": self.embed(params, state, images)}

  # ----------------------------------------------------------------------- optimization
  def phases(self) -> tuple:
    """The updates of one train step, in order; default: one update of every parameter."""
    return (Phase("default", self.loss),)

  def param_groups(self) -> dict:
    """Group name -> `ParamGroup`; every label of `param_labels` must be a key."""
    return {"default": ParamGroup()}

  def param_labels(self, params: PyTree) -> PyTree:
    """The group of every leaf of `params` (the tree a phase optimizes: all params, or
    `params[phase.key]`); default: "default" everywhere."""
    return jax.tree.map(lambda _: "default", params)

  def decay_mask(self, params: PyTree) -> PyTree:
    """True for the leaves that get weight decay (and LARS adaptation): kernels, not biases or
    norms (fewer than two dimensions, as SimCLR / BYOL), nor any name in `no_decay_names`.

    Works on partial trees (optax's `multi_transform` hides other groups' leaves).
    """
    skip = set(self.no_decay_names)
    return jax.tree_util.tree_map_with_path(lambda path, p: p.ndim > 1 and not (_path_names(path) & skip), params)

  def resets_optimizer_state(self, path) -> bool:
    """Whether the optimizer-state leaf at `path` (a key path into the optimizer state) belongs
    to a parameter named in `reset_optimizer_after_pass`."""
    return bool(_path_names(path) & set(self.reset_optimizer_after_pass))

  def project_params(self, params: PyTree) -> PyTree:
    return params

  def update_state(self, params: PyTree, state: PyTree, step: jax.Array) -> PyTree:
    return state

  # ----------------------------------------------------------------------- dataset-level passes
  def pass_features(self, params: PyTree, state: PyTree, images: jax.Array) -> jax.Array:
    """Features [B, F] a dataset pass sees (inference mode); default `embed`."""
    return self.embed(params, state, images)

  def pass_needs_features(self, step: int) -> bool:
    """Whether the dataset pass before `step` needs the features of the training set (default
    True); False: `dataset_pass` gets ``features=None`` and no extraction runs (DeepCluster-v2
    clusters the memory bank its training steps filled, and needs features only at step 0)."""
    del step
    return True

  def dataset_pass(self, params: PyTree, state: PyTree, features, *, step: int) -> PyTree:
    """Host-side driver of a dataset-level pass: `features` is a `jax_ssl.parallel.ShardedFeatures`
    of the whole training set (device arrays), or None where `pass_needs_features(step)` is
    False; returns the new method state (jitted work inside)."""
    raise NotImplementedError(f"{type(self).__name__} sets dataset_pass_every but has no dataset_pass")

  def dataset_extras(self, state: PyTree, num_examples: int) -> dict:
    """Host side: per-example arrays (name -> [N, ...] numpy) the pipeline adds to each example
    (e.g. "pseudo_label"), read from the method state (numpy) after a dataset pass; `state` is None
    before initialization (return placeholders of the right shape and dtype). Default none."""
    del state, num_examples
    return {}

  def after_dataset_pass(self, params: PyTree, state: PyTree) -> PyTree:
    """Parameters after a dataset pass returned `state` (e.g. prototypes set to its centroids:
    `Prototypes.reset`); default unchanged. Jitted code; the trainer keeps them replicated."""
    del state
    return params

  def sampler(self, state: PyTree, num_examples: int):
    """Host side: the epoch order of the examples given the state of the latest dataset pass,
    a `jax_ssl.data.OrderFn` (e.g. `data.uniform_over_groups(labels)`); None: a uniform
    permutation per epoch. Called whenever the pipeline is rebuilt after a pass."""
    del state, num_examples
    return None

  def dataset_pass_due(self, step: int) -> bool:
    """Whether a dataset pass runs before `step` (needs `set_schedule`)."""
    if self.dataset_pass_every is None:
      return False
    unit, n = self.dataset_pass_every
    if unit not in ("epochs", "steps") or int(n) < 1:
      raise ValueError(f"dataset_pass_every must be ('epochs', n) or ('steps', n) with n >= 1, "
                       f"got {self.dataset_pass_every!r}")
    period = int(n) * (self.steps_per_epoch if unit == "epochs" else 1)
    return step % period == 0

  # ----------------------------------------------------------------------- run hooks
  def prepare_source(self, source):
    """Host side, before `make_views` sees `source` (training, evaluation's init batch).

    Returns the source to use, e.g. with per-example `extras` such as segmentation masks.
    """
    return source

  def set_schedule(self, *, steps_per_epoch: int, total_steps: int, num_examples: int | None = None) -> None:
    """Called by the trainer before `init`: the run's length (steps), for in-method schedules,
    and the training set's size (for dataset-level state such as per-example pseudo-labels)."""
    self.steps_per_epoch = int(steps_per_epoch)
    self.total_steps = int(total_steps)
    if num_examples is not None:
      self.num_examples = int(num_examples)

  def check_metrics(self, metrics: dict) -> str | None:
    """Host side, every log step, with metrics averaged since the last one (floats).

    Return a message to stop the run (the trainer raises `TrainingStopped` with it and keeps
    the last good checkpoint), or None to go on.
    """
    del metrics
    return None

  def restored(self, params: PyTree, state: PyTree) -> None:
    """Called by `jax_ssl.load` with a checkpoint's parameters and state: a method whose host-side
    attributes mirror its state sets them from it (Colorization's colour prior), so the restored
    method behaves as the trained one (e.g. a random-init baseline built from it). Default: nothing."""
    del params, state

  def calibrate(self, params: PyTree, state: PyTree, source, *, mesh=None) -> PyTree:
    """The state with inference statistics recomputed over `source` (the training images), e.g.
    BatchNorm statistics of real images for a discriminator trained on real and generated ones.
    Host-side driver (jitted work inside, every process takes part); default: `state` unchanged."""
    del params, source, mesh
    return state

  def write_artifacts(self, workdir: str, *, params: PyTree, state: PyTree, source, heldout=None) -> list[str]:
    """After training, on the chief process: writes pictures into `workdir`; returns their paths.

    `source` is the training source; `heldout` the evaluation source (the test split, or the
    validation part held out of the training images), for pictures of unseen images (MAE)."""
    del workdir, params, state, source, heldout
    return []

  # ----------------------------------------------------------------------- reuse
  def backbone_variables(self, params: PyTree, state: PyTree) -> dict:
    """The Flax variables of the backbone behind `embed`: {"params": ...} plus "batch_stats"
    where it has BatchNorm, ready for `backbone.apply(variables, images, train=False)`.

    Default: the one subtree named "backbone" in `params` (a backbone attribute of the
    method's network), and its statistics at the same path under `state["batch_stats"]`.
    Methods whose evaluated backbone lives elsewhere (an EMA target, a shared trunk) override.
    """
    found = _paths_named(params, "backbone")
    if len(found) != 1:
      raise NotImplementedError(f"{type(self).__name__}: {len(found)} parameter subtrees named 'backbone' "
                                f"({found}); define backbone_variables")
    path = found[0]
    out = {"params": _at(params, path)}
    stats = _at(state.get("batch_stats", {}) if isinstance(state, dict) else {}, path)
    if stats:
      out["batch_stats"] = stats
    return out

  def warm_start(self, params: PyTree, state: PyTree, source) -> tuple:
    """(params, state) of a fresh run started from `source`, another run restored by
    `jax_ssl.load` (its `.method`, `.params`, `.state`; host numpy trees, as `params`/`state`).

    Default: `source`'s backbone (`backbone_variables`: parameters and BatchNorm statistics)
    replaces this method's at its "backbone" path; heads, projectors and the rest keep their
    initialization. The two backbones must have the same structure and shapes (a ValueError
    names the first difference). Methods with a copy of the backbone elsewhere (an EMA target)
    or with more to take over (a head) override.
    """
    theirs = source.method.backbone_variables(source.params, source.state)
    mine = self.backbone_variables(params, state)
    _check_same_shapes(mine, theirs, f"the backbone of the {source.method.name} run")
    path = _paths_named(params, "backbone")[0]
    params = _set_at(params, path, theirs["params"])
    if "batch_stats" in mine:
      state = dict(state, batch_stats=_set_at(state["batch_stats"], path, theirs["batch_stats"]))
    return params, state

  # ----------------------------------------------------------------------- identity
  def signature(self) -> dict:
    """What a checkpoint must match to be restored into this method (JSON-serializable)."""
    return {"method": self.name}


def _paths_named(tree, name, prefix=()) -> list:
  """Key paths (tuples) of the dict nodes called `name` in a nested dict (not below them)."""
  if not isinstance(tree, dict):
    return []
  out = []
  for k, v in tree.items():
    out += [prefix + (k,)] if k == name else _paths_named(v, name, prefix + (k,))
  return out


def _set_at(tree, path, value):
  """A copy of nested dict `tree` with `tree[path[0]]...[path[-1]] = value`."""
  if not path:
    return value
  return {**tree, path[0]: _set_at(tree[path[0]], path[1:], value)}


def _check_same_shapes(mine, theirs, what: str) -> None:
  """ValueError naming the first leaf where two variable trees differ in presence or shape."""
  flat_mine = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_leaves_with_path(mine)}
  flat_theirs = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_leaves_with_path(theirs)}
  for key in sorted(set(flat_mine) | set(flat_theirs)):
    if key not in flat_theirs:
      raise ValueError(f"{what} has no {key} (this run's backbone has it: a different architecture)")
    if key not in flat_mine:
      raise ValueError(f"{what} has {key}, which this run's backbone lacks (a different architecture)")
    a, b = tuple(flat_mine[key].shape), tuple(flat_theirs[key].shape)
    if a != b:
      raise ValueError(f"{what} does not fit this run's: {key} is {b} there and {a} here")


def _at(tree, path):
  """`tree[path[0]][path[1]]...`, or None where the path does not exist."""
  for k in path:
    if not isinstance(tree, dict) or k not in tree:
      return None
    tree = tree[k]
  return tree
