"""Orbax checkpoints: save every N steps and at the end, keep the last k, restore safely.

Each checkpoint holds the train state and a JSON `meta` item with the method's signature
(method name, backbone, heads). Restoring checks the signature first, so a checkpoint of
another model fails with a message instead of a shape error deep inside orbax. Orbax writes
into a temporary folder and renames it when complete, so an interrupted save never shows up as
a step (the half-written `<step>.orbax-checkpoint-tmp-*` folder is ignored). A step that exists
but cannot be read (missing or corrupted files: OCDBT data carries checksums, so flipped bytes
are caught too) is reported and the next older one is used; `quarantine` then moves the bad
steps out of the way (into `<directory>_corrupted/`, never deleted) so that the resumed run can
save those step numbers again. A state with non-finite parameters is never saved, so a
diverged run can never replace the last good checkpoint.
"""

from __future__ import annotations

import logging
import os
import shutil
from typing import Any

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

log = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
  """A checkpoint that cannot be used (another model, unreadable, nothing to restore)."""


def _finite(tree) -> bool:
  leaves = [x for x in jax.tree.leaves(tree) if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.inexact)]
  return all(bool(jnp.all(jnp.isfinite(x))) for x in leaves)


class Checkpointer:
  """Thin wrapper over `ocp.CheckpointManager` with signature checks and safe fallbacks."""

  def __init__(self, directory: str, *, save_every: int = 1000, keep: int = 3, async_save: bool = True):
    self.directory = os.path.abspath(directory)
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, save_interval_steps=max(1, save_every), create=True,
        enable_async_checkpointing=async_save)
    self.manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "meta"))
    # Steps newer than the one the last `restore` returned that could not be read, with why.
    self.unreadable: list[tuple[int, str]] = []

  def all_steps(self) -> list[int]:
    return sorted(self.manager.all_steps())

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, state: Any, meta: dict, *, force: bool = False) -> bool:
    """Saves if `step` is due (or `force`); refuses a state with NaN/Inf. Returns whether saved."""
    if not force and not self.manager.should_save(step):
      return False
    if step in self.manager.all_steps():
      return False
    if not _finite(state.params):
      log.error("not saving step %d: parameters are not finite (keeping the last good checkpoint)", step)
      return False
    return self.manager.save(step, args=ocp.args.Composite(
        state=ocp.args.PyTreeSave(state), meta=ocp.args.JsonSave(meta)), force=force)

  def read_meta(self, step: int) -> dict:
    return self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

  def restore(self, target: Any, signature: dict, step: int | None = None, *,
              partial: bool = False) -> tuple[Any, dict, int]:
    """Restores the newest readable checkpoint (or `step`) into the structure of `target`.

    With `partial=True`, `target` may name a subset of the saved state (e.g. only
    {"params", "state"} to evaluate without building the optimizer).
    Raises CheckpointError if no step is readable or the checkpoint's signature differs.
    """
    steps = [step] if step is not None else sorted(self.manager.all_steps(), reverse=True)
    if not steps:
      raise CheckpointError(f"no checkpoint in {self.directory}")
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    errors = []
    self.unreadable = []
    for s in steps:
      try:
        meta = self.read_meta(s)
      except Exception as e:  # pylint: disable=broad-except
        errors.append(f"step {s}: meta unreadable ({type(e).__name__}: {str(e)[:200]})")
        self.unreadable.append((s, f"meta unreadable ({type(e).__name__})"))
        log.warning("checkpoint step %d in %s is unreadable; trying an older one", s, self.directory)
        continue
      check_signature(meta.get("signature", {}), signature, where=f"{self.directory} step {s}")
      try:
        state_args = ocp.args.PyTreeRestore(
            item=abstract, restore_args=ocp.checkpoint_utils.construct_restore_args(abstract),
            partial_restore=partial)
        restored = self.manager.restore(s, args=ocp.args.Composite(state=state_args))
      except Exception as e:  # pylint: disable=broad-except
        errors.append(f"step {s}: state unreadable ({type(e).__name__}: {str(e)[:200]})")
        self.unreadable.append((s, f"state unreadable ({type(e).__name__})"))
        log.warning("checkpoint step %d in %s is corrupted (%s); trying an older one", s, self.directory,
                    type(e).__name__)
        continue
      if errors:
        log.warning("resumed from step %d after skipping unreadable checkpoints: %s", s, "; ".join(errors))
      return restored["state"], meta, s
    raise CheckpointError(f"no readable checkpoint in {self.directory}: " + "; ".join(errors))

  def quarantine(self, steps) -> str | None:
    """Moves unreadable `steps` to `<directory>_corrupted/` (kept for inspection, not deleted).

    Without this a corrupted step would shadow the resumed run: it would stay the "latest"
    checkpoint and block saving that step number again. Every process must call it (process 0
    moves the folders, then all re-read the directory). Returns the quarantine folder.
    """
    steps = sorted(set(int(s) for s in steps))
    if not steps:
      return None
    dest = self.directory.rstrip("/") + "_corrupted"
    if jax.process_index() == 0:
      os.makedirs(dest, exist_ok=True)
      for s in steps:
        src = os.path.join(self.directory, str(s))
        if os.path.isdir(src):
          target = os.path.join(dest, str(s))
          n = 1
          while os.path.exists(target):
            target = os.path.join(dest, f"{s}.{n}")
            n += 1
          shutil.move(src, target)
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

      multihost_utils.sync_global_devices("jax_ssl_checkpoint_quarantine")
    self.manager.reload()
    return dest

  def wait(self):
    self.manager.wait_until_finished()

  def close(self):
    self.manager.close()


def check_signature(found: dict, expected: dict, *, where: str):
  if found != expected:
    diff = {k: (found.get(k), expected.get(k)) for k in sorted(set(found) | set(expected))
            if found.get(k) != expected.get(k)}
    raise CheckpointError(
        f"checkpoint {where} was written by a different model: "
        + ", ".join(f"{k}: checkpoint has {a!r}, this run has {b!r}" for k, (a, b) in diff.items()))
