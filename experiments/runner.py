"""Config -> objects, for the entry point (the method itself is built by `jax_ssl.pretrained.build_method`, which `jax_ssl.load` shares)."""

from __future__ import annotations

import json
import os
import time

import jax
import numpy as np
import ml_collections

from jax_ssl import data, evaluate, methods, pretrained, train
from jax_ssl.train import CheckpointError, TrainingStopped
from experiments.configs._common import check_train_length

USER_ERRORS = (data.DataError, CheckpointError, TrainingStopped, ValueError, KeyError)


def resolve_config(config, workdir: str, *, mode: str) -> ml_collections.ConfigDict:
  """The run's config: --config, else the one saved in the workdir (evaluate / resume)."""
  saved = os.path.join(workdir, "config.json")
  if config is None:
    if not os.path.exists(saved):
      raise SystemExit(f"error: no --config given and no {saved} (mode {mode}); pass --config")
    with open(saved) as f:
      config = ml_collections.ConfigDict(json.load(f))
    config.lock()
  return config


def _save_config(config, workdir: str):
  os.makedirs(workdir, exist_ok=True)
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "config.json"), "w") as f:
      f.write(config.to_json_best_effort(indent=2, sort_keys=True))


def build_method(config) -> methods.Method:
  return pretrained.build_method(config)


def build_sources(data_cfg, eval_cfg=None, *, for_evaluation: bool = False):
  """(training source, evaluation source).

  Pretraining reads `data.train_split` (labelled or not). For evaluation (`for_evaluation`)
  the first source is the labelled split whose features are the kNN memory bank and the
  probe's training set: `data.eval_train_split` (default `train_split`; STL-10 pretrains on
  "unlabelled" and evaluates with "train"). With `eval.split = "validation"` a seeded,
  class-balanced `eval.val_fraction` of the training images is held out
  (`data.split_validation`): the run pretrains on the rest and is evaluated on the held-out
  part, so recipes are chosen without looking at the test split.
  """
  kw = dict(kind=data_cfg.kind, path=data_cfg.path, name=data_cfg.name, data_dir=data_cfg.data_dir,
            download=data_cfg.download, labels=data_cfg.get("labels", "auto"),
            storage=data_cfg.get("storage", "auto"))
  train_split = data_cfg.train_split
  if for_evaluation and data_cfg.get("eval_train_split"):
    train_split = data_cfg.eval_train_split
  transfer = eval_cfg.get("transfer") if eval_cfg is not None else None
  if for_evaluation and transfer is not None and (transfer.get("path") or transfer.get("name")):
    # Another dataset than the pretraining one: its own splits, the run's normalization.
    kind = transfer.get("kind") or ("folder" if transfer.get("path") else "tfds")
    kw.update(kind=kind, path=transfer.get("path"), name=transfer.get("name"), labels="auto")
    train_split = transfer.train_split
    data_cfg = ml_collections.ConfigDict(dict(data_cfg.to_dict(), test_split=transfer.test_split))
  train_src = data.load_source(split=train_split, **kw)
  split = eval_cfg.get("split", "test") if eval_cfg is not None else "test"
  if split not in ("test", "validation"):
    raise ValueError(f"config.eval.split must be 'test' or 'validation', got {split!r}")
  if (for_evaluation or split == "validation") and not train_src.labeled:
    raise data.DataError(
        f"evaluation needs labelled splits, and {train_src.name} has no labels; pass "
        f"--config.data.eval_train_split=SPLIT (labelled images: the kNN memory bank and the linear probe's "
        f"training set) and --config.data.test_split=SPLIT (labelled images to report on)")
  if split == "validation":
    return data.split_validation(train_src, fraction=eval_cfg.val_fraction, seed=eval_cfg.val_seed)
  if not for_evaluation:
    return train_src, None
  test_src = data.load_source(split=data_cfg.test_split, class_names=train_src.class_names or None, **kw)
  if not test_src.labeled:
    raise data.DataError(f"evaluation needs labelled splits, and {test_src.name} has no labels; pass "
                         f"--config.data.test_split=SPLIT (a labelled split to report on)")
  return train_src, test_src


