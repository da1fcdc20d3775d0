"""Optimizers and learning-rate schedules (optax)."""

from __future__ import annotations

import jax
import optax


def decay_mask(params):
  """True for weights that get weight decay / LARS adaptation: kernels, not biases or norms.

  As in SimCLR/BYOL, every parameter with fewer than two dimensions (biases, BatchNorm scale
  and offset) is excluded.
  """
  return jax.tree.map(lambda p: p.ndim > 1, params)


def warmup_cosine(*, base_lr: float, total_steps: int, warmup_steps: int, end_lr: float = 0.0):
  """Linear warmup from 0 to `base_lr` over `warmup_steps`, then cosine decay to `end_lr`."""
  warmup_steps = min(warmup_steps, max(total_steps - 1, 0))
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=base_lr, warmup_steps=warmup_steps,
      decay_steps=max(total_steps, warmup_steps + 1), end_value=end_lr)


def scaled_lr(base_lr: float, batch_size: int, scaling: str) -> float:
  """SimCLR's learning-rate scaling: "linear" (lr * B / 256), "sqrt" (lr * sqrt(B)) or "none"."""
  if scaling == "linear":
    return base_lr * batch_size / 256
  if scaling == "sqrt":
    return base_lr * batch_size**0.5
  if scaling == "none":
    return base_lr
  raise ValueError(f"unknown lr scaling {scaling!r}; expected 'linear', 'sqrt' or 'none'")


def make_optimizer(name: str, schedule, *, weight_decay: float = 0.0, momentum: float = 0.9,
                   b1: float = 0.9, b2: float = 0.999, trust_coefficient: float = 0.001,
                   grad_clip_norm: float | None = None) -> optax.GradientTransformation:
  """Builds "sgd", "adamw" or "lars"; weight decay (and LARS trust ratios) skip biases/norms.

  SGD and LARS use coupled weight decay (added to the gradient, as the SimCLR/BYOL code);
  AdamW uses decoupled decay.
  """
  if name == "sgd":
    tx = optax.chain(optax.add_decayed_weights(weight_decay, mask=decay_mask),
                     optax.sgd(schedule, momentum=momentum, nesterov=False))
  elif name == "adamw":
    tx = optax.adamw(schedule, b1=b1, b2=b2, weight_decay=weight_decay, mask=decay_mask)
  elif name == "lars":
    tx = optax.lars(schedule, weight_decay=weight_decay, weight_decay_mask=decay_mask,
                    trust_coefficient=trust_coefficient, trust_ratio_mask=decay_mask, momentum=momentum)
  else:
    raise ValueError(f"unknown optimizer {name!r}; expected 'sgd', 'adamw' or 'lars'")
  if grad_clip_norm:
    tx = optax.chain(optax.clip_by_global_norm(grad_clip_norm), tx)
  return tx
