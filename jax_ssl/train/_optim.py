"""Optimizers and learning-rate schedules (optax)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
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


def cosine_between(start: float, end: float, total_steps: int):
  """A cosine from `start` (step 0) to `end` (step `total_steps`), constant after: DINO's / MSN's
  weight-decay schedule (0.04 -> 0.4)."""
  total = max(int(total_steps), 1)

  def schedule(step):
    t = jnp.clip(jnp.asarray(step, jnp.float32) / total, 0.0, 1.0)
    return end + (start - end) * 0.5 * (1.0 + jnp.cos(jnp.pi * t))

  return schedule


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
                   grad_clip_norm: float | None = None, mask=decay_mask) -> optax.GradientTransformation:
  """Builds "sgd", "adamw" or "lars"; weight decay (and LARS trust ratios) skip biases/norms.

  `weight_decay` is a float or a schedule of the update count (e.g. `cosine_between`).

  SGD and LARS use coupled weight decay (added to the gradient, as the SimCLR/BYOL code);
  AdamW uses decoupled decay. `mask`: a tree or callable of which leaves get decay
  (default `decay_mask`; a method's `Method.decay_mask` adds its own exclusions).
  """
  if name == "sgd":
    tx = optax.chain(optax.add_decayed_weights(weight_decay, mask=mask),
                     optax.sgd(schedule, momentum=momentum, nesterov=False))
  elif name == "adamw":
    tx = optax.adamw(schedule, b1=b1, b2=b2, weight_decay=weight_decay, mask=mask)
  elif name == "lars":
    tx = optax.lars(schedule, weight_decay=weight_decay, weight_decay_mask=mask,
                    trust_coefficient=trust_coefficient, trust_ratio_mask=mask, momentum=momentum)
  else:
    raise ValueError(f"unknown optimizer {name!r}; expected 'sgd', 'adamw' or 'lars'")
  if grad_clip_norm:
    tx = optax.chain(optax.clip_by_global_norm(grad_clip_norm), tx)
  return tx


class GroupedState(NamedTuple):
  count: jax.Array  # optimizer updates applied so far (for `ParamGroup.frozen_steps`)
  inner: optax.OptState


def grouped(tx: optax.GradientTransformation, groups: dict, labels) -> optax.GradientTransformation:
  """One optimizer `tx` over all parameters, with per-group freezing and learning-rate multipliers.

  Gradients of a group in its first `frozen_steps` updates are zeroed *before* `tx` (as the
  official SwAV code's `p.grad = None`), and the updates of a group are multiplied by its
  `lr_mult` (zero for `trainable=False`) *after* `tx`, so one optimizer state serves every
  group and a default group is bitwise the plain optimizer. `labels`: a callable params ->
  tree of group names.
  """
  def check(names):
    unknown = sorted(set(names) - set(groups))
    if unknown:
      raise ValueError(f"param_labels names groups {unknown} that param_groups does not declare: {sorted(groups)}")

  def init(params):
    check(jax.tree.leaves(labels(params)))
    return GroupedState(jnp.zeros((), jnp.int32), tx.init(params))

  def update(updates, state, params=None):
    names = labels(updates)
    check(jax.tree.leaves(names))

    def freeze(g, name):
      steps = groups[name].frozen_steps
      return jnp.where(state.count < steps, jnp.zeros_like(g), g) if steps else g

    def scale(u, name):
      group = groups[name]
      if not group.trainable:
        return jnp.zeros_like(u)
      return u * group.lr_mult if group.lr_mult != 1.0 else u

    updates = jax.tree.map(freeze, updates, names)
    updates, inner = tx.update(updates, state.inner, params)
    return jax.tree.map(scale, updates, names), GroupedState(state.count + 1, inner)

  return optax.GradientTransformation(init, update)


def method_optimizer(method, base) -> dict:
  """The optimizers of a method's phases: `{phase name: GradientTransformation}`.

  Args:
    method: a `jax_ssl.methods.Method` (after `set_schedule`: groups may depend on the run's length).
    base: the run's optimizer: a `GradientTransformation`, or a callable `mask -> tx` (built
      with the method's `decay_mask`), or an already built dict (returned as is).

  A phase's own `tx` replaces `base`; a phase's `lr_mult` scales its updates. Parameter groups
  other than one default group wrap the phase's optimizer with `grouped` (freezing and
  learning-rate multipliers per group).
  """
  if isinstance(base, dict):
    return base
  groups = method.param_groups()
  trivial = set(groups) == {"default"} and groups["default"].is_default
  out = {}
  for phase in method.phases():
    tx = phase.tx
    if tx is None:
      tx = base if isinstance(base, optax.GradientTransformation) else base(method.decay_mask)
    if phase.lr_mult != 1.0:
      tx = optax.chain(tx, optax.scale(float(phase.lr_mult)))
    out[phase.name] = tx if trivial else grouped(tx, groups, method.param_labels)
  return out
