"""The GPU check script's CPU dry run (tiny shapes): it runs with the core install's imports,
prints images/s and FLOPs, and XLA's FLOP count of the ResNet-18 step agrees with a hand count."""

import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _script():
  spec = importlib.util.spec_from_file_location("gpu_check", os.path.join(ROOT, "benchmarks", "gpu_check.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_dry_run_prints_throughput_and_a_flop_count_that_matches_the_hand_count(tmp_path, capsys):
  gpu_check = _script()
  rows = gpu_check.main(["--dry-run", "--models", "simclr_r18_cifar", "--steps", "2", "--peak_tflops", "1",
                         "--json", str(tmp_path / "check.json")])
  (row,) = rows
  assert row["step_images_per_s"] > 0 and row["loop_images_per_s"] > 0 and row["flops_per_step"] > 0
  assert 0 < row["mfu"] < 1
  # XLA counts the convolutions' and dense layers' 2 x MACs (x 3 with the backward products) plus
  # the elementwise work (BatchNorm, ReLU, the loss); the hand count has only the former.
  assert 0.9 <= row["xla_over_hand"] <= 1.1, row
  out = capsys.readouterr().out
  assert "simclr_r18_cifar" in out and "images/s" in out and "FLOPs/step" in out
  assert (tmp_path / "check.json").exists()
  assert gpu_check.peak_tflops("NVIDIA H200") == 989.0 and gpu_check.peak_tflops("cpu") is None


def test_hand_count_of_resnet18():
  gpu_check = _script()
  # ResNet-18, CIFAR stem, width 64, one 32 px image, forward only (/ 3 / 2 views / 2 FLOPs per MAC):
  # 0.556 GMACs is the published count for this network (e.g. the CIFAR ResNet-18 of kuangliu's repo).
  macs = gpu_check.resnet18_hand_flops(64, 32, 1, proj=(512,), padding=True) / 3 / 2 / 2
  assert macs == pytest.approx(0.556e9, rel=0.01)
  assert gpu_check._taps(4, 3, 1, 1) == 10 and gpu_check._taps(8, 3, 2, 1) == 11 and gpu_check._taps(5, 1, 1, 0) == 5
