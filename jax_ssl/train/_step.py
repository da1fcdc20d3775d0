"""Train state and the one jitted train step shared by every method.

Data parallelism uses `jax.jit` with explicit shardings (`jax_ssl.parallel`): the batch is
split along the mesh's data axis and the state is replicated. Every cross-example reduction
in a method (BatchNorm statistics, contrastive negatives, Sinkhorn sums) is therefore computed
over the *global* batch by the compiler, so a step on 8 devices equals a step on one device
holding the same global batch; the contract suite checks it for every method.

A step runs the method's phases (`Method.phases`): one update for most methods, several for
methods with several networks (generator / discriminator), each with its own optimizer, its
own non-finite guard and its own metrics.
"""

from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from jax_ssl.methods import Method
from jax_ssl.parallel import batch_sharding, replicated
from jax_ssl.train._optim import method_optimizer


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  opt_state: Any  # the optimizer's state; {phase name: state} for methods with several phases
  state: Any  # the method's non-trainable state: BN statistics, EMA targets, queues, dataset state...
  skipped: jax.Array  # steps with an update refused because a loss or gradients were not finite
  probe: Any = None  # the online linear probe's {"params", "opt_state"} (None: no probe)


class OnlineProbe:
  """A linear classifier trained beside the method on stop-gradient features (solo-learn's
  "online linear evaluation"): a running estimate of linear accuracy during pretraining.

  Every step it reads `method.embed` of the un-augmented evaluation view of each example
  (`"probe_image"`, added to the batch by the trainer with the example's `"label"`), takes one
  Adam step of the mean cross-entropy over the labelled examples (label >= 0; the network gets
  no gradient) and logs `online_probe/loss` and `online_probe/top1` (%, on the batch before
  the probe's update). Its parameters and optimizer state are checkpointed with the rest.
  """

  def __init__(self, num_classes: int, *, lr: float = 1e-3):
    if num_classes < 2:
      raise ValueError(f"the online probe needs a labelled training split with >= 2 classes, got {num_classes}")
    self.num_classes = int(num_classes)
    self.tx = optax.adam(lr)

  def init(self, features: jax.Array) -> dict:
    params = {"kernel": jnp.zeros((features.shape[-1], self.num_classes), jnp.float32),
              "bias": jnp.zeros((self.num_classes,), jnp.float32)}
    return {"params": params, "opt_state": self.tx.init(params)}

  def step(self, probe: dict, features: jax.Array, labels: jax.Array):
    features = jax.lax.stop_gradient(features.astype(jnp.float32))
    valid = labels >= 0
    safe = jnp.where(valid, labels, 0)

    def loss_fn(p):
      logits = features @ p["kernel"] + p["bias"]
      ce = optax.softmax_cross_entropy_with_integer_labels(logits, safe)
      n = jnp.maximum(jnp.sum(valid), 1)
      top1 = jnp.sum((jnp.argmax(logits, -1) == safe) & valid) / n
      return jnp.sum(jnp.where(valid, ce, 0.0)) / n, top1

    (loss, top1), grads = jax.value_and_grad(loss_fn, has_aux=True)(probe["params"])
    updates, opt_state = self.tx.update(grads, probe["opt_state"], probe["params"])
    new = {"params": optax.apply_updates(probe["params"], updates), "opt_state": opt_state}
    return new, {"online_probe/loss": loss, "online_probe/top1": 100.0 * top1}


def _phase_params(params, phase):
  return params if phase.key is None else params[phase.key]


def _with_phase_params(params, phase, sub):
  return sub if phase.key is None else {**params, phase.key: sub}


def init_train_state(method: Method, tx, rng: jax.Array, batch: dict, mesh, probe: OnlineProbe | None = None
                     ) -> TrainState:
  """Initializes parameters from a (global, sharded or not) example batch, replicated on `mesh`.

  `tx`: the run's optimizer (see `method_optimizer`), resolved into one per phase. `probe`: an
  `OnlineProbe` (the batch then carries "probe_image" and "label").
  """
  def init(rng, batch):
    params, state = method.init(rng, batch)
    params = method.project_params(params)
    opt = init_optimizer_state(method, tx, params)
    probe_state = None if probe is None else probe.init(method.embed(params, state, batch["probe_image"]))
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=opt,
                      state=state, skipped=jnp.zeros((), jnp.int32), probe=probe_state)

  return jax.jit(init, out_shardings=replicated(mesh))(rng, batch)


def init_optimizer_state(method: Method, tx, params):
  """The optimizer state of `params` as the train step reads it (one per phase when several)."""
  txs, phases = method_optimizer(method, tx), method.phases()
  opt = {p.name: txs[p.name].init(_phase_params(params, p)) for p in phases}
  return opt[phases[0].name] if len(phases) == 1 else opt


