"""Shared helpers of the loss library: dtypes, normalisation and cross-device reductions.

Private module; the public names are re-exported from :mod:`jax_ssl.losses`.
"""

from typing import Hashable, Sequence, Tuple, Union

import jax
import jax.numpy as jnp

AxisName = Union[Hashable, Tuple[Hashable, ...], None]


def compute_dtype(*xs) -> jnp.dtype:
  """The dtype a loss computes in: the inputs' common dtype, but at least float32."""
  return jnp.promote_types(jnp.result_type(*xs), jnp.float32)


def l2_normalize(x: jax.Array, *, axis: int = -1, epsilon: float = 1e-12) -> jax.Array:
  """``x / max(||x||, sqrt(epsilon))`` along ``axis``, computed in at least float32.

  Same convention as ``tf.math.l2_normalize`` (used by SimCLR, BYOL and DetCon), so a zero
  vector maps to zero instead of NaN.

  Args:
    x: any shape ``[..., D]``.
    axis: the axis to normalise.
    epsilon: lower bound on the squared norm.

  Returns:
    An array of the shape of ``x`` with unit L2 norm along ``axis``.

  >>> import jax.numpy as jnp
  >>> print(l2_normalize(jnp.array([[3.0, 4.0], [0.0, 0.0]])))
  [[0.6 0.8]
   [0.  0. ]]
  """
  x = x.astype(compute_dtype(x))
  sq = jnp.sum(jnp.square(x), axis=axis, keepdims=True)
  return x * jax.lax.rsqrt(jnp.maximum(sq, epsilon))


def _names(axis_name: AxisName) -> Tuple[Hashable, ...]:
  return tuple(axis_name) if isinstance(axis_name, (tuple, list)) else (axis_name,)


def axis_size(axis_name: AxisName) -> int:
  """Number of devices along ``axis_name`` (1 when ``axis_name`` is None)."""
  if axis_name is None:
    return 1
  if hasattr(jax.lax, "axis_size"):
    size = 1
    for name in _names(axis_name):
      size *= jax.lax.axis_size(name)
    return size
  return jax.lax.psum(1, axis_name)


def axis_index(axis_name: AxisName) -> jax.Array:
  """This device's position along ``axis_name`` (0 when ``axis_name`` is None)."""
  if axis_name is None:
    return jnp.zeros((), jnp.int32)
  return jax.lax.axis_index(axis_name)


def all_gather(x: jax.Array, axis_name: AxisName) -> jax.Array:
  """Concatenates every device's ``x`` along axis 0, in device order.

  The transpose of ``all_gather`` is ``psum_scatter``, so the gradient that any device sends
  to a gathered row flows back to the device that owns the row.
  """
  if axis_name is None:
    return x
  return jax.lax.all_gather(x, axis_name, axis=0, tiled=True)


def _is_varying(x: jax.Array, axis_name: AxisName) -> bool:
  """Whether ``x`` is typed as device-varying over ``axis_name`` (shard_map with check_vma)."""
  aval = jax.typeof(x)
  vma = getattr(aval, "vma", None)
  if vma is None:
    vma = getattr(getattr(aval, "manual_axis_type", None), "varying", None)
  if vma is None:
    return False
  return all(name in vma for name in _names(axis_name))


def global_mean(local_mean: jax.Array, axis_name: AxisName) -> jax.Array:
  """Mean over devices of a per-device mean (equal shard sizes), with exact gradients.

  The value is the global mean on every device. Its gradient, taken on each device, is the
  gradient of the global mean with respect to that device's inputs, under both kinds of
  collective semantics JAX has:

  * ``shard_map`` with varying-axis typing (``check_vma=True``, the default): ``pmean``
    transposes to a no-op broadcast, so plain ``pmean`` already has the right gradient.
  * ``pmap`` and ``shard_map(check_vma=False)``: ``psum`` transposes to ``psum``, so
    differentiating a ``pmean`` on every device would count every device's seed and scale the
    gradient by the number of devices. There the value comes from ``pmean`` under
    ``stop_gradient`` and the gradient from this device's ``local_mean / n`` alone; the other
    devices' terms reach this device's inputs through the transposes of ``all_gather``.

  Under ``pmap`` the gradient with respect to a replicated parameter is therefore this
  device's share of the global gradient: combine such gradients with ``psum`` (not ``pmean``).
  """
  if axis_name is None:
    return local_mean
  if _is_varying(local_mean, axis_name):
    return jax.lax.pmean(local_mean, axis_name)
  n = axis_size(axis_name)
  share = local_mean / n
  return share + jax.lax.stop_gradient(jax.lax.psum(share, axis_name) - share)


def global_logsumexp(x: jax.Array, axis: Union[int, Sequence[int], None],
                     axis_name: AxisName) -> jax.Array:
  """``logsumexp`` over ``axis`` (keepdims) and, when given, over every device's rows.

  Max-shifted with the global max (``pmax``), so it is finite for any finite input. Meant for
  values under ``stop_gradient``.
  """
  m = jnp.max(x, axis=axis, keepdims=True)
  if axis_name is not None:
    m = jax.lax.pmax(m, axis_name)
  s = jnp.sum(jnp.exp(x - m), axis=axis, keepdims=True)
  if axis_name is not None:
    s = jax.lax.psum(s, axis_name)
  return m + jnp.log(s)
