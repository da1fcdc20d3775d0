"""A backbone on its own: its variables in an `.npz`, its description in a JSON model card.

Written by `jax_ssl.load(workdir).export_backbone(path)` (or `--mode export`); read back here
with only jax / flax / numpy installed (no TensorFlow, no training code):

    module, variables, card = jax_ssl.models.load_backbone("runs/x/export/backbone")
    feats = module.apply(variables, images, train=False)   # images as card["input"] says
"""

from __future__ import annotations

import json
import os

import flax
import jax
import jax.numpy as jnp
import numpy as np

from jax_ssl.models._registry import build_backbone

BACKBONE_FORMAT = "jax_ssl.backbone/1"


def _base(path: str) -> str:
  for ext in (".torchvision.npz", ".npz", ".json"):
    if path.endswith(ext):
      return path[: -len(ext)]
  return path


def save_backbone(path: str, variables: dict, card: dict, *, extra: dict | None = None) -> list[str]:
  """Writes `path.npz` (flattened variables, "params/stem_conv/kernel", ...), each `extra`
  {suffix: arrays} as `path.<suffix>.npz`, then `path.json` (the card, with "format" and
  "files" added). Every file is written to a temporary name and renamed. Returns the paths."""
  base = _base(path)
  os.makedirs(os.path.dirname(os.path.abspath(base)), exist_ok=True)
  card = dict(card, format=BACKBONE_FORMAT, files={"variables": os.path.basename(base) + ".npz"})
  written = [_atomic_savez(base + ".npz", flax.traverse_util.flatten_dict(variables, sep="/"))]
  for suffix, arrays in (extra or {}).items():
    written.append(_atomic_savez(f"{base}.{suffix}.npz", arrays))
    card["files"][suffix] = os.path.basename(written[-1])
  with open(base + ".json.tmp", "w") as f:
    json.dump(card, f, indent=2, sort_keys=True, default=str)
  os.replace(base + ".json.tmp", base + ".json")
  return written + [base + ".json"]


def load_backbone(path: str):
  """(module, variables, card) of a backbone written by `save_backbone` / `export_backbone`.

  `card["architecture"]` is the run's `config.model` (`build_backbone` arguments);
  `card["input_shape"]` the network input the arrays were checked against. Raises ValueError
  for a missing file, a card of another format, or arrays that do not fit the architecture.
  """
  base = _base(path)
  for f in (base + ".json", base + ".npz"):
    if not os.path.exists(f):
      raise ValueError(f"no exported backbone at {base} ({f} is missing)")
  with open(base + ".json") as f:
    card = json.load(f)
  if card.get("format") != BACKBONE_FORMAT:
    raise ValueError(f"{base}.json is not a jax_ssl backbone card (format {card.get('format')!r}, "
                     f"expected {BACKBONE_FORMAT!r})")
  arch = dict(card["architecture"])
  module = build_backbone(arch.pop("name", "resnet"), **arch)
  with np.load(base + ".npz") as z:
    variables = flax.traverse_util.unflatten_dict({k: z[k] for k in z.files}, sep="/")
  shape = tuple(card.get("input_shape", (32, 32, 3)))
  expected = jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros((1,) + shape), train=False))
  want = {k: tuple(v.shape) for k, v in flax.traverse_util.flatten_dict(dict(expected), sep="/").items()}
  got = {k: tuple(v.shape) for k, v in flax.traverse_util.flatten_dict(variables, sep="/").items()}
  if want != got:
    diff = sorted(set(want.items()) ^ set(got.items()))[:4]
    raise ValueError(f"{base}.npz does not fit its architecture {card['architecture']}: e.g. {diff}")
  return module, variables, card


def _atomic_savez(path: str, arrays: dict) -> str:
  tmp = path[:-4] + ".tmp.npz"
  np.savez(tmp, **arrays)
  os.replace(tmp, path)
  return path
