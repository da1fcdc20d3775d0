"""The command line, end to end, as a user runs it: real subprocesses on real CIFAR images (the
further evaluation modes of one checkpoint in-process, through the runner functions main.py calls)."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from jax_ssl import pretrained
from jax_ssl.data import eval_dataset, load_source

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAIN = os.path.join(ROOT, "experiments", "main.py")
CONFIG = os.path.join(ROOT, "experiments", "configs", "simclr_cifar10.py")
CIFAR = os.path.join(ROOT, "..", "shared", "data", "cifar10_subset")
HYMENOPTERA = os.path.join(ROOT, "..", "shared", "data", "hymenoptera_data")

# A tiny network and a short schedule: what is tested is the wiring, not the accuracy.
TINY = [
    "--config.model.width=8", "--config.method_kwargs.proj_hidden_dims=(32,)",
    "--config.method_kwargs.proj_dim=16", "--config.train.batch_size=64", "--config.train.steps=20",
    "--config.train.warmup_epochs=1", "--config.train.log_every=5", "--config.train.checkpoint_every=10",
    "--config.eval.batch_size=128", "--config.eval.linear_iters=50",
]


def _subset(root, per_class_train=48, per_class_test=16):
  """A copy of the first images of every class of the shared CIFAR subset (keeps the test fast)."""
  for split, n in (("train", per_class_train), ("test", per_class_test)):
    for cls in sorted(os.listdir(os.path.join(CIFAR, split))):
      src = os.path.join(CIFAR, split, cls)
      dst = os.path.join(root, split, cls)
      os.makedirs(dst)
      for name in sorted(os.listdir(src))[:n]:
        shutil.copy(os.path.join(src, name), dst)
  return root


def _run(*args, devices=1, timeout=900):
  """Runs main.py on `devices` simulated CPU devices (1: a user's plain run)."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  env.pop("XLA_FLAGS", None)
  if devices > 1:
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  return subprocess.run([sys.executable, MAIN, *args], capture_output=True, text=True, env=env,
                        timeout=timeout, cwd=ROOT)


@pytest.mark.slow
def test_train_evaluate_and_reevaluate_a_checkpoint(tmp_path):
  data = _subset(str(tmp_path / "data"))
  workdir = str(tmp_path / "run")
  proc = _run(f"--config={CONFIG}:quick", f"--workdir={workdir}", f"--config.data.path={data}", *TINY)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  # The run folder a person looks at.
  for name in ("config.json", "metrics.jsonl", "loss_curve.png", "results.json", "results.txt"):
    assert os.path.exists(os.path.join(workdir, name)), name
  assert os.listdir(os.path.join(workdir, "tb"))
  assert "random init" in proc.stdout and "raw pixels" in proc.stdout
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  losses = [r["loss"] for r in rows if r["kind"] == "train"]
  steps = [r["step"] for r in rows if r["kind"] == "train"]
  assert steps == sorted(steps) and steps[-1] == 20  # config.train.steps sizes the run
  # Learning on real images: the contrastive loss falls well below its starting value.
  assert losses[-1] < losses[0] - 0.2, losses  # 5-step averages: measured 4.74 -> 4.32
  with open(os.path.join(workdir, "results.json")) as f:
    first = json.load(f)
  assert set(first["report"]) == {"pretrained", "random_init", "pixels", "pixels_std"}
  probe = {k: v for k, v in first["report"]["pixels_std"].items() if k.startswith("linear")}
  assert probe and probe.items() <= first["report"]["pixels"].items()  # one probe for both pixel rows

  # Restoring the final checkpoint with the evaluate command gives exactly the same numbers,
  # reading the run's config from the workdir.
  os.remove(os.path.join(workdir, "results.json"))
  proc = _run(f"--workdir={workdir}", "--mode=evaluate")
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  with open(os.path.join(workdir, "results.json")) as f:
    again = json.load(f)
  assert again["step"] == first["step"]
  assert again["report"] == first["report"]

  # The other evaluation modes on the checkpoint, in this process (`main.py` hands each to the
  # runner function called here once it has the config; the CLI itself is covered above).
  from experiments import runner

  def saved_config(**overrides):
    config = runner.resolve_config(None, workdir, mode="evaluate")
    for key, value in overrides.items():
      node = config
      *parents, leaf = key.split(".")
      for name in parents:
        node = node[name]
      node[leaf] = value
    return config

  # Transfer: the CIFAR checkpoint evaluated on another dataset (ants / bees photographs, any
  # size: the evaluation view resizes them), written beside the run's own results.
  runner.run_evaluate(saved_config(**{"eval.transfer.path": HYMENOPTERA, "eval.transfer.test_split": "val",
                                      "eval.baselines": False}), workdir)
  with open(os.path.join(workdir, "results_transfer.json")) as f:
    transfer = json.load(f)
  assert "hymenoptera_data/val" in transfer["test_split"] and transfer["step"] == first["step"]
  assert 0 <= transfer["report"]["pretrained"]["knn_top1_k20"] <= 100
  with open(os.path.join(workdir, "results.json")) as f:
    assert json.load(f)["report"] == first["report"]  # untouched

  # The published protocols on the checkpoint: SGD linear evaluation, and fine-tuning with 10%
  # of the labels against the same network from random init.
  runner.run_protocol(saved_config(**{"eval.linear_sgd.epochs": 1}), workdir, "linear")
  with open(os.path.join(workdir, "results_linear.json")) as f:
    linear = json.load(f)
  assert linear["protocol"] == "linear" and linear["step"] == first["step"] and 0 <= linear["rows"]["pretrained"]["top1"] <= 100
  runner.run_protocol(saved_config(**{"eval.finetune.epochs": 2, "eval.finetune.batch_size": 32}), workdir, "finetune")
  with open(os.path.join(workdir, "results_finetune.json")) as f:
    tuned = json.load(f)
  assert set(tuned["rows"]) == {"pretrained", "random_init"} and tuned["labelled_examples"] == 50  # round(0.1 x 48) per class
  assert tuned["rows"]["pretrained"]["steps"] == tuned["rows"]["random_init"]["steps"] == 2  # 1 per epoch
  # (A label fraction that leaves a class empty: `data.label_subset`'s DataError, tested in
  # tests/evaluate/test_supervised.py; main.py prints any DataError as one line, see the bad-image test.)

  # jax_ssl.load in a fresh process with the training data gone reproduces the pretrained row
  # of results.json exactly from `.embed` alone (uint8 images in, features out).
  arrays = {}
  for split in ("train", "test"):
    src = load_source(kind="folder", path=data, split=split)
    ds, _ = eval_dataset(src, lambda im: im, batch_size=64)
    batches = list(ds.as_numpy_iterator())
    keep = np.concatenate([b["mask"] for b in batches])
    arrays[f"{split}_x"] = np.concatenate([b["image"] for b in batches])[keep]
    arrays[f"{split}_y"] = np.concatenate([b["label"] for b in batches])[keep]
  np.savez(tmp_path / "images.npz", **arrays)
  shutil.rmtree(data)
  proc = _python(LOAD_AND_EMBED, workdir, str(tmp_path / "images.npz"))
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  report = json.loads(proc.stdout.strip().splitlines()[-1])
  assert report["step"] == first["step"] and report["blocks"]
  assert report["pretrained"] == first["report"]["pretrained"]

  # The backbone alone, with its model card and the torchvision layout (a ResNet-18 here): what
  # --mode=export runs (its command line: test_export_without_a_checkpoint_is_one_clear_error).
  from experiments import runner

  runner.run_export(workdir)
  module, variables, card = pretrained.load_backbone(os.path.join(workdir, "export", "backbone"))
  assert card["evaluation"]["report"] == first["report"] and card["step"] == first["step"]
  with np.load(os.path.join(workdir, "export", "backbone.torchvision.npz")) as tv:
    assert len(tv.files) == 120 and tv["conv1.weight"].shape == (8, 3, 3, 3)  # CIFAR stem, width 8


LOAD_AND_EMBED = """
import json, sys
import numpy as np
import jax_ssl
from jax_ssl import evaluate

model = jax_ssl.load(sys.argv[1])
a = np.load(sys.argv[2])
train_x, test_x = model.embed(a["train_x"]), model.embed(a["test_x"])
e = model.config["eval"]
row = evaluate.evaluate_features(train_x, a["train_y"], test_x, a["test_y"], num_classes=10,
                                 knn_ks=tuple(e["knn_ks"]), knn_temperature=e["knn_temperature"],
                                 linear=e["linear"], linear_iters=e["linear_iters"], kmeans=True)
block = model.features(a["test_x"][:4], block=model.blocks[0])
assert block.shape[0] == 4 and block.dtype == np.float32
print(json.dumps({"step": model.step, "blocks": model.blocks, "pretrained": row}))
"""


def _python(script, *args, timeout=600):
  """A fresh interpreter on one CPU device, like a user's notebook."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
  env.pop("XLA_FLAGS", None)
  return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=env,
                        timeout=timeout, cwd=ROOT)


def test_export_without_a_checkpoint_is_one_clear_error(tmp_path):
  proc = _run(f"--workdir={tmp_path}", "--mode=export")
  assert proc.returncode == 2 and proc.stderr.startswith("error: no checkpoint in"), proc.stderr
  assert proc.stderr.count("\n") == 1  # one line, no TensorFlow start-up noise
  assert "Traceback" not in proc.stderr


def test_unknown_config_key_is_one_clear_error(tmp_path):
  proc = _run(f"--config={CONFIG}:quick", f"--workdir={tmp_path}", "--config.train.batch_sise=64")
  assert proc.returncode != 0
  assert "batch_sise" in proc.stderr
  assert "Traceback" not in proc.stderr


def test_batch_not_divisible_by_devices_is_one_clear_error(tmp_path):
  data = _subset(str(tmp_path / "data"), 4, 2)
  proc = _run(f"--config={CONFIG}:quick", f"--workdir={tmp_path}/run", f"--config.data.path={data}",
              "--config.train.batch_size=20", devices=8)
  assert proc.returncode == 2
  assert "batch_size 20 is not divisible by the 8 devices" in proc.stderr
  assert "Traceback" not in proc.stderr


def test_bad_image_file_is_one_clear_error(tmp_path):
  data = _subset(str(tmp_path / "data"), 4, 2)
  bad = os.path.join(data, "train", "cat", "broken.png")
  with open(bad, "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n this is not really a png")
  proc = _run(f"--config={CONFIG}:quick", f"--workdir={tmp_path}/run", f"--config.data.path={data}")
  assert proc.returncode == 2
  assert "broken.png" in proc.stderr and "not a readable image" in proc.stderr
  assert "Traceback" not in proc.stderr


def test_missing_config_file_and_bad_variant_are_one_clear_error(tmp_path):
  proc = _run("--config=experiments/configs/no_such_config.py:quick", f"--workdir={tmp_path}")
  assert proc.returncode == 2 and "Traceback" not in proc.stderr
  assert "config file not found: experiments/configs/no_such_config.py" in proc.stderr
  proc = _run(f"--config={CONFIG}:no_such_variant", f"--workdir={tmp_path}")
  assert proc.returncode == 2 and "Traceback" not in proc.stderr
  assert "unknown variant 'no_such_variant'" in proc.stderr and proc.stderr.count("\n") == 1


@pytest.mark.parametrize("override,message", [
    ("--config.train.epochs=-1", "config.train.epochs must be positive, got -1"),
    ("--config.train.steps=0", "config.train.steps must be positive, got 0"),
])
def test_non_positive_run_length_is_one_clear_error(tmp_path, override, message):
  data = _subset(str(tmp_path / "data"), 4, 2)
  proc = _run(f"--config={CONFIG}:quick", f"--workdir={tmp_path}/run", f"--config.data.path={data}", override)
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert message in proc.stderr and "Traceback" not in proc.stderr
  assert not os.path.exists(os.path.join(tmp_path, "run", "checkpoints"))


def test_steps_size_the_run_and_its_schedule():
  from experiments import runner
  from experiments.configs import simclr_cifar10

  cfg = simclr_cifar10.get_config("quick").train
  _, schedule, total = runner.build_optimizer(cfg, num_train=6400)
  assert total == cfg.epochs * (6400 // cfg.batch_size)
  cfg.steps = 20
  _, schedule, total = runner.build_optimizer(cfg, num_train=6400)
  warm = round(cfg.warmup_epochs / cfg.epochs * 20)
  assert total == 20 and 0 < warm < 20
  lr = [float(schedule(s)) for s in range(21)]
  assert lr[warm] == max(lr) and lr[0] < lr[warm] and lr[20] < 0.01 * lr[warm]  # warm-up, then cosine to ~0


def test_pretraining_on_unlabeled_images_and_a_clear_error_for_evaluating_on_them(tmp_path):
  from experiments import runner
  from experiments.configs import simclr_cifar10
  from jax_ssl import data

  flat = tmp_path / "flat" / "train"
  os.makedirs(flat)
  for cls in ("cat", "dog"):
    for name in sorted(os.listdir(os.path.join(CIFAR, "train", cls)))[:3]:
      shutil.copy(os.path.join(CIFAR, "train", cls, name), flat / f"{cls}_{name}")
  cfg = simclr_cifar10.get_config("quick")
  cfg.data.path = str(tmp_path / "flat")
  src, _ = runner.build_sources(cfg.data, cfg.eval)  # pretraining: fine without labels
  assert len(src) == 6 and not src.labeled
  import jax
  import optax
  from jax_ssl import methods, models, parallel, train

  method = methods.SimCLR(backbone=models.ConvNet(widths=(8, 8)), image_size=16, proj_hidden_dims=(16,), proj_dim=8)
  result = train.train(method, src, workdir=str(tmp_path / "run"), global_batch=2, total_steps=2, tx=optax.sgd(0.1),
                       progress=False, mesh=parallel.make_mesh(jax.devices()[:1]))
  assert result.step == 2 and int(result.state.skipped) == 0
  with pytest.raises(data.DataError, match="evaluation needs labelled splits.*eval_train_split"):
    runner.build_sources(cfg.data, cfg.eval, for_evaluation=True)
  cfg.eval.split = "validation"
  with pytest.raises(data.DataError, match="evaluation needs labelled splits"):
    runner.build_sources(cfg.data, cfg.eval)
  # A labelled split for evaluation beside the unlabeled one (STL-10's layout).
  cfg.eval.split = "test"
  _subset(str(tmp_path / "flat_lab"), 2, 2)
  shutil.copytree(flat, tmp_path / "flat_lab" / "unlabelled")
  cfg.data.path = str(tmp_path / "flat_lab")
  cfg.data.train_split, cfg.data.eval_train_split = "unlabelled", "train"
  pre, _ = runner.build_sources(cfg.data, cfg.eval)
  bank, test = runner.build_sources(cfg.data, cfg.eval, for_evaluation=True)
  assert not pre.labeled and bank.labeled and test.labeled and len(bank) == 20


@pytest.mark.slow
def test_training_on_a_tfds_dataset_read_by_name_and_one_clear_error_for_a_missing_split(tmp_path):
  """The TFDS path as a pod user launches it: a prepared dataset (real ArrayRecord shards) named on
  the command line, streamed from its files; a split it lacks is one error line."""
  from jax_ssl import data

  folder = _subset(str(tmp_path / "folder"), 4, 2)
  data_dir = str(tmp_path / "tfds")
  splits, names = {}, None
  for split in ("train", "test"):
    paths, labels, names = data.list_image_folder(folder, split, "folders")
    splits[split] = data.folder_split(paths, labels)
  data.build_tfds_dataset("cifar_by_name", data_dir, splits, class_names=names, image_shape=(32, 32, 3),
                          encoding="png")
  by_name = [f"--config={CONFIG}:quick", "--config.data.kind=tfds", "--config.data.name=cifar_by_name",
             f"--config.data.data_dir={data_dir}", "--config.data.storage=files"]

  proc = _run(*by_name, f"--workdir={tmp_path}/bad", "--config.data.train_split=unlabelled")
  assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
  assert "tfds:cifar_by_name has no split 'unlabelled'" in proc.stderr and proc.stderr.count("\n") == 1

  workdir = str(tmp_path / "run")
  proc = _run(*by_name, f"--workdir={workdir}", "--mode=train", *TINY, "--config.train.batch_size=8",
              "--config.train.steps=3", "--config.train.checkpoint_every=3")
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  assert "40 training images from tfds:cifar_by_name" in proc.stdout, proc.stdout[-2000:]
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f if '"train"' in line]
  assert rows[-1]["step"] == 3 and all(np.isfinite(r["loss"]) for r in rows)
