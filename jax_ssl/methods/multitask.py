"""Several self-supervised tasks on one shared trunk (Doersch & Zisserman, ICCV 2017,
"Multi-task Self-Supervised Visual Learning", the "naive" multi-task combination: one trunk,
one head per task, the tasks' losses summed with weights).

Every task is an ordinary method (RotNet, Context Prediction, Jigsaw, SimCLR...) whose
network keeps its trunk under the top-level parameter name `backbone` (and its BatchNorm
statistics under `batch_stats/backbone`). `MultiTask` keeps ONE copy of the trunk, under
`params["trunk"]`, and each task's remaining parameters under `params["tasks"][name]`; a
task's loss sees `{**its params, "backbone": trunk}`, so the gradients of all tasks meet in
the trunk. Each example gives every task its own views (keys prefixed `name/`, seeds split
per task); the tasks run one after the other in a step and the trunk's BatchNorm statistics
pass from one to the next (each task normalises with its own batch, as separate forward
passes do). Evaluation features are the trunk's, through `eval_task`'s `embed` (default the first task).

Restrictions, checked at construction: single-phase tasks without their own optimizer
hooks, state updates, projections or dataset passes (an EMA target or prototypes would need
the trunk twice), and the same trunk in every task.
"""

from __future__ import annotations

from typing import Mapping

import jax

from jax_ssl.data import ops
from jax_ssl.methods._base import Method

_HOOKS = ("phases", "update_state", "project_params", "param_groups", "param_labels", "dataset_pass",
          "after_dataset_pass", "sampler")


def _split(tree: dict, where: str, name: str):
  if not isinstance(tree, Mapping) or "backbone" not in tree:
    raise ValueError(f"multitask: task {name!r} keeps no trunk under {where}['backbone'] (keys: "
                     f"{sorted(tree) if isinstance(tree, Mapping) else type(tree).__name__}); only tasks whose "
                     "network names its trunk 'backbone' can share it")
  return tree["backbone"], {k: v for k, v in tree.items() if k != "backbone"}


