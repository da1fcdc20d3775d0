"""Exponential-moving-average target networks (BYOL, DetCon-B).

BYOL (Grill et al. 2020, Sec. 3.1 and appendix J): after each optimizer step the target
parameters become ``xi <- tau * xi + (1 - tau) * theta`` with the decay increased from
``tau_base`` to 1 over training by ``tau(k) = 1 - (1 - tau_base) * (cos(pi k / K) + 1) / 2``,
``k`` the step (the one just taken, counted from 0) and ``K`` the run's total steps; as the
official ``byol/utils/schedules.py`` ``target_ema``, ``k`` is clipped to ``K``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def ema_decay(step, *, base: float, total_steps: int) -> jax.Array:
  """BYOL's cosine-increasing EMA decay ``tau(step)`` (float32 scalar), ``base`` at 0, 1 at K."""
  if total_steps is None or total_steps <= 0:
    raise ValueError("the EMA decay schedule needs the run's total steps: call "
                     f"method.set_schedule(steps_per_epoch=, total_steps=) first (got {total_steps})")
  k = jnp.minimum(jnp.asarray(step, jnp.float32), float(total_steps))
  return 1.0 - (1.0 - base) * (jnp.cos(jnp.pi * k / total_steps) + 1.0) / 2.0


def ema_decay_linear(step, *, base: float, total_steps: int, span: float = 1.0) -> jax.Array:
  """MSN's linear EMA decay: ``base + (1 - base) * k / (span * K)``, ``k`` clipped to ``span * K``.

  The official MSN code raises the momentum from 0.996 towards 1 over 1.25 x the run's
  iterations (``span=1.25``), so it ends at ``base + (1 - base) / span`` (0.9992), not at 1.
  """
  if total_steps is None or total_steps <= 0:
    raise ValueError("the EMA decay schedule needs the run's total steps: call "
                     f"method.set_schedule(steps_per_epoch=, total_steps=) first (got {total_steps})")
  horizon = float(span) * total_steps
  k = jnp.minimum(jnp.asarray(step, jnp.float32), horizon)
  return base + (1.0 - base) * k / horizon


def ema_update(target, online, tau):
  """``tau * target + (1 - tau) * online`` leaf by leaf (same tree structure)."""
  return jax.tree.map(lambda t, o: t + (1.0 - tau) * (o - t), target, online)
