"""A tiny training run for the fault-tolerance tests, usable in-process (`run`) or as a script.

As a script it is what a user's job would be: one `train()` call on a workdir, restarted after
a kill or preemption, optionally one of several processes:

  python tests/train/fault_driver.py --workdir W --steps 40 [--devices 2] [--sleep 0.05]
      [--coordinator_address 127.0.0.1:PORT --num_processes 2 --process_id I] [--out params.npz]

The method is SimCLR on a two-layer convnet (compiles in seconds) with extra method state that changes every step (an
EMA of the parameters, a step counter and a queue of projections, all of which feed back into
the loss) and a loss that uses the step's rng, so exact resume is checked for every kind of
state a method can carry, without depending on any particular method beyond SimCLR.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

if __name__ == "__main__":  # a script: this checkout's jax_ssl and tests, not an installed copy
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from jax_ssl.methods import SimCLR  # noqa: E402

QUEUE = 8


class TinyNet(nn.Module):
  """Two strided convolutions with BatchNorm: [N, H, W, 3] -> [N, 2 * width]. Compiles fast."""

  width: int = 8

  @nn.compact
  def __call__(self, x, *, train: bool, return_blocks: bool = False):
    # No bias before BatchNorm: its true gradient is zero, so Adam would turn rounding noise into
    # full-size steps and runs that differ only in summation order would disagree.
    x = nn.Conv(self.width, (3, 3), (2, 2), use_bias=False)(x)
    x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9)(x))
    x = nn.relu(nn.Conv(2 * self.width, (3, 3), (2, 2))(x))
    f = jnp.mean(x, axis=(1, 2))
    return {"final": f} if return_blocks else f


class StatefulSimCLR(SimCLR):
  """SimCLR plus method state updated every step: EMA of params, counter, projection queue.

  The loss adds `u * 1e-2 * ||params - ema||^2 + 1e-3 * mean(queue^2)` with `u ~ U(0, 1)` drawn
  from the step's rng, so a resumed run whose EMA, queue or rng differs from an uninterrupted
  run ends with different parameters. `nan_after=k` makes the loss NaN from step k on (a
  diverging run); `sleep` slows the input pipeline so that signals can arrive mid-run.
  """

  name = "stateful_simclr_test"

  def __init__(self, *, nan_after: int | None = None, sleep: float = 0.0, **kw):
    super().__init__(backbone=TinyNet(), image_size=16, proj_hidden_dims=(16,), proj_dim=8,
                     temperature=0.5, **kw)
    self.nan_after = nan_after
    self.sleep = sleep

  def make_views(self, example, seed):
    views = super().make_views(example, seed)
    if self.sleep:
      import tensorflow as tf  # pylint: disable=g-import-not-at-top

      def pause(x):
        time.sleep(self.sleep)
        return x

      views["view1"] = tf.ensure_shape(tf.py_function(pause, [views["view1"]], tf.float32),
                                       views["view1"].shape)
    return views

  def init(self, rng, batch):
    params, state = super().init(rng, batch)
    return params, dict(state, ema=params, count=jnp.zeros((), jnp.int32), queue=jnp.zeros((QUEUE, 8)))

  def loss(self, params, state, batch, rng, step):
    loss, (new_bn, metrics) = super().loss(params, {"batch_stats": state["batch_stats"]}, batch, rng, step)
    u = jax.random.uniform(rng)
    dist = sum(jnp.sum((p - e) ** 2) for p, e in zip(jax.tree.leaves(params), jax.tree.leaves(state["ema"])))
    loss = loss + u * 1e-2 * dist + 1e-3 * jnp.mean(state["queue"] ** 2)
    if self.nan_after is not None:
      loss = loss * jnp.where(step >= self.nan_after, jnp.nan, 1.0)
    z = self.model.apply({"params": params, "batch_stats": state["batch_stats"]}, batch["view1"][:QUEUE],
                         train=False)[1]
    queue = jnp.concatenate([jax.lax.stop_gradient(z), state["queue"]])[:QUEUE]
    return loss, (dict(state, batch_stats=new_bn["batch_stats"], queue=queue), metrics)

  def update_state(self, params, state, step):
    ema = jax.tree.map(lambda e, p: 0.9 * e + 0.1 * p, state["ema"], params)
    return dict(state, ema=ema, count=state["count"] + 1)


def run(workdir, *, steps, devices=None, stop_after=None, checkpoint_every=4, log_every=2, sleep=0.0,
        nan_after=None, max_nonfinite_steps=3, method=None, n=64, batch=16, progress=False, source=None):
  """One `train()` call on a toy source (or `source`); returns the TrainResult."""
  from jax_ssl import train  # pylint: disable=g-import-not-at-top
  from tests.helpers import toy_source  # pylint: disable=g-import-not-at-top

  method = method or StatefulSimCLR(nan_after=nan_after, sleep=sleep)
  schedule = train.warmup_cosine(base_lr=3e-3, total_steps=steps, warmup_steps=2)
  tx = train.make_optimizer("adamw", schedule, weight_decay=1e-4)
  mesh = train.make_mesh(jax.devices()[:devices] if devices else None)
  return train.train(method, source if source is not None else toy_source(n=n), workdir=workdir, global_batch=batch, total_steps=steps, tx=tx,
                     schedule=schedule, seed=3, checkpoint_every=checkpoint_every, keep_checkpoints=3,
                     log_every=log_every, max_nonfinite_steps=max_nonfinite_steps, progress=progress,
                     mesh=mesh, stop_after=stop_after)


def flat_state(state) -> dict:
  """Host copies of every leaf of a TrainState, keyed by its path (for exact comparisons)."""
  leaves = jax.tree_util.tree_leaves_with_path(jax.device_get(state))
  return {jax.tree_util.keystr(k): np.asarray(v) for k, v in leaves}


def main(argv=None):
  p = argparse.ArgumentParser()
  p.add_argument("--workdir", required=True)
  p.add_argument("--steps", type=int, required=True)
  p.add_argument("--devices", type=int, default=None)
  p.add_argument("--checkpoint_every", type=int, default=4)
  p.add_argument("--log_every", type=int, default=1)
  p.add_argument("--sleep", type=float, default=0.0)
  p.add_argument("--nan_after", type=int, default=None)
  p.add_argument("--out", default=None, help="write the final train state here (.npz, process 0) when "
                 "the run completes")
  p.add_argument("--method", default="simclr", choices=("simclr", "cluster"),
                 help="cluster: the dataset-pass test method (k-means, sampler, partners, head reset)")
  p.add_argument("--coordinator_address", default=None)
  p.add_argument("--num_processes", type=int, default=None)
  p.add_argument("--process_id", type=int, default=None)
  args = p.parse_args(argv)
  from jax_ssl import train  # pylint: disable=g-import-not-at-top

  if args.coordinator_address:
    train.initialize_distributed(args.coordinator_address, args.num_processes, args.process_id)
  try:
    method = None
    if args.method == "cluster":
      from tests.train.test_dataset_pass import SampledCluster  # pylint: disable=g-import-not-at-top

      method = SampledCluster()
    result = run(args.workdir, steps=args.steps, devices=args.devices, checkpoint_every=args.checkpoint_every,
                 log_every=args.log_every, sleep=args.sleep, nan_after=args.nan_after, method=method)
  except train.TrainingStopped as e:
    print(f"error: {e}", file=sys.stderr, flush=True)
    return 3
  if args.out and not result.preempted and jax.process_index() == 0:
    np.savez(args.out, **flat_state(result.state))
  print(f"process {jax.process_index()} finished at step {result.step} preempted={result.preempted}", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
