"""The accelerator check: images/s and model FLOPs utilization of SimCLR train steps.

  python benchmarks/gpu_check.py                      # every model at its real size (a GPU / TPU)
  python benchmarks/gpu_check.py --dry-run            # tiny shapes, any machine (the suite runs this)
  bash benchmarks/gpu_check.sh                        # on a lent GPU: one call, under 8 minutes

Needs only the core install (jax, flax, optax, numpy: `jax_ssl.losses` and `jax_ssl.models`), so
it runs on an accelerator image without TensorFlow. For each model, the SimCLR step (two views,
backbone + projection MLP 2048-128 with BN, NT-Xent at temperature 0.5 in float32, SGD with
momentum; compute in bfloat16 on accelerators, parameters float32) is timed two ways:

* step: the jitted step on device-resident batches (the step alone);
* loop: every step fed a new host batch of uint8 images (transfer and normalization on the device
  included; augmentation is not: the tf.data pipeline needs TensorFlow, which this image lacks, and
  device-side augmentation does not exist yet), i.e. the input bound of a device-fed loop.

FLOPs per step come from XLA's cost analysis of the compiled step; MFU = FLOPs x steps/s / the
device's peak (`PEAKS`, dense bf16 from the vendors' sheets, or --peak_tflops). For ResNet-18 the
script also prints a hand count (2 x multiply-accumulates of every convolution and dense layer, x 3
for the forward and the two backward products; kernel taps on real pixels only, as XLA counts) and
its ratio to XLA's count, and the count with the padding taps too (the published convention).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from jax_ssl import losses, models  # noqa: E402

# Dense bf16 peak TFLOP/s per chip (vendor data sheets; sparsity excluded). Matched as substrings
# of `device_kind`, first match wins; --peak_tflops overrides.
PEAKS = (("H200", 989.0), ("H100", 989.0), ("A100", 312.0), ("A6000", 155.0), ("L40S", 362.0), ("V100", 125.0),
         ("TPU v5p", 459.0), ("TPU v5 lite", 197.0), ("TPU v5e", 197.0), ("TPU v4", 275.0), ("TPU v3", 123.0))

# name -> (backbone kwargs, image side, batch) at full size and for --dry-run.
MODELS = {
    "simclr_r18_cifar": (dict(name="resnet", depth=18, width=64, stem="cifar"), 32, 512),
    "simclr_r50_224": (dict(name="resnet", depth=50, width=64, stem="imagenet"), 224, 128),
    "simclr_vitb16_224": (dict(name="vit", variant="B/16", pool="cls"), 224, 128),
}
DRY = {
    "simclr_r18_cifar": (dict(name="resnet", depth=18, width=8, stem="cifar"), 16, 8),
    "simclr_r50_224": (dict(name="resnet", depth=50, width=4, stem="imagenet"), 32, 8),
    "simclr_vitb16_224": (dict(name="vit", width=16, depth=1, num_heads=2, mlp_dim=32, patch_size=8, pool="cls"), 16, 8),
}


def peak_tflops(kind: str) -> float | None:
  for key, value in PEAKS:
    if key.lower() in kind.lower():
      return value
  return None


def _taps(n: int, k: int, stride: int, pad: int) -> int:
  """Pairs (output position, kernel tap) along one axis whose input is inside the image, not padding."""
  m = (n + 2 * pad - k) // stride + 1
  return sum(1 for o in range(m) for t in range(k) if 0 <= o * stride - pad + t < n)


def resnet18_hand_flops(width: int, side: int, batch: int, proj=(2048, 128), *, padding: bool = False) -> float:
  """2 x MACs of a CIFAR-stem ResNet-18's convolutions and the projection MLP, for 2 views, x 3
  (forward, gradient wrt inputs, gradient wrt weights). `padding=True` counts every kernel tap (the
  published convention: 0.556 GMACs per 32 px image at width 64); False only the taps on real
  pixels, which is what XLA's cost analysis counts (a 3x3 convolution on a 4 x 4 map has 31% of
  its taps in the padding)."""
  def conv(n, k, stride, pad, cin, cout):
    taps = ((n + 2 * pad - k) // stride + 1) ** 2 * k * k if padding else _taps(n, k, stride, pad) ** 2
    return taps * cin * cout

  macs, h, c = conv(side, 3, 1, 1, 3, width), side, width  # stem
  for stage in range(4):
    out = width * 2 ** stage
    for block in range(2):
      stride = 2 if stage > 0 and block == 0 else 1
      macs += conv(h, 3, stride, 1, c, out)
      h_out = (h + 2 - 3) // stride + 1
      macs += conv(h_out, 3, 1, 1, out, out)
      if stride != 1 or c != out:
        macs += conv(h, 1, stride, 0, c, out)  # the 1x1 projection
      h, c = h_out, out
  dims = (c,) + tuple(proj)
  macs += sum(a * b for a, b in zip(dims[:-1], dims[1:]))
  return 3 * 2 * macs * 2 * batch


def compiled_flops(compiled) -> float:
  """FLOPs of a compiled XLA computation from its cost analysis (NaN where the backend gives none)."""
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else {}
  return float((cost or {}).get("flops", float("nan")))


def build(model_kwargs: dict, side: int, batch: int, dtype):
  """(jitted step, initial (params, stats, opt_state), a device batch, host-batch maker)."""
  kw = dict(model_kwargs)
  backbone = models.build_backbone(kw.pop("name"), dtype=dtype, **kw)
  head = models.MLP((2048,), 128, use_bn=True, dtype=dtype)
  x0 = jnp.zeros((2, side, side, 3), jnp.float32)
  vb = backbone.init(jax.random.key(0), x0, train=True)
  f0 = backbone.apply(vb, x0, train=False)
  vh = head.init(jax.random.key(1), f0, train=True)
  params = {"backbone": vb["params"], "head": vh["params"]}
  stats = {"backbone": vb.get("batch_stats", {}), "head": vh.get("batch_stats", {})}
  tx = optax.sgd(0.1, momentum=0.9)
  opt_state = tx.init(params)

  def forward(p, s, x):
    f, sb = backbone.apply({"params": p["backbone"], "batch_stats": s["backbone"]}, x, train=True,
                           mutable=["batch_stats"])
    z, sh = head.apply({"params": p["head"], "batch_stats": s["head"]}, f, train=True, mutable=["batch_stats"])
    return z.astype(jnp.float32), {"backbone": sb.get("batch_stats", {}), "head": sh.get("batch_stats", {})}

  def loss_fn(p, s, images):
    x = images.astype(jnp.float32) / 255.0  # [2B, S, S, 3]: both views, normalized on the device
    x = (x - 0.5) / 0.25
    z, s = forward(p, s, x)
    z1, z2 = jnp.split(z, 2)
    return losses.nt_xent(z1, z2, temperature=0.5), s

  @jax.jit
  def step(p, s, o, images):
    (loss, s), g = jax.value_and_grad(loss_fn, has_aux=True)(p, s, images)
    updates, o = tx.update(g, o, p)
    return optax.apply_updates(p, updates), s, o, loss

  rng = np.random.default_rng(0)

  def host_batch():
    return rng.integers(0, 256, (2 * batch, side, side, 3), dtype=np.uint8)

  return step, (params, stats, opt_state), jax.device_put(host_batch()), host_batch


def bench(name: str, model_kwargs: dict, side: int, batch: int, steps: int, dtype, peak: float | None) -> dict:
  step, (p, s, o), dev_batch, host_batch = build(model_kwargs, side, batch, dtype)
  t0 = time.perf_counter()
  compiled = step.lower(p, s, o, dev_batch).compile()
  compile_s = time.perf_counter() - t0
  flops = compiled_flops(compiled)
  p, s, o, loss = step(p, s, o, dev_batch)
  jax.block_until_ready(loss)
  t0 = time.perf_counter()
  for _ in range(steps):
    p, s, o, loss = step(p, s, o, dev_batch)
  jax.block_until_ready(loss)
  step_s = (time.perf_counter() - t0) / steps
  hosts = [host_batch() for _ in range(min(steps, 4))]  # made before timing: only the feed is timed
  t0 = time.perf_counter()
  for i in range(steps):
    p, s, o, loss = step(p, s, o, jax.device_put(hosts[i % len(hosts)]))
  jax.block_until_ready(loss)
  loop_s = (time.perf_counter() - t0) / steps
  row = {"model": name, "side": side, "batch": batch, "compile_s": round(compile_s, 1),
         "step_images_per_s": round(batch / step_s, 1), "loop_images_per_s": round(batch / loop_s, 1),
         "flops_per_step": flops, "tflops_per_s": round(flops / step_s / 1e12, 3), "loss": float(loss)}
  if peak:
    row["mfu"] = round(flops / step_s / (peak * 1e12), 4)
  if model_kwargs.get("name") == "resnet" and model_kwargs.get("depth") == 18 and model_kwargs.get("stem") == "cifar":
    hand = resnet18_hand_flops(model_kwargs["width"], side, batch)
    row.update(hand_flops_per_step=hand, xla_over_hand=round(flops / hand, 3),
               hand_flops_with_padding=resnet18_hand_flops(model_kwargs["width"], side, batch, padding=True))
  return row


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--dry-run", action="store_true", help="tiny shapes, float32: checks the script anywhere")
  parser.add_argument("--peak_tflops", type=float, default=None, help="the device's peak (default: PEAKS)")
  parser.add_argument("--json", default=None, help="also write the rows to this file")
  args = parser.parse_args(argv)
  dev = jax.devices()[0]
  peak = args.peak_tflops or peak_tflops(dev.device_kind)
  dtype = jnp.float32 if args.dry_run or dev.platform == "cpu" else jnp.bfloat16
  print(f"device: {jax.device_count()} x {dev.device_kind} ({dev.platform}); peak "
        f"{'%.0f TFLOP/s' % peak if peak else 'unknown (pass --peak_tflops)'}; compute {jnp.dtype(dtype).name}")
  rows = []
  for name in args.models:
    kw, side, batch = (DRY if args.dry_run else MODELS)[name]
    row = bench(name, kw, side, batch, args.steps, dtype, peak)
    rows.append(row)
    extra = f", MFU {100 * row['mfu']:.1f}%" if "mfu" in row else ""
    hand = f"; hand count {row['hand_flops_per_step']:.3e} (XLA / hand {row['xla_over_hand']})" if "xla_over_hand" in row else ""
    print(f"{name}: {side} px, batch {batch}: step {row['step_images_per_s']} images/s, loop (host uint8 feed) "
          f"{row['loop_images_per_s']} images/s; {row['flops_per_step']:.3e} FLOPs/step, "
          f"{row['tflops_per_s']} TFLOP/s{extra}{hand}; compile {row['compile_s']} s")
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"device": dev.device_kind, "peak_tflops": peak, "rows": rows}, f, indent=2)
  return rows


if __name__ == "__main__":
  main()
