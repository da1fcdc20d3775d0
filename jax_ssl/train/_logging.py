"""Metrics a person can read: JSON lines, TensorBoard event files and a loss-curve PNG."""

from __future__ import annotations

import json
import os

import numpy as np


class MetricWriter:
  """Appends {"step": s, **scalars} to `metrics.jsonl` and TensorBoard events in `workdir/tb`.

  Only the writing process (process 0 in a multi-host run) should create one.
  """

  def __init__(self, workdir: str, *, tensorboard: bool = True):
    os.makedirs(workdir, exist_ok=True)
    self.path = os.path.join(workdir, "metrics.jsonl")
    self._tb = None
    if tensorboard:
      import tensorflow as tf  # pylint: disable=g-import-not-at-top

      self._tb = tf.summary.create_file_writer(os.path.join(workdir, "tb"))

  def write(self, step: int, scalars: dict, *, kind: str = "train"):
    row = {"step": int(step), "kind": kind}
    row.update({k: float(v) for k, v in scalars.items()})
    with open(self.path, "a") as f:
      f.write(json.dumps(row) + "\n")
    if self._tb is not None:
      import tensorflow as tf  # pylint: disable=g-import-not-at-top

      with self._tb.as_default():
        for k, v in scalars.items():
          # tf.summary.write with the scalars plugin's metadata is what tf.summary.scalar
          # writes, without needing the tensorboard package installed.
          tf.summary.write(f"{kind}/{k}", tf.constant(float(v), tf.float32), step=int(step),
                           metadata=_scalar_metadata())
      self._tb.flush()


def _scalar_metadata():
  from tensorflow.core.framework import summary_pb2  # pylint: disable=g-import-not-at-top

  return summary_pb2.SummaryMetadata(
      plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))


def read_metrics(workdir: str, kind: str = "train") -> list[dict]:
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return []
  with open(path) as f:
    rows = [json.loads(line) for line in f if line.strip()]
  return [r for r in rows if r.get("kind") == kind]


def truncate_metrics(workdir: str, after_step: int):
  """Drops rows logged after `after_step` (a resumed run re-logs those steps)."""
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return
  with open(path) as f:
    rows = [line for line in f if line.strip()]
  keep = [r for r in rows if json.loads(r).get("kind") != "train" or json.loads(r)["step"] <= after_step]
  with open(path, "w") as f:
    f.writelines(keep)


def plot_loss_curve(workdir: str, filename: str = "loss_curve.png") -> str | None:
  """Writes the training loss (and learning rate) against steps; returns the path."""
  rows = read_metrics(workdir)
  if not rows:
    return None
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  steps = np.array([r["step"] for r in rows])
  fig, ax = plt.subplots(figsize=(7, 4))
  ax.plot(steps, [r["loss"] for r in rows], label="loss", color="tab:blue")
  ax.set_xlabel("step")
  ax.set_ylabel("loss")
  ax.grid(alpha=0.3)
  if "lr" in rows[0]:
    ax2 = ax.twinx()
    ax2.plot(steps, [r["lr"] for r in rows], color="tab:orange", alpha=0.6, label="lr")
    ax2.set_ylabel("learning rate", color="tab:orange")
  ax.set_title(os.path.basename(os.path.abspath(workdir)))
  fig.tight_layout()
  path = os.path.join(workdir, filename)
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path
