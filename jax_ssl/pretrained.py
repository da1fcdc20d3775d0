"""A pretrained run, restored from its workdir: `jax_ssl.load(workdir).embed(images)`.

    import jax_ssl
    model = jax_ssl.load("runs/simclr_quick")           # newest readable checkpoint
    feats = model.embed(images)                         # uint8 [N, H, W, 3] -> float32 [N, F]
    blocks = model.features(images, block="stage3")     # one block's features (per-block probes)
    model.params, model.state, model.config, model.method, model.step

Nothing here reads training data: every checkpoint carries the run's config and the shapes
the method's `init` needs (`meta["init"]`, written by the trainer: the per-example shapes and
dtypes of a training batch, the training set's size and the run's length), so the network is
rebuilt from zeros of those shapes and the checkpoint restored into it. `embed` runs the
method's own evaluation preprocessing (`method.eval_preprocess`: centre crop, resize,
normalization) and the same sharded feature extraction as `--mode evaluate`, so its features
are the ones behind the run's `results.json`. Works on any number of devices (the batch is
rounded to a multiple of the device count and padded).

Checkpoints written before `meta["init"]` existed need a data source to take the shapes from:
`load(workdir, source=...)` (the experiment runner passes the config's training split).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jax_ssl import data, methods, models, parallel, train
from jax_ssl.train import CheckpointError


_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def _as_dict(config) -> dict:
  return config.to_dict() if hasattr(config, "to_dict") else dict(config)


def build_backbone(model_cfg) -> Any:
  """`model_cfg["name"]` ("resnet", "vit", "convnet") with the block's other keys as arguments."""
  kwargs = _as_dict(model_cfg)
  name = kwargs.pop("name", "resnet")  # run configs saved before backbones had names
  if "dtype" in kwargs:
    if kwargs["dtype"] not in _DTYPES:
      raise ValueError(f"config.model.dtype must be one of {sorted(_DTYPES)}, got {kwargs['dtype']!r}")
    kwargs["dtype"] = _DTYPES[kwargs["dtype"]]
  return models.build_backbone(name, **kwargs)


def build_method(config) -> methods.Method:
  """The method of a run config (a ConfigDict or the dict saved with a checkpoint)."""
  cfg = _as_dict(config)
  if cfg["method"] not in methods.REGISTRY:
    raise ValueError(f"unknown method {cfg['method']!r}; available: {sorted(methods.REGISTRY)}")
  return methods.REGISTRY[cfg["method"]](backbone=build_backbone(cfg["model"]), mean=tuple(cfg["data"]["mean"]),
                                          std=tuple(cfg["data"]["std"]), **dict(cfg.get("method_kwargs") or {}))


