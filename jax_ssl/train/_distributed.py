"""Multi-process (multi-host) runs with JAX's own runtime: initialization (agreement: `jax_ssl.parallel`)."""

from __future__ import annotations

import os

import jax


def initialize_distributed(coordinator_address: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None) -> None:
  """`jax.distributed.initialize`, with CPU collectives enabled.

  On TPU pods and SLURM/Open MPI clusters all arguments may be None (JAX detects them). On
  CPU, cross-process collectives need an implementation: gloo (over TCP) is selected unless
  `JAX_CPU_COLLECTIVES_IMPLEMENTATION` says otherwise; it does not affect GPU or TPU backends.
  Must run before anything creates a JAX array.
  """
  if not os.environ.get("JAX_CPU_COLLECTIVES_IMPLEMENTATION"):
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                             process_id=process_id)
