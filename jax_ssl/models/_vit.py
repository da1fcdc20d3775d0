"""Vision Transformer backbone (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words").

Where the paper is silent the conventions are big_vision's `models/vit.py`: pre-LN blocks, LayerNorm
epsilon 1e-6, exact (erf) GELU, xavier-uniform attention/MLP kernels with N(0, 1e-6) MLP biases,
position embeddings N(0, 1/sqrt(D)), a zero-initialized class token and classifier kernel, a final
LayerNorm ("encoder_norm") before pooling, and the parameter names `embedding`, `pos_embedding`,
`cls`, `Transformer/encoderblock_{i}`, `Transformer/encoder_norm`, `head`.

Position embeddings cover the patch tokens only and are added before the class token is prepended,
so a subset of patch tokens (MAE's visible 25%) keeps its positions. The fixed "sincos2d" table is
MAE's (He et al. 2022, `get_2d_sincos_pos_embed`), under which the class token's position term is
MAE's zero row, i.e. nothing. With learned embeddings and a class token the class token also gets
its own learned position term `cls_pos_embedding` [1, 1, D]: functionally a re-parametrization of
`cls`, kept so the parameter layout (and count: ViT-S/16 22,050,664, ViT-B/16 86,567,656 with a
1000-way head) is the original ViT's / DeiT's / timm's, whose table has 1 + h*w rows with the class
token's first: row 0 maps to `cls_pos_embedding`, the rest to `pos_embedding`.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

# Reference: big_vision's decode_variant (Table 2 of Zhai et al. 2022, "Scaling Vision Transformers").
VIT_VARIANTS = {
    "Ti": dict(width=192, depth=12, num_heads=3, mlp_dim=768),
    "S": dict(width=384, depth=12, num_heads=6, mlp_dim=1536),
    "B": dict(width=768, depth=12, num_heads=12, mlp_dim=3072),
    "L": dict(width=1024, depth=24, num_heads=16, mlp_dim=4096),
}

_LN_EPS = 1e-6


def sincos_2d_posemb(h: int, w: int, dim: int) -> np.ndarray:
  """MAE's fixed 2-D sine-cosine position embedding (He et al. 2022), float32 [h*w, dim].

  Row `i * w + j` is patch (row i, column j), the row-major order of the flattened patch grid.
  The first dim/2 channels encode the column j, the last dim/2 the row i (MAE meshes (w, h) with w
  first); each half is [sin(pos * omega), cos(pos * omega)] with omega_k = 1 / 10000**(k / (dim/4)),
  k = 0 .. dim/4 - 1. No row for a class token.

  >>> pe = sincos_2d_posemb(2, 3, 8)
  >>> pe.shape, pe.dtype
  ((6, 8), dtype('float32'))
  >>> pe[0].tolist()  # position (0, 0): sin 0 = 0, cos 0 = 1
  [0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0]
  """
  if dim % 4:
    raise ValueError(f"sincos2d position embedding needs a width divisible by 4, got {dim}")
  cols, rows = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))  # [h, w] each

  def one_axis(pos):
    omega = 1.0 / 10000.0**(np.arange(dim // 4, dtype=np.float64) / (dim // 4))
    angles = pos.reshape(-1)[:, None] * omega[None, :]
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)

  return np.concatenate([one_axis(cols), one_axis(rows)], axis=1).astype(np.float32)


def _as_hw(hw) -> tuple[int, int]:
  return (int(hw), int(hw)) if np.ndim(hw) == 0 else (int(hw[0]), int(hw[1]))


def interpolate_posemb(posemb, new_hw, *, old_hw=None):
  """Resamples a patch position-embedding table to another grid ("high-res fine-tuning").

  As big_vision's `resample_posemb`: the table is viewed as an image [h, w, D] and resized bilinearly
  (here with `jax.image.resize`: half-pixel centres, as DeiT's/MAE's `interpolate_pos_embed`, and no
  antialiasing, so downsampling is plain linear interpolation too). Differentiable and jittable.

  Args:
    posemb: [1, h*w, D] or [h*w, D], patch tokens only (no class-token row).
    new_hw: the new grid, an int (square) or (h', w').
    old_hw: the table's grid; inferred as square when None.

  Returns:
    The table at the new grid, [1, h'*w', D] or [h'*w', D] as the input; the input itself when the
    grid is unchanged.
  """
  squeeze = posemb.ndim == 2
  table = posemb[None] if squeeze else posemb
  length, dim = table.shape[1], table.shape[2]
  if old_hw is None:
    side = math.isqrt(length)
    if side * side != length:
      raise ValueError(f"can't infer the grid of a {length}-token position embedding; pass old_hw")
    old_hw = (side, side)
  old_h, old_w = _as_hw(old_hw)
  new_h, new_w = _as_hw(new_hw)
  if old_h * old_w != length:
    raise ValueError(f"old_hw {(old_h, old_w)} doesn't match a {length}-token position embedding")
  if (old_h, old_w) == (new_h, new_w):
    return posemb
  grid = table.reshape(table.shape[0], old_h, old_w, dim)
  grid = jax.image.resize(grid, (table.shape[0], new_h, new_w, dim), method="bilinear", antialias=False)
  out = grid.reshape(table.shape[0], new_h * new_w, dim).astype(posemb.dtype)
  return out[0] if squeeze else out


class MlpBlock(nn.Module):
  """Dense(mlp_dim) -> exact GELU -> dropout -> Dense(D), on [N, L, D]."""

  mlp_dim: int
  dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, *, deterministic: bool):
    inits = dict(kernel_init=nn.initializers.xavier_uniform(), bias_init=nn.initializers.normal(stddev=1e-6))
    d = x.shape[-1]
    x = nn.Dense(self.mlp_dim, dtype=self.dtype, **inits)(x)
    # The paper's (and big_vision's / timm's) GELU is the erf form; flax defaults to the tanh approximation.
    x = nn.gelu(x, approximate=False)
    x = nn.Dropout(rate=self.dropout)(x, deterministic)
    return nn.Dense(d, dtype=self.dtype, **inits)(x)


class Encoder1DBlock(nn.Module):
  """Pre-LN transformer block: x + MHSA(LN(x)), then x + MLP(LN(x)), on [N, L, D]."""

  mlp_dim: int
  num_heads: int
  dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, *, deterministic: bool):
    y = nn.LayerNorm(epsilon=_LN_EPS, dtype=self.dtype)(x)
    y = nn.MultiHeadDotProductAttention(num_heads=self.num_heads, kernel_init=nn.initializers.xavier_uniform(),
                                        dtype=self.dtype, deterministic=deterministic)(y, y)
    x = x + nn.Dropout(rate=self.dropout)(y, deterministic)
    y = nn.LayerNorm(epsilon=_LN_EPS, dtype=self.dtype)(x)
    y = MlpBlock(mlp_dim=self.mlp_dim, dropout=self.dropout, dtype=self.dtype)(y, deterministic=deterministic)
    return x + nn.Dropout(rate=self.dropout)(y, deterministic)


class Encoder(nn.Module):
  """`depth` blocks then the final LayerNorm. Returns (normed tokens, [each block's output])."""

  depth: int
  mlp_dim: int
  num_heads: int
  dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, *, deterministic: bool):
    outputs = []
    for i in range(self.depth):
      x = Encoder1DBlock(self.mlp_dim, self.num_heads, self.dropout, self.dtype,
                         name=f"encoderblock_{i}")(x, deterministic=deterministic)
      outputs.append(x)
    return nn.LayerNorm(epsilon=_LN_EPS, dtype=self.dtype, name="encoder_norm")(x), outputs


class ViT(nn.Module):
  """Vision Transformer trunk returning pooled features [N, D] (float32), D = `width`.

  Attributes:
    width: token dimension D.
    depth: number of transformer blocks.
    num_heads: attention heads (must divide `width`).
    mlp_dim: hidden size of each block's MLP; None means 4 * width.
    patch_size: side p of the square, non-overlapping patches; H and W must be multiples of p.
    pool: "cls" (the class token's final state) or "gap" (mean of the final patch tokens; no class token).
    posemb: "learn" (parameters) or "sincos2d" (MAE's fixed table, computed for every input grid).
    num_classes: 0 for the backbone; otherwise a Dense head (zero-initialized kernel) on the pooled
      feature and `__call__` returns its logits [N, num_classes].
    dropout: rate after the embeddings, the attention, inside and after each MLP; active only with
      `train=True` (then a "dropout" rng is needed).
    dtype: computation dtype (parameters stay float32; outputs are float32).

  The learned position table takes its grid from the input seen at `init`, so no image size is
  configured. Applied to a grid with another number of patches it is resampled on the fly with
  `interpolate_posemb` (DINO's `interpolate_pos_encoding`, e.g. for multi-crop's small crops); that
  needs a square grid at init (else resample the table explicitly), and a table with h*w rows is
  used as it is.

  Besides `__call__`, the token-level steps are methods for `module.apply(variables, ..., method=...)`:
  `embed_patches` (image -> patch tokens with positions), `encode` (any subset of patch tokens ->
  encoded tokens) and `pool_tokens`; for `num_classes=0`,
  `__call__(x) == pool_tokens(encode(embed_patches(x)))`.

  >>> model = ViT(width=16, depth=1, num_heads=2, patch_size=4)
  >>> x = jnp.zeros((2, 8, 8, 3))
  >>> variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))  # shapes only
  >>> jax.eval_shape(lambda v: model.apply(v, x, train=False), variables).shape
  (2, 16)
  >>> jax.eval_shape(lambda v: model.apply(v, x, train=False, return_map=True), variables).shape
  (2, 2, 2, 16)
  >>> sorted(variables["params"])
  ['Transformer', 'cls', 'cls_pos_embedding', 'embedding', 'pos_embedding']
  """

  width: int = 768
  depth: int = 12
  num_heads: int = 12
  mlp_dim: int | None = None
  patch_size: int = 16
  pool: str = "cls"
  posemb: str = "learn"
  num_classes: int = 0
  dropout: float = 0.0
  dtype: Any = jnp.float32

  @property
  def num_features(self) -> int:
    return self.width

  @property
  def _num_extra_tokens(self) -> int:
    return 1 if self.pool == "cls" else 0

  def __post_init__(self):
    # At construction, so that a bad config fails where it is built, not at the first trace.
    if self.pool not in ("cls", "gap"):
      raise ValueError(f"ViT pool must be 'cls' or 'gap', got {self.pool!r}")
    if self.posemb not in ("learn", "sincos2d"):
      raise ValueError(f"ViT posemb must be 'learn' or 'sincos2d', got {self.posemb!r}")
    if self.width % self.num_heads:
      raise ValueError(f"ViT width {self.width} is not divisible by num_heads {self.num_heads}")
    super().__post_init__()

  def setup(self):
    p = self.patch_size
    self.embedding = nn.Conv(self.width, (p, p), strides=(p, p), padding="VALID", dtype=self.dtype,
                             name="embedding")
    if self.pool == "cls":
      self.cls = self.param("cls", nn.initializers.zeros, (1, 1, self.width))
      if self.posemb == "learn":
        self.cls_pos_embedding = self.param("cls_pos_embedding", self._posemb_init(), (1, 1, self.width))
    self.embed_dropout = nn.Dropout(rate=self.dropout)
    self.encoder = Encoder(self.depth, self.mlp_dim or 4 * self.width, self.num_heads, self.dropout, self.dtype,
                           name="Transformer")
    if self.num_classes:
      self.head = nn.Dense(self.num_classes, kernel_init=nn.initializers.zeros, dtype=self.dtype, name="head")

  def _posemb_init(self):
    return nn.initializers.normal(stddev=1 / np.sqrt(self.width))

  @nn.compact
  def embed_patches(self, x):
    """Images [N, H, W, C] -> patch tokens [N, h*w, D] (row-major grid, h = H/p) plus positions; no class token."""
    n, height, width, _ = x.shape
    p = self.patch_size
    if height % p or width % p:
      raise ValueError(f"ViT input {height}x{width} is not a multiple of patch_size {p}")
    tokens = self.embedding(jnp.asarray(x, self.dtype))
    _, h, w, d = tokens.shape
    tokens = tokens.reshape(n, h * w, d)
    if self.posemb == "sincos2d":
      pe = jnp.asarray(sincos_2d_posemb(h, w, d))[None]
    elif self.has_variable("params", "pos_embedding"):
      # Read directly rather than through self.param: its shape check would refuse another grid.
      pe = self.get_variable("params", "pos_embedding")
      if pe.shape[1] != h * w:
        pe = interpolate_posemb(pe, (h, w))
    else:
      pe = self.param("pos_embedding", self._posemb_init(), (1, h * w, d))
    return tokens + pe.astype(tokens.dtype)

  def _encode(self, tokens, train: bool):
    if self.pool == "cls":
      cls = self.cls + self.cls_pos_embedding if self.posemb == "learn" else self.cls
      cls = jnp.broadcast_to(cls.astype(tokens.dtype), (tokens.shape[0], 1, tokens.shape[2]))
      tokens = jnp.concatenate([cls, tokens], axis=1)
    tokens = self.embed_dropout(tokens, deterministic=not train)
    return self.encoder(tokens, deterministic=not train)

  def encode(self, tokens, *, train: bool):
    """Patch tokens [N, L, D] (any subset or order, positions already added) -> [N, L + 1, D] with the
    class token first (pool="cls") or [N, L, D] (pool="gap"), after the blocks and the final LayerNorm."""
    return self._encode(tokens, train)[0]

  def pool_tokens(self, tokens):
    """Encoded tokens from `encode` -> [N, D] float32: the class token (pool="cls") or the token mean."""
    pooled = tokens[:, 0] if self.pool == "cls" else jnp.mean(tokens, axis=1)
    return pooled.astype(jnp.float32)

  def __call__(self, x, *, train: bool, return_map: bool = False, return_blocks: bool = False):
    """Images [N, H, W, C] -> pooled features [N, D] float32 (logits [N, num_classes] with a head).

    `return_map=True`: the final normed patch tokens as a map [N, H/p, W/p, D] (class token dropped).
    `return_blocks=True`: {"block1": ..., f"block{depth}": ...}, each block's output (before the final
    LayerNorm) averaged over the patch tokens, [N, D] float32. `return_blocks` wins over `return_map`.
    """
    n, height, width, _ = x.shape
    h, w = height // self.patch_size, width // self.patch_size
    encoded, outputs = self._encode(self.embed_patches(x), train)
    k = self._num_extra_tokens
    if return_blocks:
      return {f"block{i + 1}": jnp.mean(o[:, k:], axis=1).astype(jnp.float32) for i, o in enumerate(outputs)}
    if return_map:
      return encoded[:, k:].reshape(n, h, w, -1).astype(jnp.float32)
    pooled = self.pool_tokens(encoded)
    if self.num_classes:
      return self.head(pooled).astype(jnp.float32)
    return pooled


def vit_from_variant(variant: str, **kw) -> ViT:
  """A ViT from a name like "S/16" (size Ti, S, B or L; "/p" sets patch_size). Keywords win over the variant."""
  size, _, patch = variant.partition("/")
  if size not in VIT_VARIANTS:
    raise ValueError(f"unknown ViT variant {variant!r}; sizes: {', '.join(VIT_VARIANTS)} (e.g. 'S/16')")
  config = dict(VIT_VARIANTS[size])
  if patch:
    if not patch.isdigit():
      raise ValueError(f"ViT variant {variant!r}: the patch size after '/' must be an integer")
    config["patch_size"] = int(patch)
  return ViT(**{**config, **kw})


def vit_ti(patch_size: int = 16, **kw) -> ViT:
  return ViT(**VIT_VARIANTS["Ti"], patch_size=patch_size, **kw)


def vit_s(patch_size: int = 16, **kw) -> ViT:
  return ViT(**VIT_VARIANTS["S"], patch_size=patch_size, **kw)


def vit_b(patch_size: int = 16, **kw) -> ViT:
  return ViT(**VIT_VARIANTS["B"], patch_size=patch_size, **kw)


def vit_l(patch_size: int = 16, **kw) -> ViT:
  return ViT(**VIT_VARIANTS["L"], patch_size=patch_size, **kw)
