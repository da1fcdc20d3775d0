"""Faults with real processes: SIGTERM, SIGKILL and resume; two processes with jax.distributed.

Each test starts `fault_driver.py` (one `train()` call, as a user's job) in subprocesses, sends
real signals once training is under way, restarts it on the same workdir, and compares the
final train state with an uninterrupted run computed here.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from tests.train import fault_driver as fd

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DRIVER = os.path.join(ROOT, "tests", "train", "fault_driver.py")


def _start(workdir, *args, devices=8):
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2", JAX_PLATFORMS="cpu",
             XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
  return subprocess.Popen([sys.executable, DRIVER, f"--workdir={workdir}", *args], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)


def _logged_steps(workdir):
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line)["step"] for line in f if line.endswith("\n")]


def _checkpoints(workdir):
  d = os.path.join(workdir, "checkpoints")
  return sorted(int(x) for x in os.listdir(d) if x.isdigit()) if os.path.isdir(d) else []


def _wait_for(cond, procs, timeout=240):
  t0 = time.time()
  while not cond():
    for p in procs:
      if p.poll() is not None:
        raise AssertionError(f"process ended early (rc {p.returncode}):\n{p.stdout.read()[-3000:]}")
    if time.time() - t0 > timeout:
      raise AssertionError("timed out waiting for the run to make progress")
    time.sleep(0.05)


def _finish(proc, timeout=240):
  out, _ = proc.communicate(timeout=timeout)
  return proc.returncode, out


def _compare(npz_path, reference, **tol):
  got = dict(np.load(npz_path))
  assert got.keys() == reference.keys()
  for k in reference:
    if tol:
      np.testing.assert_allclose(got[k], reference[k], err_msg=k, **tol)
    else:
      np.testing.assert_array_equal(got[k], reference[k], err_msg=k)


@pytest.mark.slow
def test_sigterm_then_sigkill_then_resume_is_bitwise_exact(tmp_path):
  steps = 32
  workdir, out = str(tmp_path / "run"), str(tmp_path / "final.npz")
  args = [f"--steps={steps}", "--devices=1", "--checkpoint_every=4", "--log_every=1", "--sleep=0.02",
          f"--out={out}"]

  # 1. SIGTERM once training is under way: a checkpoint at the next step boundary, exit 0.
  proc = _start(workdir, *args)
  _wait_for(lambda: len(_logged_steps(workdir)) >= 2, [proc])
  proc.send_signal(signal.SIGTERM)
  rc, text = _finish(proc)
  assert rc == 0, text[-3000:]
  assert "Received SIGTERM: saved a checkpoint at step" in text, text[-3000:]
  assert "Resume by running the same command again" in text
  stopped = int(text.split("saved a checkpoint at step ")[1].split()[0])
  assert 2 <= stopped < steps and _checkpoints(workdir)[-1] == stopped
  assert not os.path.exists(out)

  # 2. Restart, then a hard kill (no chance to save) after the next periodic checkpoint.
  proc = _start(workdir, *args)
  periodic = (stopped // 4 + 1) * 4
  _wait_for(lambda: _checkpoints(workdir)[-1] >= periodic and max(_logged_steps(workdir), default=0) > periodic,
            [proc])
  proc.send_signal(signal.SIGKILL)
  rc, text = _finish(proc)
  assert rc == -signal.SIGKILL
  assert f"Resuming from checkpoint step {stopped}" in text, text[-3000:]
  last = _checkpoints(workdir)[-1]

  # 3. Restart to the end: it resumes from the last periodic checkpoint.
  rc, text = _finish(_start(workdir, *args))
  assert rc == 0, text[-3000:]
  assert f"Resuming from checkpoint step {last}" in text, text[-3000:]
  assert periodic <= last < steps
  assert f"finished at step {steps} preempted=False" in text

  # The final state equals an uninterrupted run's, bit for bit: parameters, optimizer state,
  # BN statistics, the method's EMA/counter/queue, skip counter.
  ref = fd.run(str(tmp_path / "reference"), steps=steps, devices=1, checkpoint_every=4)
  _compare(out, fd.flat_state(ref.state))


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_equal_one_process_and_stop_together_on_one_signal(tmp_path):
  steps = 8
  workdir, out = str(tmp_path / "run"), str(tmp_path / "final.npz")

  def launch():
    port = _free_port()
    return [_start(workdir, f"--steps={steps}", "--checkpoint_every=100", "--log_every=1", "--sleep=0.02",
                   f"--out={out}", f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2",
                   f"--process_id={i}", devices=2) for i in range(2)]

  # 2 processes x 2 CPU devices, each reading its own half of every global batch of 16.
  # SIGINT reaches process 1 only: both must stop at the same step boundary and checkpoint.
  procs = launch()
  _wait_for(lambda: len(_logged_steps(workdir)) >= 1, procs)
  procs[1].send_signal(signal.SIGINT)
  results = [_finish(p) for p in procs]
  for rc, text in results:
    assert rc == 0, text[-3000:]
  assert "saved a checkpoint at step" in results[0][1], results[0][1][-3000:]
  stopped = int(results[0][1].split("saved a checkpoint at step ")[1].split()[0])
  assert f"process 1 finished at step {stopped} preempted=True" in results[1][1], results[1][1][-3000:]
  assert stopped < steps and _checkpoints(workdir) == [stopped]

  # Restarted, both processes restore the shared checkpoint and finish the run.
  results = [_finish(p) for p in launch()]
  for rc, text in results:
    assert rc == 0, text[-3000:]
  assert f"Resuming from checkpoint step {stopped}" in results[0][1]
  # Only process 0 writes metrics: one row per step, no duplicates.
  assert _logged_steps(workdir) == list(range(1, steps + 1))

  # One process holding 4 devices and the same global batch reaches the same state.
  ref = fd.run(str(tmp_path / "reference"), steps=steps, devices=4, checkpoint_every=100)
  _compare(out, fd.flat_state(ref.state), rtol=1e-5, atol=1e-6)
  assert jax.device_count() == 8


@pytest.mark.slow
def test_dataset_passes_across_two_processes_equal_one_process(tmp_path):
  """k-means over features sharded across 2 processes x 2 devices, the sampler and partner
  examples built from it on each process, the head reset from the centroids: the same final
  state as one process with the 4 devices."""
  steps = 6  # passes before steps 0 and 4
  workdir, out = str(tmp_path / "run"), str(tmp_path / "final.npz")
  port = _free_port()
  procs = [_start(workdir, f"--steps={steps}", "--method=cluster", "--checkpoint_every=100", "--log_every=2",
                  f"--out={out}", f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2",
                  f"--process_id={i}", devices=2) for i in range(2)]
  for rc, text in [_finish(p) for p in procs]:
    assert rc == 0, text[-3000:]
  from tests.train.test_dataset_pass import SampledCluster  # pylint: disable=g-import-not-at-top

  method = SampledCluster()
  ref = fd.run(str(tmp_path / "reference"), steps=steps, devices=4, checkpoint_every=100, method=method)
  assert method.passes == [0, 4]
  _compare(out, fd.flat_state(ref.state), rtol=1e-5, atol=1e-6)
  rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  assert [r["step"] for r in rows] == [2, 4, 6] and all(r["partner_ok"] == 1.0 for r in rows)
