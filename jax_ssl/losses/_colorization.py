"""Colorization (Zhang, Isola & Efros, ECCV 2016, "Colorful Image Colorization"): ab classification.

The network sees the lightness L of an image and predicts, for every pixel of a quarter-
resolution grid, a distribution over Q quantized ab colours (the in-gamut bins of a 10-unit
grid: 313 in the paper's file, 261 regenerated from the sRGB gamut by `methods.colorization`).
The target is each pixel's ab soft-encoded on its nearest bins (Sec. 2.1), the loss a per-pixel
cross-entropy re-weighted by the rarity of the pixel's colour (Eq. 2-4).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jax_ssl.losses import _common


def colorization_soft_encode(ab: jax.Array, bins: jax.Array, *, num_neighbors: int = 5,
                             sigma: float = 5.0) -> jax.Array:
  """Soft-encodes ab colours on their nearest bins: ``ab [..., 2], bins [Q, 2] -> [..., Q]``.

  Zhang et al. 2016, Sec. 2.1: each colour's ``num_neighbors`` nearest bins (Euclidean in ab)
  get the Gaussian weights ``exp(-d^2 / (2 sigma^2))``, normalized to sum 1; every other bin
  gets 0. The paper says 5 neighbours; the official training layer (``NNEncode``) uses 10.

  >>> import jax.numpy as jnp
  >>> bins = jnp.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
  >>> print(colorization_soft_encode(jnp.array([[5.0, 0.0]]), bins, num_neighbors=2).round(3))
  [[0.5 0.5 0. ]]
  """
  if ab.shape[-1] != 2 or bins.ndim != 2 or bins.shape[1] != 2:
    raise ValueError(f"colorization_soft_encode expects ab [..., 2] and bins [Q, 2], got {ab.shape}, {bins.shape}")
  if not 1 <= num_neighbors <= bins.shape[0]:
    raise ValueError(f"num_neighbors must be in 1..{bins.shape[0]}, got {num_neighbors}")
  dtype = _common.compute_dtype(ab, bins)
  flat = ab.reshape(-1, 2).astype(dtype)
  bins = bins.astype(dtype)
  d2 = jnp.sum((flat[:, None, :] - bins[None, :, :]) ** 2, axis=-1)  # [N, Q]
  neg_d2, idx = jax.lax.top_k(-d2, num_neighbors)  # nearest first
  w = jax.nn.softmax(neg_d2 / (2.0 * sigma ** 2), axis=-1)  # exp(-d^2 / 2 sigma^2), normalized
  out = jnp.zeros_like(d2).at[jnp.arange(flat.shape[0])[:, None], idx].set(w)
  return out.reshape(ab.shape[:-1] + (bins.shape[0],))


def colorization_rebalance_weights(prior: jax.Array, *, lam: float = 0.5) -> jax.Array:
  """Class-rebalancing weights ``w [Q]`` of a colour prior ``[Q]`` (Zhang et al. 2016, Eq. 4).

  ``w`` is proportional to ``((1 - lam) prior + lam / Q) ** -1``, normalized so that the
  expected weight under the prior is 1: ``sum(prior * w) == 1``. ``prior`` must be non-negative
  with a positive sum (it is normalized to sum 1 first); the paper (and the official code, whose
  uniform part spreads over the bins with a non-zero prior) take it strictly positive.

  >>> import jax.numpy as jnp
  >>> w = colorization_rebalance_weights(jnp.array([0.5, 0.25, 0.25]), lam=0.5)
  >>> print(w.round(4), round(float((w * jnp.array([0.5, 0.25, 0.25])).sum()), 6))
  [0.8235 1.1765 1.1765] 1.0
  """
  prior = jnp.asarray(prior, _common.compute_dtype(prior))
  if prior.ndim != 1:
    raise ValueError(f"prior must be [Q], got {prior.shape}")
  prior = prior / jnp.sum(prior)
  w = 1.0 / ((1.0 - lam) * prior + lam / prior.shape[0])
  return w / jnp.sum(prior * w)


def colorization_loss(logits: jax.Array, ab: jax.Array, bins: jax.Array, class_weights: jax.Array, *,
                      num_neighbors: int = 5, sigma: float = 5.0, gray_threshold: float = 5.0,
                      axis_name=None) -> jax.Array:
  """Class-rebalanced multinomial cross-entropy of Zhang et al. 2016, Eq. (2).

  ``L = -1/(B h w) sum_{b,h,w} c_b v(Z_bhw) sum_q Z_bhwq log softmax(logits)_bhwq``:

  * ``Z = colorization_soft_encode(ab, bins)`` (the soft target), ``v(Z) = class_weights[argmax_q Z]``
    (the weight of the pixel's nearest bin, Eq. 3).
  * ``c_b = 1`` for an image with colour, 0 for a grey one: as the official ``NonGrayMaskLayer``,
    an image has colour when some pixel of its (target-resolution) ab has ``|a|`` or ``|b|``
    above ``gray_threshold``; grey images still count in the mean's denominator.
  * MEAN over all ``B h w`` pixels of the GLOBAL batch.

  The official Caffe network applies the weights and the grey mask to the gradient only (its
  ``ClassRebalanceMultLayer`` is the identity forward), so its logged loss is the unweighted
  one; here the value is weighted and the gradient is the same.

  Args:
    logits: ``[B, h, w, Q]`` per-pixel scores.
    ab: ``[B, h, w, 2]`` the target's ab at the logits' resolution (the official code takes
      every 4th pixel of the full-resolution ab).
    bins: ``[Q, 2]`` ab bin centres. class_weights: ``[Q]`` (``colorization_rebalance_weights``).
    num_neighbors, sigma: of the soft encoding. gray_threshold: in ab units.
    axis_name: mapped axis the batch is split over.

  Returns:
    Scalar, float32 (float64 for float64 inputs).
  """
  if logits.ndim != 4 or ab.shape != logits.shape[:3] + (2,) or logits.shape[-1] != bins.shape[0]:
    raise ValueError(f"colorization_loss expects logits [B, h, w, Q], ab [B, h, w, 2], bins [Q, 2]; "
                     f"got {logits.shape}, {ab.shape}, {bins.shape}")
  dtype = _common.compute_dtype(logits, ab)
  z = jax.lax.stop_gradient(colorization_soft_encode(ab.astype(dtype), bins, num_neighbors=num_neighbors,
                                                     sigma=sigma))
  weight = jnp.asarray(class_weights, dtype)[jnp.argmax(z, axis=-1)]  # [B, h, w]
  colourful = jnp.any(jnp.abs(ab) > gray_threshold, axis=(1, 2, 3)).astype(dtype)  # [B]
  ce = -jnp.sum(z * jax.nn.log_softmax(logits.astype(dtype), axis=-1), axis=-1)
  return _common.global_mean(jnp.mean(colourful[:, None, None] * weight * ce), axis_name)


def colorization_annealed_mean(logits: jax.Array, bins: jax.Array, *, temperature: float = 0.38) -> jax.Array:
  """The ab point estimate of Zhang et al. 2016, Eq. (5): the mean of the distribution re-
  normalized at ``temperature`` (``softmax(logits / T)``; T = 0.38 in the paper), ``[..., Q] ->
  [..., 2]``. T = 1 is the plain mean (desaturated), T -> 0 the mode."""
  p = jax.nn.softmax(logits.astype(_common.compute_dtype(logits)) / temperature, axis=-1)
  return p @ jnp.asarray(bins, p.dtype)
