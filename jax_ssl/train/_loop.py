"""The training loop: data -> jitted step -> metrics, checkpoints, resume, preemption."""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sys
import time
from typing import Any, Callable

import jax
import numpy as np
import optax

from jax_ssl import data as pipeline  # the public data API: train_dataset, steps_per_epoch
from jax_ssl.data import ArraySource
from jax_ssl.methods import Method, batch_spec, with_dataset_extras
from jax_ssl.parallel import (any_process, check_batch_divisible, extract_features_sharded, make_embed_fn,
                              make_mesh, replicated, shard_batch, to_host)
from jax_ssl.train import _logging as mlog
from jax_ssl.train._checkpoint import Checkpointer
from jax_ssl.train._optim import method_optimizer
from jax_ssl.train._step import (OnlineProbe, TrainState, init_optimizer_state, init_train_state, make_train_step,
                                 reset_optimizer_state)

log = logging.getLogger(__name__)


class TrainingStopped(RuntimeError):
  """The run stopped early (divergence guard); the last good checkpoint is intact."""


@dataclasses.dataclass
class TrainResult:
  state: TrainState
  step: int
  preempted: bool
  images_per_sec: float
  mesh: Any


class _PreemptionFlag:
  """SIGTERM/SIGINT set a flag; the loop checkpoints at the next step boundary and exits."""

  def __init__(self):
    self.signum = None
    self._old = {}

  def __enter__(self):
    for sig in (signal.SIGTERM, signal.SIGINT):
      try:
        self._old[sig] = signal.signal(sig, self._handle)
      except ValueError:  # not in the main thread: leave signals alone
        pass
    return self

  def _handle(self, signum, frame):  # pylint: disable=unused-argument
    if self.signum is not None and signum == signal.SIGINT:
      raise KeyboardInterrupt  # a second Ctrl-C stops at once
    self.signum = signum

  def __exit__(self, *exc):
    for sig, old in self._old.items():
      signal.signal(sig, old)


def _prefetch_to_device(iterator, mesh, size: int = 2):
  """Keeps `size` batches in flight on the devices (transfers are asynchronous)."""
  import collections  # pylint: disable=g-import-not-at-top

  queue = collections.deque()
  for batch in iterator:
    queue.append(shard_batch(batch, mesh))
    if len(queue) >= size:
      yield queue.popleft()
  while queue:
    yield queue.popleft()


