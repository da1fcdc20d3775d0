"""Training: state, the one jitted step, sharding, optimizers, checkpoints and the loop."""

from jax_ssl.parallel import (DATA_AXIS, any_process, batch_sharding, check_batch_divisible, make_mesh, replicated,
                              shard_batch)  # re-exported: the trainer's callers need them together
from jax_ssl.train._checkpoint import CheckpointError, Checkpointer
from jax_ssl.train._distributed import initialize_distributed
from jax_ssl.train._logging import MetricWriter, plot_loss_curve, read_metrics
from jax_ssl.train._loop import TrainingStopped, TrainResult, train
from jax_ssl.train._optim import cosine_between, decay_mask, grouped, make_optimizer, method_optimizer, scaled_lr, warmup_cosine
from jax_ssl.train._step import OnlineProbe, TrainState, init_train_state, make_train_step, reset_optimizer_state

__all__ = [
    "CheckpointError", "Checkpointer", "any_process", "initialize_distributed", "MetricWriter", "plot_loss_curve",
    "read_metrics", "TrainingStopped",
    "TrainResult", "train", "cosine_between", "decay_mask", "grouped", "make_optimizer", "method_optimizer", "scaled_lr", "warmup_cosine", "DATA_AXIS",
    "OnlineProbe", "TrainState", "batch_sharding", "check_batch_divisible", "init_train_state", "reset_optimizer_state", "make_mesh",
    "make_train_step", "replicated", "shard_batch",
]
