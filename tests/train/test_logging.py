"""Metric logging: JSON lines and TensorBoard scalar events (readable without tensorboard)."""

import glob
import os

import tensorflow as tf

from jax_ssl.train import _logging


def test_metric_writer_jsonl_and_tensorboard(tmp_path):
  w = _logging.MetricWriter(str(tmp_path))
  w.write(10, {"loss": 1.5, "lr": 0.1})
  w.write(20, {"loss": 1.25, "lr": 0.2})
  w.write(20, {"knn": 0.4}, kind="eval")
  rows = _logging.read_metrics(str(tmp_path))
  assert [(r["step"], r["loss"]) for r in rows] == [(10, 1.5), (20, 1.25)]
  assert _logging.read_metrics(str(tmp_path), "eval")[0]["knn"] == 0.4

  events = {}
  for path in glob.glob(os.path.join(str(tmp_path), "tb", "events.*")):
    for e in tf.compat.v1.train.summary_iterator(path):
      for v in e.summary.value:
        assert v.metadata.plugin_data.plugin_name == "scalars"
        events[(v.tag, e.step)] = float(tf.make_ndarray(v.tensor))
  expected = {("train/loss", 10): 1.5, ("train/lr", 10): 0.1, ("train/loss", 20): 1.25,
              ("train/lr", 20): 0.2, ("eval/knn", 20): 0.4}
  assert set(events) == set(expected)
  for key, value in expected.items():
    assert abs(events[key] - value) < 1e-7, key

  _logging.truncate_metrics(str(tmp_path), after_step=10)
  assert [r["step"] for r in _logging.read_metrics(str(tmp_path))] == [10]
  assert len(_logging.read_metrics(str(tmp_path), "eval")) == 1