def build_optimizer(train_cfg, num_train: int):
  """Returns (tx, schedule, total_steps) for the config's epochs over `num_train` examples.

  `tx` is `mask -> GradientTransformation`: the trainer builds it with the method's
  weight-decay mask, once per parameter group and phase (`train.method_optimizer`).
  """
  check_train_length(train_cfg)
  steps = train_cfg.get("steps")
  spe = data.steps_per_epoch(num_train, train_cfg.batch_size)
  if steps is not None:  # the run's length in steps; the schedule keeps its shape
    total = int(steps)
    warmup = int(round(train_cfg.warmup_epochs / train_cfg.epochs * total))
  else:
    total = int(round(train_cfg.epochs * spe))
    warmup = int(train_cfg.warmup_epochs * spe)
  if total <= 0:
    raise ValueError(f"config.train.epochs={train_cfg.epochs} is less than one step of batch "
                     f"{train_cfg.batch_size} over {num_train} examples")
  lr = train.scaled_lr(train_cfg.base_lr, train_cfg.batch_size, train_cfg.lr_scaling)
  scale = float(train_cfg.get("schedule_scale", 1.0))  # older run configs lack the new keys
  if scale < 1.0:
    raise ValueError(f"config.train.schedule_scale must be >= 1, got {scale}")
  span = int(round(total * scale))
  schedule = train.warmup_cosine(base_lr=lr, total_steps=span, warmup_steps=min(warmup, total),
                                 end_lr=float(train_cfg.get("end_lr", 0.0)))
  weight_decay = train_cfg.weight_decay
  if train_cfg.get("weight_decay_end") is not None:
    weight_decay = train.cosine_between(train_cfg.weight_decay, train_cfg.weight_decay_end, span)

  def tx(mask):
    return train.make_optimizer(train_cfg.optimizer, schedule, weight_decay=weight_decay,
                                momentum=train_cfg.momentum, mask=mask, b1=train_cfg.get("b1", 0.9),
                                b2=train_cfg.get("b2", 0.999), grad_clip_norm=train_cfg.get("grad_clip_norm"))

  return tx, schedule, total


def run_prepare(config) -> data.ArraySource:
  """The training source with the method's dataset-level inputs computed (e.g. FH masks), no training."""
  method = build_method(config)
  train_src, _ = build_sources(config.data, config.eval)
  t0 = time.time()
  prepared = method.prepare_source(train_src)
  if jax.process_index() == 0:
    extras = ", ".join(sorted(prepared.extras)) or "nothing to precompute for this method"
    print(f"{method.name}: prepared {len(prepared)} training images of {prepared.name} ({extras}) in "
          f"{time.time() - t0:.0f}s", flush=True)
  return prepared


def _warm_start_from(method, init_from: str):
  """The trainer's `warm_start` for `train.init_from`: loads that run only when called (a fresh
  start; a resumed run needs no source) and hands it to `method.warm_start`."""
  def warm_start(params, state):
    try:
      source = pretrained.load(init_from)
    except CheckpointError as e:
      raise CheckpointError(f"config.train.init_from={init_from!r}: {e}") from None
    if jax.process_index() == 0:
      print(f"{method.name}: starting from {init_from} ({source.method.name}, step {source.step})", flush=True)
    return method.warm_start(params, state, source)
  return warm_start


