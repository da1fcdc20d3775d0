"""Runs that survive faults: exact resume, corrupted checkpoints, divergence, bad data.

In-process tests call `train()` several times on one workdir (a restart is a new call); the
tests with real processes and signals are in test_faults_processes.py.
"""

import glob
import os

import jax
import numpy as np
import pytest
from PIL import Image

from jax_ssl import data, train
from jax_ssl.methods import SimCLR
from tests.helpers import toy_source
from tests.helpers import once
from tests.train import fault_driver as fd

# The shared reference run is computed once per worker: keep the module on one worker.
pytestmark = pytest.mark.xdist_group("test_faults")

STEPS = 12  # checkpoints every 4 steps: 4, 8, 12


@pytest.fixture
def reference(tmp_path_factory):
  """An uninterrupted run to STEPS on one device: its final state and its workdir (run once)."""
  def make():
    workdir = str(tmp_path_factory.mktemp("reference"))
    result = fd.run(workdir, steps=STEPS, devices=1)
    assert result.step == STEPS and not result.preempted
    return fd.flat_state(result.state), workdir
  return once("test_faults.reference", make)


def _assert_states_equal(a, b):
  assert a.keys() == b.keys()
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def _restore(workdir, step=None):
  """A checkpoint of `workdir` as flat host arrays (params, optimizer, method state...)."""
  method = fd.StatefulSimCLR()
  src = toy_source(n=64)
  b = next(data.train_dataset(src, method.make_views, global_batch=16, seed=3).as_numpy_iterator())
  params, mstate = method.init(jax.random.key(0), b)
  ckpt = train.Checkpointer(os.path.join(workdir, "checkpoints"))
  restored, _, s = ckpt.restore({"params": params, "state": mstate}, method.signature(), step=step, partial=True)
  ckpt.close()
  return s, {k: np.asarray(v) for k, v in fd.flat_state(restored).items()}


def _flip_bytes(step_dir):
  """Corrupts the array data of a checkpoint step in place (same size, bytes flipped)."""
  files = [f for f in glob.glob(os.path.join(step_dir, "state", "d", "*")) if os.path.isfile(f)]
  assert files, os.listdir(os.path.join(step_dir, "state"))
  for f in files:
    with open(f, "r+b") as fh:
      blob = bytearray(fh.read())
      mid = len(blob) // 2
      blob[mid:mid + 32] = bytes(x ^ 0xFF for x in blob[mid:mid + 32])
      fh.seek(0)
      fh.write(blob)


def test_resume_after_a_corrupted_latest_checkpoint_is_bitwise_exact(reference, tmp_path, capsys):
  ref, _ = reference
  workdir = str(tmp_path)
  part = fd.run(workdir, steps=STEPS, devices=1, stop_after=9)  # checkpoints 4, 8 and 9 (the stop)
  assert part.step == 9 and part.preempted is False
  ckpt_dir = os.path.join(workdir, "checkpoints")
  assert sorted(int(d) for d in os.listdir(ckpt_dir) if d.isdigit()) == [4, 8, 9]
  # The newest step is corrupted, and a later save died half-way (orbax's temporary folder).
  _flip_bytes(os.path.join(ckpt_dir, "9"))
  os.makedirs(os.path.join(ckpt_dir, "10.orbax-checkpoint-tmp-1700000000", "state"))
  capsys.readouterr()

  resumed = fd.run(workdir, steps=STEPS, devices=1)
  out = capsys.readouterr().out
  assert "could not be read: step 9 (state unreadable" in out, out
  assert "Resuming from checkpoint step 8" in out, out
  # Parameters, optimizer state, BN statistics, EMA, counter, queue and skip count are all
  # exactly those of the uninterrupted run: data order and rng resumed at step 8.
  _assert_states_equal(fd.flat_state(resumed.state), ref)
  assert int(ref[".state['count']"]) == STEPS
  # The bad step was moved aside (kept for inspection, never deleted); the temporary folder
  # of the dead save is not a step.
  assert os.listdir(ckpt_dir + "_corrupted") == ["9"]
  assert sorted(int(d) for d in os.listdir(ckpt_dir) if d.isdigit()) == [4, 8, STEPS]
  # Metrics are not duplicated by the resume: one row per logged step.
  logged = [r["step"] for r in train.read_metrics(workdir)]
  assert logged == sorted(set(logged)) and logged[-1] == STEPS


def test_checkpoint_of_another_model_is_a_clear_error(reference):
  _, workdir = reference
  other = SimCLR(backbone=fd.TinyNet(width=4), image_size=16, proj_hidden_dims=(16,), proj_dim=8)
  with pytest.raises(train.CheckpointError, match=r"different model: method: checkpoint has "
                                                  r"'stateful_simclr_test', this run has 'simclr'"):
    fd.run(workdir, steps=STEPS, devices=1, method=other)