# ------------------------------------------------------------------------------ the object
@dataclasses.dataclass
class Pretrained:
  """A restored run: the method, its parameters and state, and feature extraction.

  Attributes:
    method: the `jax_ssl.methods.Method` the run trained (its network, views, `embed`).
    params, state: the checkpoint's parameters and method state (e.g. BatchNorm statistics,
      an EMA target network), as host-replicated arrays.
    config: the run's config (a dict, as saved with the checkpoint).
    step: the training step of the checkpoint.
    workdir: where it came from.
  """

  method: methods.Method
  params: Any
  state: Any
  config: dict
  step: int
  workdir: str
  _fns: dict = dataclasses.field(default_factory=dict, repr=False)

  @property
  def blocks(self) -> list[str]:
    """Names accepted by `features(images, block=...)` (e.g. "stem", "stage1", ..., "final")."""
    if "blocks" not in self._fns:
      self._fns["blocks"] = list(jax.eval_shape(self.method.embed_blocks, self.params, self.state, self._input_spec))
    return self._fns["blocks"]

  def embed(self, images, *, batch_size: int | None = None) -> np.ndarray:
    """Frozen features float32 [N, F] of uint8 images [N, H, W, 3] (any H, W: the method's
    evaluation preprocessing crops and resizes), in order, exactly as the evaluation computes
    them. `batch_size` (default: the run's `eval.batch_size`) is rounded down to a multiple of
    the device count."""
    return self._extract(images, blocks=False, batch_size=batch_size)

  def features(self, images, *, block: str | None = None, batch_size: int | None = None):
    """Per-block features: a dict name -> float32 [N, F_b] of every block, or with `block`
    that block's array (names: `blocks`)."""
    if block is not None and block not in self.blocks:
      raise ValueError(f"unknown block {block!r} of {self.method.name}; available: {', '.join(self.blocks)}")
    out = self._extract(images, blocks=True, batch_size=batch_size)
    return out if block is None else out[block]

  def backbone_variables(self) -> dict:
    """{"params", "batch_stats"?} of the backbone behind `embed` (host numpy arrays)."""
    return jax.tree.map(np.asarray, self.method.backbone_variables(self.params, self.state))

  def export_backbone(self, path: str, *, torchvision: bool | None = None) -> list[str]:
    """Writes the backbone alone: `path.npz` (its variables, "params/stem_conv/kernel", ...)
    and `path.json` (the model card: architecture, method, config, data, step, and the run's
    evaluation figures when `results.json` is there); for a ResNet also `path.torchvision.npz`
    (torchvision `state_dict` names and OIHW kernels; `torchvision=False` skips it). Returns the
    paths written. `load_backbone(path)` rebuilds it."""
    variables = self.backbone_variables()
    model_cfg = dict(self.config["model"])
    is_resnet = model_cfg.get("name", "resnet") == "resnet"
    if torchvision and not is_resnet:
      raise ValueError(f"the torchvision layout is for ResNets; this backbone is {model_cfg.get('name')!r}")
    torchvision = is_resnet if torchvision is None else torchvision
    card = {
        "architecture": model_cfg,
        "num_features": int(self.embed_dim()),
        "input_shape": list(self.input_shape),
        "method": self.method.name,
        "signature": self.method.signature(),
        "step": self.step,
        "data": {k: self.config.get("data", {}).get(k) for k in ("kind", "name", "path", "train_split", "mean", "std")},
        "input": f"float32 {self.method.input_description} (jax_ssl.load(workdir).embed does this from uint8 "
                 "images, with the run's centre crop)",
        "config": self.config,
        "evaluation": _results(self.workdir),
    }
    extra = {"torchvision": models.torchvision_resnet_state_dict(variables)} if torchvision else None
    return models.save_backbone(path, variables, card, extra=extra)

  def embed_dim(self) -> int:
    """F of `embed`'s [N, F] features."""
    return int(jax.eval_shape(self.method.embed, self.params, self.state, self._input_spec).shape[-1])

  @functools.cached_property
  def input_shape(self) -> tuple:
    """[H, W, C] of the network input: the method's evaluation preprocessing of an image."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top  (the data layer's dependency)

    return tuple(self.method.eval_preprocess(tf.zeros([32, 32, 3], tf.uint8)).shape)

  @property
  def _input_spec(self):
    return jax.ShapeDtypeStruct((1,) + self.input_shape, jnp.float32)

  def _extract(self, images, *, blocks: bool, batch_size: int | None):
    images = check_images(images)
    mesh = parallel.make_mesh()
    if batch_size is None:
      batch_size = int(self.config.get("eval", {}).get("batch_size", 256))
    per = mesh.size
    batch_size = max(per, (min(batch_size, -(-len(images) // per) * per) // per) * per)
    key = ("blocks" if blocks else "embed", mesh)
    if key not in self._fns:
      self._fns[key] = parallel.make_embed_fn(self.method.embed_blocks if blocks else self.method.embed, mesh)
    source = data.ArraySource(images, np.full(len(images), -1, np.int32), [], "embed input")
    feats, _ = parallel.extract_features(self._fns[key], self.method.eval_preprocess, self.params, self.state, source,
                                         batch_size=batch_size, mesh=mesh)
    return feats


def check_images(images) -> np.ndarray:
  """uint8 [N, H, W, 3] (a single [H, W, 3] image becomes N = 1), else one clear ValueError."""
  if not isinstance(images, np.ndarray):
    images = np.asarray(images)
  if images.ndim == 3:
    images = images[None]
  if images.dtype != np.uint8:
    raise ValueError(f"embed takes uint8 images (pixel values 0-255), got dtype {images.dtype}; "
                     f"convert float images in [0, 1] with (x * 255).round().astype(np.uint8)")
  if images.ndim != 4 or images.shape[-1] != 3 or images.shape[1] < 1 or images.shape[2] < 1:
    raise ValueError(f"embed takes images of shape [N, H, W, 3] (RGB), got {tuple(images.shape)}")
  if len(images) == 0:
    raise ValueError("embed got no images (N = 0)")
  return images


def _check_step(ckpt: train.Checkpointer, step: int | None):
  steps = ckpt.all_steps()
  if not steps:
    raise CheckpointError(f"no checkpoint in {ckpt.directory} (has the run saved a step yet?)")
  if step is not None and step not in steps:
    raise CheckpointError(f"no checkpoint of step {step} in {ckpt.directory}; saved steps: "
                          f"{', '.join(map(str, steps))}")


def load(workdir: str, step: int | None = None, *, source: data.ArraySource | None = None,
         config=None) -> Pretrained:
  """Restores the newest readable checkpoint (or `step`) of the run in `workdir`.

  Args:
    workdir: the run's folder (the one holding `checkpoints/`).
    step: a saved step; default the newest one that reads back (a corrupted newer step is
      skipped with a warning, as on resume).
    source: only for checkpoints written before the init shapes were stored: a split of the
      run's training data, two of whose examples give the shapes.
    config: the run config to build the method from (default: the one saved with the
      checkpoint, else `workdir/config.json`). Its model must match the checkpoint's.

  Raises:
    CheckpointError: no checkpoint (or no readable one) in `workdir`, a checkpoint of
      another model than `config`'s, or an old checkpoint without init shapes and no `source`.
  """
  directory = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(directory):
    raise CheckpointError(f"no checkpoint in {workdir} (no checkpoints/ folder; is this a run's workdir?)")
  ckpt = train.Checkpointer(directory, async_save=False)
  try:
    _check_step(ckpt, step)
    meta = _newest_meta(ckpt, step)
    run = meta.get("run", {})
    cfg = _as_dict(config) if config is not None else run.get("config") or _saved_config(workdir)
    method = build_method(cfg)
    init = meta.get("init")
    if init is not None:
      method.set_schedule(steps_per_epoch=init["steps_per_epoch"], total_steps=init["total_steps"],
                          num_examples=init["num_examples"])
      batch = methods.zeros_batch(init["batch"])
    elif source is not None:
      batch = methods.example_batch(method, source)
    else:
      raise CheckpointError(f"the checkpoints in {directory} predate stored init shapes; pass source= "
                            f"(the run's training split) to jax_ssl.load, or use --mode evaluate")
    params, state = method.init(jax.random.key(0), batch)
    restored, _, got = ckpt.restore({"params": params, "state": state}, method.signature(), step=step, partial=True)
  finally:
    ckpt.close()
  method.restored(restored["params"], restored["state"])
  return Pretrained(method=method, params=restored["params"], state=restored["state"], config=cfg, step=got,
                    workdir=workdir)


def _newest_meta(ckpt: train.Checkpointer, step: int | None) -> dict:
  """The meta of `step`, else of the newest step whose meta reads (restore re-checks it)."""
  for s in ([step] if step is not None else ckpt.all_steps()[::-1]):
    try:
      return ckpt.read_meta(s)
    except Exception:  # pylint: disable=broad-except  (unreadable: restore reports it)
      continue
  raise CheckpointError(f"no readable checkpoint in {ckpt.directory}")


def _saved_config(workdir: str) -> dict:
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise CheckpointError(f"the checkpoint in {workdir} has no config and there is no {path}")
  with open(path) as f:
    return json.load(f)


def _results(workdir: str):
  path = os.path.join(workdir, "results.json")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


# An export written by `Pretrained.export_backbone` is read back with `jax_ssl.models.load_backbone`
# (no TensorFlow needed); re-exported here for discoverability.
load_backbone = models.load_backbone