def reset_optimizer_state(method: Method, tx, params, opt_state):
  """`opt_state` with every leaf of a parameter named in `method.reset_optimizer_after_pass`
  (anywhere in its path) set to its initial value for `params`; the rest (other parameters'
  moments, step counts) kept. Traceable."""
  fresh = init_optimizer_state(method, tx, params)
  return jax.tree_util.tree_map_with_path(
      lambda path, old, new: new if method.resets_optimizer_state(path) else old, opt_state, fresh)


def _all_finite(tree) -> jax.Array:
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def _keep(ok, new, old):
  return jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)


def make_train_step(method: Method, tx, mesh, schedule=None, probe: OnlineProbe | None = None):
  """Returns the jitted `(state, batch, rng) -> (state, metrics)`; the state buffers are donated.

  The per-step key is `fold_in(rng, step)` (phase i > 0 folds in i as well), so randomness
  depends only on (seed, step). A phase whose loss or gradients are not finite leaves its
  parameters, its optimizer state and the method state unchanged; `skipped` counts the steps
  where any phase was refused (metric "nonfinite" = 1). With one phase the metrics are the
  method's plus "loss", "grad_norm", "nonfinite"; with several they are prefixed by the phase
  name ("generator/loss") and "loss" is the sum of the phases' losses. With `probe`, the online
  linear probe takes its step on the features of the parameters before this step's update.
  """
  txs, phases = method_optimizer(method, tx), method.phases()
  single = len(phases) == 1

  def step_fn(ts: TrainState, batch: dict, rng: jax.Array):
    step_rng = jax.random.fold_in(rng, ts.step)
    params, state = ts.params, ts.state
    opt_states = {phases[0].name: ts.opt_state} if single else dict(ts.opt_state)
    start = ts.params
    metrics, any_ok, all_ok, total = {}, jnp.array(False), jnp.array(True), 0.0
    for i, phase in enumerate(phases):
      seen = start if method.simultaneous_phases else params
      phase_rng = step_rng if i == 0 else jax.random.fold_in(step_rng, i)

      def loss_fn(sub, seen=seen, phase=phase, phase_rng=phase_rng):
        return phase.loss(_with_phase_params(seen, phase, sub), state, batch, phase_rng, ts.step)

      sub = _phase_params(params, phase)
      (loss, (new_state, m)), grads = jax.value_and_grad(loss_fn, has_aux=True)(_phase_params(seen, phase))
      updates, new_opt = txs[phase.name].update(grads, opt_states[phase.name], sub)
      ok = jnp.isfinite(loss) & _all_finite(grads)
      if single:  # the projection and the state update below are guarded together with the step
        new_sub = optax.apply_updates(sub, updates)
      else:
        new_sub = _keep(ok, optax.apply_updates(sub, updates), sub)
        new_state = _keep(ok, new_state, state)
      params = _with_phase_params(params, phase, new_sub)
      state = new_state
      opt_states[phase.name] = _keep(ok, new_opt, opt_states[phase.name])
      any_ok, all_ok, total = any_ok | ok, all_ok & ok, total + loss
      m = dict(m, loss=loss, grad_norm=optax.global_norm(grads), nonfinite=1 - ok.astype(jnp.int32))
      metrics.update(m if single else {f"{phase.name}/{k}": v for k, v in m.items()})
    new_params = method.project_params(params)
    new_state = method.update_state(new_params, state, ts.step)
    new_params = _keep(any_ok, new_params, ts.params)
    new_state = _keep(any_ok, new_state, ts.state)
    if not single:
      metrics["loss"] = total
      metrics["nonfinite"] = 1 - all_ok.astype(jnp.int32)
    if schedule is not None:
      metrics["lr"] = schedule(ts.step)
    new_probe = ts.probe
    if probe is not None:
      new_probe, probe_metrics = probe.step(ts.probe, method.embed(ts.params, ts.state, batch["probe_image"]),
                                            batch["label"])
      metrics.update(probe_metrics)
    new_ts = TrainState(step=ts.step + 1, params=new_params,
                        opt_state=opt_states[phases[0].name] if single else opt_states, state=new_state,
                        skipped=ts.skipped + (1 - all_ok.astype(jnp.int32)), probe=new_probe)
    return new_ts, metrics

  rep, data = replicated(mesh), batch_sharding(mesh)
  return jax.jit(step_fn, in_shardings=(rep, data, rep), out_shardings=(rep, rep), donate_argnums=0)