def test_divergence_stops_the_run_and_keeps_the_last_good_checkpoint(reference, tmp_path):
  ref_workdir = reference[1]
  workdir = str(tmp_path)
  # The loss is NaN from step index 8 on: steps 9, 10 and 11 are refused, the run stops at 11.
  with pytest.raises(train.TrainingStopped) as info:
    fd.run(workdir, steps=STEPS, devices=1, nan_after=8, max_nonfinite_steps=3, log_every=1)
  msg = str(info.value)
  assert "stopped at step 11: 3 steps had a non-finite loss or gradient" in msg, msg
  assert "max_nonfinite_steps=3" in msg and "last good checkpoint is step 8" in msg, msg
  rows = train.read_metrics(workdir)
  assert [r["nonfinite"] for r in rows][-4:] == [0.0, 1.0, 1.0, 1.0]
  # Step 8 is intact and is the state of the healthy run at step 8; nothing later was saved.
  step, good = _restore(workdir)
  assert step == 8
  assert all(np.all(np.isfinite(v)) for v in good.values())
  _, healthy = _restore(ref_workdir, step=8)
  for k in good:
    np.testing.assert_allclose(good[k], healthy[k], rtol=1e-6, atol=1e-7, err_msg=k)


def _save(path, arr, fmt=None, mode=None):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  im = Image.fromarray(arr)
  if mode:
    im = im.convert(mode)
  im.save(path, format=fmt)


def test_mixed_size_grayscale_rgba_and_palette_folder_trains(tmp_path):
  rng = np.random.default_rng(0)
  rgb = lambda h, w: rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
  expected = {}
  for cls in ("a", "b"):
    for i, (h, w) in enumerate([(16, 16), (20, 12), (24, 30), (18, 18)]):
      arr = rgb(h, w)
      path = str(tmp_path / "train" / cls / f"{i}")
      kind = i % 4
      if kind == 0:
        _save(path + ".png", arr)
        expected[path + ".png"] = arr
      elif kind == 1:
        _save(path + ".png", arr[..., 0])  # grayscale: replicated to 3 channels
        expected[path + ".png"] = np.repeat(arr[..., :1], 3, -1)
      elif kind == 2:
        rgba = np.concatenate([arr, rng.integers(0, 256, (h, w, 1), dtype=np.uint8)], -1)
        _save(path + ".png", rgba)  # RGBA: alpha dropped, colours kept
        expected[path + ".png"] = arr
      else:
        _save(path + ".gif", arr, mode="P")  # palette GIF: converted as PIL converts it
        expected[path + ".gif"] = np.asarray(Image.open(path + ".gif").convert("RGB"))
  src = data.load_image_folder(str(tmp_path), "train")
  assert src.encoded and len(src) == 8
  # What the pipeline decodes (TensorFlow) is exactly the documented conversion.
  import tensorflow as tf

  paths = sorted(expected)
  for blob, path in zip(src.images, paths):
    np.testing.assert_array_equal(tf.io.decode_image(blob, channels=3).numpy(), expected[path], err_msg=path)
  method = fd.StatefulSimCLR()
  schedule = train.warmup_cosine(base_lr=1e-3, total_steps=2, warmup_steps=0)
  result = train.train(method, src, workdir=str(tmp_path / "run"), global_batch=8, total_steps=2,
                       tx=train.make_optimizer("adamw", schedule), schedule=schedule, progress=False,
                       mesh=train.make_mesh(jax.devices()[:1]), log_every=1)
  assert result.step == 2
  assert [r["nonfinite"] for r in train.read_metrics(str(tmp_path / "run"))] == [0.0, 0.0]


def test_truncated_jpeg_and_text_disguised_as_png_are_named(tmp_path):
  _save(str(tmp_path / "train/a/ok.png"), np.zeros((8, 8, 3), np.uint8))
  _save(str(tmp_path / "train/a/photo.jpg"), np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8),
        fmt="JPEG")
  blob = (tmp_path / "train/a/photo.jpg").read_bytes()
  (tmp_path / "train/a/photo.jpg").write_bytes(blob[: len(blob) * 2 // 3])
  with pytest.raises(data.DataError, match=r"train/a/photo\.jpg: not a readable image"):
    data.load_image_folder(str(tmp_path), "train")
  os.remove(tmp_path / "train/a/photo.jpg")
  (tmp_path / "train/a/readme.png").write_text("I am text")
  with pytest.raises(data.DataError, match=r"train/a/readme\.png: not a readable image"):
    data.load_image_folder(str(tmp_path), "train")