def train(method: Method, source: ArraySource, *, workdir: str, global_batch: int, total_steps: int,
          tx: optax.GradientTransformation, schedule=None, seed: int = 0, checkpoint_every: int = 500,
          keep_checkpoints: int = 3, log_every: int = 20, max_nonfinite_steps: int = 10,
          meta: dict | None = None, progress: bool = True, mesh=None,
          stop_after: int | None = None, sync_every: int | None = None, probe: OnlineProbe | None = None,
          evaluators: tuple = (), warm_start: Callable | None = None) -> TrainResult:
  """Pretrains `method` on `source`, resuming automatically from `workdir/checkpoints`.

  Args:
    global_batch: examples per step over all devices and processes.
    total_steps: the step count of the whole run (the schedule's horizon).
    checkpoint_every: save every N steps (and always at the end or on preemption).
    max_nonfinite_steps: stop when this many steps had a non-finite loss/gradient (those
      updates are never applied).
    meta: JSON-serializable run description stored with every checkpoint (the config).
    stop_after: stop (with a checkpoint) once this step is reached, as if preempted; for tests
      and for splitting a run into chunks.
    sync_every: with several processes, a stop signal received by any of them is agreed on
      every `sync_every` steps (default `log_every`; one small all-gather then, none in
      between), and all stop at that same step.
    tx: the run's optimizer (a `GradientTransformation`, or `mask -> tx`), made into the
      method's per-phase, per-group optimizers by `method_optimizer`.
    probe: an `OnlineProbe` trained beside the method on the batches' labels (logged with the
      training metrics).
    evaluators: objects with `every` (steps) and `run(train_state) -> {name: number}` (e.g.
      `jax_ssl.evaluate.KnnMonitor`), run every `every` steps and at the end, logged as
      kind "eval" to metrics.jsonl and TensorBoard.
    warm_start: `(params, state) -> (params, state)` on host numpy trees, applied once to a
      run that starts fresh (never on resume): the parameters another run's checkpoint gives
      (e.g. `lambda p, s: method.warm_start(p, s, jax_ssl.load(other_workdir))`); the optimizer
      state is initialized for them.

  Methods with `dataset_pass_every` get `dataset_pass` at those boundaries, before the step:
  the features of the whole `source` are extracted with the current parameters, sharded over
  every device and process, and the method's new state is checkpointed with the rest. A
  checkpoint taken at a boundary holds the state before that boundary's pass, so a resumed
  run redoes it (from the same parameters: the same result) and sees exactly the batches of
  an uninterrupted run; the pipeline is rebuilt from `dataset_extras` after every pass (unless
  the method's `pass_changes_inputs` is False).
  """
  # Signals are caught from the start (data loading and compilation can take minutes); they
  # take effect at the first step boundary.
  with _PreemptionFlag() as flag:
    mesh = mesh or make_mesh()
    check_batch_divisible(global_batch, mesh, "global batch size")
    pcount, pindex = jax.process_count(), jax.process_index()
    is_chief = pindex == 0
    os.makedirs(workdir, exist_ok=True)
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), save_every=checkpoint_every, keep=keep_checkpoints)
    signature = method.signature()
    meta = {"signature": signature, "run": meta or {}}
    rng = jax.random.key(seed)
    init_rng, step_rng = jax.random.split(rng)
    method.set_schedule(steps_per_epoch=pipeline.steps_per_epoch(len(source), global_batch), total_steps=total_steps,
                        num_examples=len(source))
    tx = method_optimizer(method, tx)
    sync_every = max(1, int(sync_every or log_every))

    with_extras = lambda method_state: with_dataset_extras(method, source, method_state)
    view_fn = method.make_views
    if probe is not None:  # the probe's input: the un-augmented evaluation view, and the label
      view_fn = lambda ex, seed: {**method.make_views(ex, seed), "probe_image": method.eval_preprocess(ex["image"]),
                                  "label": ex["label"]}

    def dataset(start, method_state):
      order, host_state = None, None
      if method.dataset_pass_every and method.pass_changes_inputs and method_state is not None:  # numpy, every process
        host_state = jax.tree.map(to_host, method_state)
        order = method.sampler(host_state, len(source))
      return pipeline.train_dataset(with_extras(host_state), view_fn, global_batch=global_batch, seed=seed,
                                    start_step=start, process_index=pindex, process_count=pcount, order=order,
                                    partner_key=method.partner_key)

    def make_batches(start, method_state):
      return _prefetch_to_device(pipeline.as_numpy_iterator(dataset(start, method_state), source), mesh)

    pass_embed = make_embed_fn(method.pass_features, mesh) if method.dataset_pass_every else None
    # Whatever the pass's jitted code returns, the train step reads a replicated state.
    after_pass = jax.jit(lambda p, s: (method.after_dataset_pass(p, s), s), out_shardings=replicated(mesh))
    reset_opt = jax.jit(lambda p, o: reset_optimizer_state(method, tx, p, o), out_shardings=replicated(mesh))

    def maybe_dataset_pass(ts, step):
      if pass_embed is None or not method.dataset_pass_due(step):
        return ts, False
      t0 = time.perf_counter()
      feats = None  # a method clustering its own memory bank needs no extraction (DeepCluster-v2)
      if method.pass_needs_features(step):
        feats = extract_features_sharded(pass_embed, method.eval_preprocess, ts.params, ts.state, source,
                                         batch_size=global_batch, mesh=mesh)
      params, method_state = after_pass(ts.params, method.dataset_pass(ts.params, ts.state, feats, step=step))
      ts = ts.replace(params=params, state=method_state)
      if method.reset_optimizer_after_pass:
        ts = ts.replace(opt_state=reset_opt(ts.params, ts.opt_state))
      if is_chief:
        log.info("dataset pass at step %d: %d examples in %.1fs", step, len(source), time.perf_counter() - t0)
      return ts, True

    # Shapes for initialization come from the first batch of the run.
    first = next(iter(dataset(0, None).take(1).as_numpy_iterator()))
    # What `init` needs, stored with every checkpoint so that `jax_ssl.load` rebuilds the
    # network without the training data.
    init_keys = [k for k in first if probe is None or k not in ("probe_image", "label")]
    meta["init"] = {"batch": batch_spec({k: first[k] for k in init_keys}),
                    "steps_per_epoch": method.steps_per_epoch, "total_steps": int(total_steps),
                    "num_examples": len(source)}
    state = init_train_state(method, tx, init_rng, shard_batch(first, mesh), mesh, probe=probe)
    start_step = 0
    if ckpt.latest_step() is not None:
      state, _, start_step = ckpt.restore(state, signature)
      log.info("resumed from %s at step %d", ckpt.directory, start_step)
      if ckpt.unreadable:
        # Move the bad steps aside: left in place they would stay the "latest" checkpoint and
        # stop this run from saving those step numbers again.
        bad = "; ".join(f"step {s} ({why})" for s, why in ckpt.unreadable)
        dest = ckpt.quarantine([s for s, _ in ckpt.unreadable])
        if is_chief:
          print(f"Warning: the newest checkpoint(s) in {ckpt.directory} could not be read: {bad}. "
                f"Moved them to {dest}; resuming from the previous good checkpoint, step {start_step}.",
                flush=True)
      if is_chief:
        print(f"Resuming from checkpoint step {start_step} in {ckpt.directory}", flush=True)
    elif warm_start is not None:
      params, method_state = warm_start(jax.tree.map(to_host, state.params), jax.tree.map(to_host, state.state))
      params, method_state = jax.tree.map(to_host, (params, method_state))  # the source's arrays may sit elsewhere
      fresh = jax.jit(lambda p, s: (p, s, init_optimizer_state(method, tx, p)), out_shardings=replicated(mesh))
      params, method_state, opt_state = fresh(params, method_state)
      state = state.replace(params=params, state=method_state, opt_state=opt_state)
    writer = mlog.MetricWriter(workdir) if is_chief else None
    if is_chief:
      mlog.truncate_metrics(workdir, start_step)

    train_step = make_train_step(method, tx, mesh, schedule, probe=probe)
    state, _ = maybe_dataset_pass(state, start_step)
    batches = make_batches(start_step, state.state)
    end_step = total_steps if stop_after is None else min(stop_after, total_steps)

    bar = None
    if progress and is_chief:
      from tqdm.auto import tqdm  # pylint: disable=g-import-not-at-top

      bar = tqdm(total=total_steps, initial=start_step, desc=f"{method.name}", unit="step",
                 dynamic_ncols=True, file=sys.stdout, mininterval=1.0)
    step = start_step
    preempted = False
    pending = []  # metrics kept on device until the next log step: no host sync per step
    t_last, step_last, ips = time.perf_counter(), start_step, 0.0
    t_first = None
    while step < end_step:
      batch = next(batches)
      state, metrics = train_step(state, batch, step_rng)
      step += 1
      pending.append(metrics)
      if bar is not None:
        bar.update(1)
      if step % log_every == 0 or step == end_step:
        host = jax.device_get(pending)
        pending = []
        now = time.perf_counter()
        if t_first is None:  # the first interval includes compilation
          t_first = now
        else:
          ips = (step - step_last) * global_batch / (now - t_last)
        t_last, step_last = now, step
        avg = {k: float(np.mean([m[k] for m in host])) for k in host[-1]}
        avg["nonfinite"] = float(sum(m["nonfinite"] for m in host))
        avg["images_per_sec"] = ips
        if writer is not None:
          writer.write(step, avg)
        if bar is not None:
          post = {"loss": f"{avg['loss']:.4f}", "img/s": f"{ips:.0f}"}
          if "lr" in avg:
            post["lr"] = f"{avg['lr']:.3g}"
          bar.set_postfix(post, refresh=False)
        stop_reason = method.check_metrics(avg)
        if stop_reason:
          if bar is not None:
            bar.close()
          ckpt.wait()
          raise TrainingStopped(f"training stopped at step {step}: {stop_reason}. The last good checkpoint "
                                f"is step {ckpt.latest_step()} in {ckpt.directory}.")
        skipped = int(jax.device_get(state.skipped))
        if skipped >= max_nonfinite_steps:
          if bar is not None:
            bar.close()
          ckpt.wait()
          last = ckpt.latest_step()
          ckpt.close()
          where = (f"The last good checkpoint is step {last} in {ckpt.directory} (restarting resumes from it)"
                   if last is not None else f"No checkpoint was saved yet in {ckpt.directory}")
          raise TrainingStopped(
              f"training stopped at step {step}: {skipped} steps had a non-finite loss or gradient "
              f"(limit max_nonfinite_steps={max_nonfinite_steps}); their updates were not applied. {where}. "
              "Lower the learning rate, add gradient clipping or check the data.")
      ckpt.save(step, state, meta)
      for ev in evaluators:  # every process runs them (they may be collectives); the chief logs
        if step % int(ev.every) == 0 or step == total_steps:
          results = {k: float(v) for k, v in ev.run(state).items()}
          if writer is not None:
            writer.write(step, results, kind="eval")
          if is_chief:
            line = ", ".join(f"{k} {v:.2f}" for k, v in results.items())
            (bar.write if bar is not None else print)(f"step {step}: {line}")
      # Every process must leave the loop at the same step (the next step is a collective), so
      # a signal received by any process stops all of them at the next agreement step.
      if pcount == 1:
        stop = flag.signum is not None
      else:
        stop = (step % sync_every == 0 or step == end_step) and any_process(flag.signum is not None)
      if stop:
        preempted = True
        break
      if step < end_step:
        state, passed = maybe_dataset_pass(state, step)
        if passed and method.pass_changes_inputs:  # the same batches either way: the pipeline is a function of the step
          batches = make_batches(step, state.state)
    if step == total_steps and not preempted:  # inference statistics for the final checkpoint (DCGAN)
      state = state.replace(state=method.calibrate(state.params, state.state, source, mesh=mesh))
    if step == total_steps or preempted or step == end_step:
      ckpt.save(step, state, meta, force=True)
    ckpt.wait()
    ckpt.close()
    if bar is not None:
      bar.close()
    if preempted and is_chief:
      name = signal.Signals(flag.signum).name if flag.signum is not None else "a stop signal on another process"
      print(f"\nReceived {name}: saved a checkpoint at step {step} in {ckpt.directory}.\n"
            f"Resume by running the same command again (same --workdir); training continues from step {step}.",
            flush=True)
    if is_chief:
      mlog.plot_loss_curve(workdir)
    return TrainResult(state=state, step=step, preempted=preempted, images_per_sec=ips, mesh=mesh)
