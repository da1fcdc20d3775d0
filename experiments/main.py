r"""jax_ssl experiments: pretrain a method, then evaluate its frozen features.

  python experiments/main.py --config experiments/configs/simclr_cifar10.py:quick --workdir runs/simclr
  python experiments/main.py --workdir runs/simclr --mode evaluate          # any saved checkpoint
  python experiments/main.py --workdir runs/simclr --mode export            # the backbone alone
  python experiments/main.py --workdir runs/simclr --mode finetune          # 10% labels vs random init
  python experiments/main.py --config ...:quick --workdir runs/x --config.train.epochs=5   # overrides

Modes: train_and_evaluate (default), train, evaluate, prepare, export, linear, finetune. A run resumes automatically from the
checkpoints in --workdir; SIGTERM/SIGINT save a checkpoint at the next step boundary and exit 0.
`evaluate` reads the run's config from --workdir/config.json unless --config is given,
restores the latest checkpoint (or --step) and prints the kNN / linear table. `prepare`
computes the method's dataset-level inputs offline (DetCon's FH masks, on every core and
split across the processes of a multi-host launch; resumable) without training. `export` writes
the checkpoint's backbone (--step, default the latest) to --workdir/export/: backbone.npz, the
model card backbone.json and, for ResNets, backbone.torchvision.npz (torchvision names, OIHW).
`linear` / `finetune` run the published supervised protocols on a checkpoint (config.eval.linear_sgd,
config.eval.finetune: SGD linear evaluation on frozen features; fine-tuning with a label fraction
against the same network from random init) and write results_linear.json / results_finetune.json.

Several processes (hosts), each reading its own slice of every global batch: run on each
  python experiments/main.py --config ... --workdir SHARED_DIR --coordinator_address HOST0:PORT \
      --num_processes P --process_id I
(on TPU pods / SLURM leave the three out and pass --distributed: JAX detects them).
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (path[:variant]).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder: checkpoints, metrics, plots, results.", required=True)
_MODE = flags.DEFINE_enum("mode", "train_and_evaluate", ["train_and_evaluate", "train", "evaluate", "prepare", "export", "linear", "finetune"],
                              "What to run.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step to evaluate (default: the latest).")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (multi-process runs).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes (multi-process runs).")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index (multi-process runs).")
_DISTRIBUTED = flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize() with auto-detected "
                                 "settings (TPU pods, SLURM); implied by --coordinator_address.")


def _config_path(argv):
  """The file part of --config=PATH[:VARIANT] (or --config PATH[:VARIANT]) in `argv`, or None."""
  for i, a in enumerate(argv[1:], 1):
    if a.startswith("--config="):
      return a.split("=", 1)[1].split(":", 1)[0]
    if a == "--config" and i + 1 < len(argv):
      return argv[i + 1].split(":", 1)[0]
  return None


def _parse_flags(argv):
  """absl flag parsing with one clear line for a bad flag or config override (no traceback)."""
  path = _config_path(argv)
  if path is not None and not os.path.isfile(path):
    print(f"error: config file not found: {path} (expected e.g. experiments/configs/simclr_cifar10.py:quick)",
          file=sys.stderr)
    sys.exit(2)
  try:
    return flags.FLAGS(argv)
  except (flags.Error, KeyError, AttributeError, TypeError, ValueError) as e:
    detail = e
    while isinstance(detail, BaseException) and detail.args:
      detail = detail.args[0]
    detail = " ".join(str(detail).split())
    if "Traceback (most recent call last)" in detail:  # an error raised inside the config file
      detail = "config file: " + detail.rsplit("Error: ", 1)[-1]
    overrides = [a.split("=")[0] for a in argv[1:] if a.startswith("--config.")]
    hint = f" (overrides given: {', '.join(overrides)})" if overrides else ""
    print(f"error: bad command line or unknown config key: {detail}{hint}", file=sys.stderr)
    sys.exit(2)


def _import_tensorflow_quietly():
  """Imports TensorFlow with the process's stderr closed for the duration, unless asked not to.

  TF 2.21's C++ libraries log through absl before absl is initialized, so TF_CPP_MIN_LOG_LEVEL
  no longer hides their start-up lines ("All log messages before absl::InitializeLog() ...",
  the oneDNN notice); on stderr they would bury the one `error:` line of a bad input. A
  Python exception during the import still propagates (and prints) after stderr is back.
  TF_CPP_MIN_LOG_LEVEL below 2 shows them again.
  """
  if int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") or 0) < 2:
    return
  sys.stderr.flush()
  saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
  os.dup2(devnull, 2)
  try:
    import tensorflow  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  finally:
    os.dup2(saved, 2)
    os.close(devnull)
    os.close(saved)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if _CONFIG.value is not None and _MODE.value in ("train_and_evaluate", "train"):
    from experiments.configs._common import check_train_length  # pylint: disable=g-import-not-at-top

    try:  # before TensorFlow and JAX load: a bad run length is reported in a second
      check_train_length(_CONFIG.value.train)
    except ValueError as e:
      print(f"error: {e}", file=sys.stderr)
      return 2
  _import_tensorflow_quietly()
  if _COORDINATOR.value or _NUM_PROCESSES.value or _DISTRIBUTED.value:
    from jax_ssl.train import initialize_distributed  # pylint: disable=g-import-not-at-top

    initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  from experiments import runner  # pylint: disable=g-import-not-at-top

  logging.set_verbosity(logging.WARNING)
  workdir = os.path.abspath(_WORKDIR.value)
  try:
    if _MODE.value == "export":
      for path in runner.run_export(workdir, step=_STEP.value):
        print(f"wrote {path}", flush=True)
      return 0
    config = runner.resolve_config(_CONFIG.value, workdir, mode=_MODE.value)
    if _MODE.value == "prepare":
      runner.run_prepare(config)
      return 0
    if _MODE.value in ("linear", "finetune"):
      runner.run_protocol(config, workdir, _MODE.value, step=_STEP.value)
      return 0
    if _MODE.value in ("train_and_evaluate", "train"):
      result = runner.run_train(config, workdir)
      if result.preempted:
        return 0
    if _MODE.value in ("train_and_evaluate", "evaluate"):
      runner.run_evaluate(config, workdir, step=_STEP.value)
  except runner.USER_ERRORS as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)), flags_parser=_parse_flags)