def run_train(config, workdir: str) -> train.TrainResult:
  method = build_method(config)
  train_src, heldout_src = build_sources(config.data, config.eval)
  train_src = method.prepare_source(train_src)  # e.g. DetCon's FH masks (cached)
  tx, schedule, total = build_optimizer(config.train, len(train_src))
  _save_config(config, workdir)
  mesh = train.make_mesh()
  train.check_batch_divisible(config.train.batch_size, mesh, "config.train.batch_size")
  if jax.process_index() == 0:
    print(f"{method.name}: {len(train_src)} training images from {train_src.name}, {total} steps of "
          f"batch {config.train.batch_size} on {jax.device_count()} {jax.devices()[0].platform} device(s)",
          flush=True)
  probe = None
  if (config.train.get("online_probe", False) or config.eval.get("monitor_every", 0)) and not train_src.labeled:
    raise data.DataError(f"train.online_probe and eval.monitor_every need labels, and {train_src.name} has none")
  if config.train.get("online_probe", False):
    probe = train.OnlineProbe(train_src.num_classes, lr=config.train.online_probe_lr)
  evaluators = []
  if config.eval.get("monitor_every", 0):
    bank, queries = data.split_validation(train_src, fraction=config.eval.val_fraction, seed=config.eval.val_seed)
    evaluators.append(evaluate.KnnMonitor(method, bank, queries, every=config.eval.monitor_every,
                                          batch_size=config.eval.batch_size, mesh=mesh))
  init_from = config.train.get("init_from") or ""  # run configs saved before it existed lack it
  warm_start = _warm_start_from(method, init_from) if init_from else None
  t0 = time.time()
  result = train.train(method, train_src, workdir=workdir, global_batch=config.train.batch_size,
                       total_steps=total, tx=tx, schedule=schedule, seed=config.seed,
                       checkpoint_every=config.train.checkpoint_every, keep_checkpoints=config.train.keep_checkpoints,
                       log_every=config.train.log_every, max_nonfinite_steps=config.train.max_nonfinite_steps,
                       meta={"config": json.loads(config.to_json_best_effort())}, mesh=mesh, probe=probe,
                       evaluators=tuple(evaluators), warm_start=warm_start)
  if jax.process_index() == 0:
    print(f"trained to step {result.step} in {time.time() - t0:.0f}s "
          f"({result.images_per_sec:.0f} images/s at the end)", flush=True)
    if not result.preempted:
      for path in method.write_artifacts(workdir, params=result.state.params, state=result.state.state,
                                         source=train_src, heldout=heldout_src):
        print(f"wrote {path}", flush=True)
  return result


def run_evaluate(config, workdir: str, *, step: int | None = None) -> dict:
  """Restores a checkpoint of `workdir`, evaluates it (+ baselines), prints and saves the table."""
  train_src, test_src = build_sources(config.data, config.eval, for_evaluation=True)
  mesh = train.make_mesh()
  # Only params and the method state are restored (the optimizer is not needed to evaluate);
  # the shapes come from the checkpoint, else (older runs) from two training examples. The
  # restored method knows the run's schedule and training-set size (per-example state).
  restored = pretrained.load(workdir, step, config=config, source=train_src)
  method, step = restored.method, restored.step
  t0 = time.time()
  report = evaluate.evaluate_method(method, restored.params, restored.state, train_src, test_src,
                                    batch_size=config.eval.batch_size, knn_ks=tuple(config.eval.knn_ks),
                                    knn_temperature=config.eval.knn_temperature, linear=config.eval.linear,
                                    linear_iters=config.eval.linear_iters, baselines=config.eval.baselines,
                                    knn_bank_dtype="bfloat16" if config.model.get("dtype") == "bfloat16" else None,
                                    mesh=mesh, per_block=config.eval.get("per_block", False),  # older run configs
                                    pretext_epochs=config.eval.get("pretext_epochs", 4))         # lack these two
  title = (f"{method.name} step {step}: top-1 % on {test_src.name} ({len(test_src)} images"
           f"{', validation split held out of the training images' if config.eval.get('split') == 'validation' else ''}), "
           f"features from {train_src.name} ({len(train_src)} images)")
  table = evaluate.format_report(report, title=title)
  if jax.process_index() == 0:
    print(table, flush=True)
    print(f"(evaluation took {time.time() - t0:.0f}s)", flush=True)
    transfer = config.eval.get("transfer")
    stem = "results_transfer" if transfer is not None and (transfer.get("path") or transfer.get("name")) else "results"
    with open(os.path.join(workdir, f"{stem}.json"), "w") as f:
      json.dump({"step": step, "method": method.name, "report": report, "train_split": train_src.name,
                 "test_split": test_src.name}, f, indent=2)
    with open(os.path.join(workdir, f"{stem}.txt"), "w") as f:
      f.write(table + "\n")
  return {"step": step, "report": report}


def run_export(workdir: str, *, step: int | None = None) -> list[str]:
  """The backbone of a checkpoint of `workdir` as workdir/export/backbone.{npz,json}
  (+ .torchvision.npz for ResNets); needs no data and no config flag."""
  model = pretrained.load(workdir, step)
  paths = model.export_backbone(os.path.join(workdir, "export", "backbone")) if jax.process_index() == 0 else []
  return paths