class MultiTask(Method):
  """Tasks sharing one trunk.

  Args:
    tasks: name -> a `Method`, or name -> keyword arguments of the registered method of that
      name (built with `backbone`, `mean`, `std`), in the order the tasks run.
    weights: name -> the weight of its loss (default 1 for every task).
    eval_task: the task whose evaluation view and `embed` give the trunk's features (default the
      first; config dicts sort their keys, so configs name it: an RGB task, not Colorization's grey input).
    backbone, mean, std: for tasks given as keyword arguments.
  """

  name = "multitask"

  def __init__(self, *, tasks: Mapping, weights: Mapping | None = None, eval_task: str | None = None,
               backbone=None, mean=None, std=None):
    from jax_ssl.methods import REGISTRY  # pylint: disable=g-import-not-at-top  (the registry imports this file)

    if not tasks:
      raise ValueError("multitask: no tasks given")
    self.tasks = {}
    for name, task in tasks.items():
      if not isinstance(task, Method):
        if name not in REGISTRY or name == self.name:
          raise ValueError(f"multitask: unknown task {name!r}; available: {sorted(set(REGISTRY) - {self.name})}")
        extra = {k: v for k, v in (("backbone", backbone), ("mean", mean), ("std", std)) if v is not None}
        task = REGISTRY[name](**extra, **dict(task))
      for hook in _HOOKS:
        if getattr(type(task), hook) is not getattr(Method, hook):
          raise ValueError(f"multitask: task {name!r} ({type(task).__name__}) overrides {hook!r}; only plain "
                           "single-phase tasks can share a trunk")
      if task.dataset_pass_every or task.partner_key:
        raise ValueError(f"multitask: task {name!r} needs dataset passes, which MultiTask does not compose")
      self.tasks[name] = task
    self.weights = {n: float((weights or {}).get(n, 1.0)) for n in self.tasks}
    unknown = sorted(set(weights or {}) - set(self.tasks))
    if unknown:
      raise ValueError(f"multitask: weights for unknown tasks {unknown}; tasks: {list(self.tasks)}")
    if eval_task is not None and eval_task not in self.tasks:
      raise ValueError(f"multitask: eval_task {eval_task!r} is not a task; tasks: {list(self.tasks)}")
    self.eval_name = eval_task or next(iter(self.tasks))
    self.first = self.tasks[self.eval_name]
    self.normalize = getattr(self.first, "normalize", None)

  # -- data
  def make_views(self, example, seed):
    seeds = ops.split_seed(seed, len(self.tasks))
    out = {}
    for (name, task), s in zip(self.tasks.items(), seeds):
      out.update({f"{name}/{k}": v for k, v in task.make_views(example, s).items()})
    return out

  def eval_preprocess(self, image):
    return self.first.eval_preprocess(image)

  @property
  def input_description(self):
    return self.first.input_description

  def eval_view(self, image):
    return self.first.eval_view(image)

  def prepare_source(self, source):
    for task in self.tasks.values():
      source = task.prepare_source(source)
    return source

  def set_schedule(self, **kw):
    super().set_schedule(**kw)
    for task in self.tasks.values():
      task.set_schedule(**kw)

  # -- model
  @staticmethod
  def _views(batch, name):
    prefix = f"{name}/"
    return {k[len(prefix):]: v for k, v in batch.items() if k.startswith(prefix)}

  def init(self, rng, batch):
    params, state, trunk, trunk_stats = {}, {}, None, None
    for i, (name, task) in enumerate(self.tasks.items()):
      p, s = task.init(jax.random.fold_in(rng, i), self._views(batch, name))
      tp, params[name] = _split(p, "params", name)
      stats = s.get("batch_stats") if isinstance(s, Mapping) else None
      ts = None
      if stats is not None:
        ts, rest = _split(stats, "state['batch_stats']", name)
        s = {**s, "batch_stats": rest}
      state[name] = s
      if trunk is None:
        trunk, trunk_stats = tp, ts
      elif jax.tree.structure(tp) != jax.tree.structure(trunk) or any(
          a.shape != b.shape for a, b in zip(jax.tree.leaves(tp), jax.tree.leaves(trunk))):
        raise ValueError(f"multitask: task {name!r} builds a different trunk from {next(iter(self.tasks))!r}")
    return {"trunk": trunk, "tasks": params}, {"trunk": trunk_stats, "tasks": state}

  def _task_trees(self, params, state, name, trunk_stats):
    p = {**params["tasks"][name], "backbone": params["trunk"]}
    s = state["tasks"][name]
    if trunk_stats is not None:
      s = {**s, "batch_stats": {**s["batch_stats"], "backbone": trunk_stats}}
    return p, s

  def loss(self, params, state, batch, rng, step):
    total, metrics = 0.0, {}
    trunk_stats, new_tasks = state["trunk"], {}
    for i, (name, task) in enumerate(self.tasks.items()):
      p, s = self._task_trees(params, state, name, trunk_stats)
      loss, (new_s, m) = task.loss(p, s, self._views(batch, name), jax.random.fold_in(rng, i), step)
      if trunk_stats is not None:
        trunk_stats, rest = _split(new_s["batch_stats"], "state['batch_stats']", name)
        new_s = {**new_s, "batch_stats": rest}
      new_tasks[name] = new_s
      total = total + self.weights[name] * loss
      metrics.update({f"{name}/{k}": v for k, v in dict(m, loss=loss).items()})
    return total, ({"trunk": trunk_stats, "tasks": new_tasks}, metrics)

  def embed(self, params, state, images):
    p, s = self._task_trees(params, state, self.eval_name, state["trunk"])
    return self.first.embed(p, s, images)

  def embed_blocks(self, params, state, images):
    p, s = self._task_trees(params, state, self.eval_name, state["trunk"])
    return self.first.embed_blocks(p, s, images)

  def backbone_variables(self, params, state):  # the one shared trunk
    out = {"params": params["trunk"]}
    return {**out, "batch_stats": state["trunk"]} if state["trunk"] else out

  def restored(self, params, state):  # each task sees its own restored trees (Colorization's prior)
    for name, task in self.tasks.items():
      task.restored(*self._task_trees(params, state, name, state["trunk"]))

  def check_metrics(self, metrics):
    for name, task in self.tasks.items():
      prefix = f"{name}/"
      msg = task.check_metrics({k[len(prefix):]: v for k, v in metrics.items() if k.startswith(prefix)})
      if msg:
        return f"{name}: {msg}"
    return None

  def signature(self):
    return {"method": self.name, "tasks": {n: t.signature() for n, t in self.tasks.items()},
            "weights": self.weights}