_SUBSETS = {0.01: "1pct", 0.1: "10pct"}  # TFDS imagenet2012_subset splits (SimCLR's 1% / 10%)


def _label_split(config, train_src, fraction: float, seed: int):
  """The labelled examples for fine-tuning: TFDS's imagenet2012_subset/{1pct,10pct} for
  ImageNet at those fractions, else a seeded class-balanced subset (`data.label_subset`)."""
  d = config.data
  if d.kind == "tfds" and str(d.name).startswith("imagenet2012") and fraction in _SUBSETS \
     and config.eval.get("split", "test") == "test":
    return data.load_source(kind="tfds", name=f"imagenet2012_subset/{_SUBSETS[fraction]}", split="train",
                            data_dir=d.data_dir, download=d.download, storage=d.get("storage", "auto"))
  return data.label_subset(train_src, fraction=fraction, seed=seed)


def run_protocol(config, workdir: str, protocol: str, *, step: int | None = None) -> dict:
  """`protocol` "linear" (SGD linear evaluation on frozen features) or "finetune" (the whole
  network with `eval.finetune.label_fraction` of the labels, and the same network from random
  init with the same labels and steps). Prints and saves results_<protocol>.json."""
  block = (config.eval.get("linear_sgd") if protocol == "linear" else config.eval.get("finetune"))
  if block is None:
    raise ValueError(f"config.eval has no {'linear_sgd' if protocol == 'linear' else 'finetune'} block "
                     f"(a run config saved before the protocols existed); pass --config")
  settings = block.to_dict()
  fraction = float(settings.pop("label_fraction", 1.0))
  baseline = bool(settings.pop("baseline", False))
  cfg = evaluate.ProtocolConfig.from_dict(settings)
  # The data (and a label fraction that empties a class) is checked before the checkpoint is read.
  train_src, test_src = build_sources(config.data, config.eval, for_evaluation=True)
  labelled = _label_split(config, train_src, fraction, cfg.seed) if protocol == "finetune" else train_src
  model = pretrained.load(workdir, step, config=config)
  module = pretrained.build_backbone(config.model)
  mesh = train.make_mesh()
  chief = jax.process_index() == 0

  def progress(name):
    def show(i, total, loss, acc):
      if chief:
        print(f"{protocol} [{name}] step {i}/{total}: loss {loss:.4f}, batch accuracy {100 * acc:.1f}%", flush=True)
    return show

  run = evaluate.linear_sgd if protocol == "linear" else evaluate.finetune
  kw = dict(preprocess=model.method.eval_preprocess, config=cfg, mesh=mesh)
  t0 = time.time()
  rows = {"pretrained": run(module, model.backbone_variables(), labelled, test_src, progress=progress("pretrained"), **kw)}
  if baseline:
    random_vars = module.init(jax.random.key(12345), np.zeros((1,) + model.input_shape, np.float32), train=False)
    rows["random_init"] = run(module, random_vars, labelled, test_src, progress=progress("random init"), **kw)
  for r in rows.values():
    r.pop("params"), r.pop("batch_stats")
  report = {"step": model.step, "method": model.method.name, "protocol": protocol,
            "settings": {**settings, "label_fraction": fraction}, "labelled_examples": len(labelled),
            "labelled_split": labelled.name, "test_split": test_src.name, "rows": rows,
            "seconds": round(time.time() - t0, 1)}
  if chief:
    name = {"linear": "linear evaluation (SGD, frozen features)", "finetune": "fine-tuning"}[protocol]
    print(f"{model.method.name} step {model.step}: {name} on {len(labelled)} labelled images of {labelled.name}, "
          f"top-1 % on {test_src.name} ({len(test_src)} images)", flush=True)
    for k, r in rows.items():
      print(f"  {k:12s} {r['top1']:6.2f}  ({r['steps']} steps of batch {r['batch_size']}, lr {r['lr']:.4g})", flush=True)
    with open(os.path.join(workdir, f"results_{protocol}.json"), "w") as f:
      json.dump(report, f, indent=2)
  return report
