"""ViT: MAE's sin-cos table, the standard parameter counts, and the layer-by-layer computation."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_ssl.models import VIT_VARIANTS, ViT, interpolate_posemb, sincos_2d_posemb, vit_b, vit_from_variant, vit_s

TINY = dict(width=16, depth=2, num_heads=2, patch_size=4)


def _images(shape, seed=0):
  return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _init(model, x, seed=0):
  """Random parameters for `model` at input `x`: shapes from `eval_shape`, values from NumPy.

  Cheaper than `model.init` (whose every initializer and shape is a compile on CPU), and unlike the
  zero-initialized class token and biases they let every parameter show up in the outputs.
  """
  shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)
  rng = np.random.default_rng(seed)

  def fill(path, s):
    base = 1.0 if jax.tree_util.keystr(path).endswith("['scale']") else 0.0
    return jnp.asarray(base + 0.3 * rng.standard_normal(s.shape), jnp.float32)

  return jax.tree_util.tree_map_with_path(fill, shapes)


def _mae_sincos(h, w, dim):
  """MAE's get_2d_sincos_pos_embed with (h, w) grid, written as loops in float64 from the formula."""
  out = np.zeros((h * w, dim))
  quarter = dim // 4
  for i in range(h):
    for j in range(w):
      for half, pos in enumerate((j, i)):  # meshgrid(arange(w), arange(h)): the column comes first
        for k in range(quarter):
          omega = 1.0 / 10000.0**(k / quarter)
          out[i * w + j, half * dim // 2 + k] = math.sin(pos * omega)
          out[i * w + j, half * dim // 2 + quarter + k] = math.cos(pos * omega)
  return out


@pytest.mark.parametrize("h,w,dim", [(3, 5, 8), (14, 14, 384)])
def test_sincos_matches_mae_formula(h, w, dim):
  pe = sincos_2d_posemb(h, w, dim)
  assert pe.shape == (h * w, dim) and pe.dtype == np.float32
  np.testing.assert_allclose(pe, _mae_sincos(h, w, dim), rtol=0, atol=1e-6)
  with pytest.raises(ValueError, match="divisible by 4"):
    sincos_2d_posemb(h, w, dim + 2)


def _num_params(model, size=224):
  x = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
  shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)
  return sum(math.prod(p.shape) for p in jax.tree.leaves(shapes["params"]))


@pytest.mark.parametrize("make,variant,expected", [(vit_s, "S/16", 22_050_664), (vit_b, "B/16", 86_567_656)])
def test_standard_parameter_counts(make, variant, expected):
  # The reference counts (timm / DeiT, 1000-way head) include one position row for the class token.
  assert _num_params(make(pool="cls", posemb="learn", num_classes=1000)) == expected
  assert vit_from_variant(variant, num_classes=1000) == make(num_classes=1000)


def _patchify_embed(params, x, p):
  n, hh, ww, c = x.shape
  patches = x.reshape(n, hh // p, p, ww // p, p, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, -1, p * p * c)
  kernel = params["embedding"]["kernel"]
  return patches @ kernel.reshape(-1, kernel.shape[-1]) + params["embedding"]["bias"]


def test_patch_embedding_is_patchify_then_matmul_plus_positions():
  model = ViT(**TINY)
  x = _images((2, 8, 12, 3))  # a 2x3 grid, so a transposed grid would not fit
  v = _init(model, x)
  tokens = model.apply(v, x, method=ViT.embed_patches)
  assert tokens.shape == (2, 6, 16) and v["params"]["pos_embedding"].shape == (1, 6, 16)
  expected = _patchify_embed(v["params"], x, 4) + v["params"]["pos_embedding"]
  np.testing.assert_allclose(tokens, expected, rtol=1e-5, atol=1e-5)


def _layer_norm(x, p):
  mu = x.mean(-1, keepdims=True)
  var = ((x - mu)**2).mean(-1, keepdims=True)
  return (x - mu) / np.sqrt(var + 1e-6) * p["scale"] + p["bias"]


def _reference_encode(params, tokens, gelu):
  """float64 NumPy pre-LN ViT encoder with a class token: what `encode` should compute."""
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
  n = tokens.shape[0]
  cls = np.broadcast_to(p["cls"] + p["cls_pos_embedding"], (n, 1, tokens.shape[2]))
  x = np.concatenate([cls, np.asarray(tokens, np.float64)], axis=1)
  blocks = p["Transformer"]
  for i in range(sum(name.startswith("encoderblock_") for name in blocks)):
    b = blocks[f"encoderblock_{i}"]
    y = _layer_norm(x, b["LayerNorm_0"])
    att = b["MultiHeadDotProductAttention_0"]
    q, k, val = (np.einsum("nld,dhk->nlhk", y, att[s]["kernel"]) + att[s]["bias"] for s in ("query", "key", "value"))
    logits = np.einsum("nqhk,nshk->nhqs", q, k) / np.sqrt(q.shape[-1])
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    o = np.einsum("nhqs,nshk->nqhk", weights, val)
    x = x + np.einsum("nqhk,hkd->nqd", o, att["out"]["kernel"]) + att["out"]["bias"]
    y = _layer_norm(x, b["LayerNorm_1"])
    mlp = b["MlpBlock_0"]
    y = gelu(y @ mlp["Dense_0"]["kernel"] + mlp["Dense_0"]["bias"])
    x = x + y @ mlp["Dense_1"]["kernel"] + mlp["Dense_1"]["bias"]
  return _layer_norm(x, blocks["encoder_norm"])


def _gelu_erf(x):
  return 0.5 * x * (1 + np.vectorize(math.erf)(x / np.sqrt(2)))


def _gelu_tanh(x):
  return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


def test_token_interface_and_reference_encoder_on_a_token_subset():
  model = ViT(**TINY)
  x = _images((2, 16, 16, 3))  # 16 patch tokens
  v = _init(model, x)
  tokens = model.apply(v, x, method=ViT.embed_patches)
  encoded = model.apply(v, tokens, train=False, method=ViT.encode)
  assert encoded.shape == (2, 17, 16)
  np.testing.assert_allclose(model.apply(v, encoded, method=ViT.pool_tokens), model.apply(v, x, train=False),
                             rtol=1e-6, atol=1e-6)

  # MAE's encoder: a random 25% of the patch tokens per example.
  keep = jnp.argsort(jax.random.uniform(jax.random.key(2), (2, 16)), axis=1)[:, :4]
  visible = jnp.take_along_axis(tokens, keep[..., None], axis=1)
  out = model.apply(v, visible, train=False, method=ViT.encode)
  assert out.shape == (2, 5, 16)
  reference = _reference_encode(v["params"], visible, _gelu_erf)
  np.testing.assert_allclose(out, reference, rtol=1e-5, atol=1e-5)
  # The tolerance tells the exact GELU from the tanh approximation flax uses by default (~5e-4 apart here).
  assert np.abs(_reference_encode(v["params"], visible, _gelu_tanh) - reference).max() > 1e-4


def test_gap_pools_the_token_mean_and_has_no_class_token():
  model = ViT(**TINY, pool="gap")
  x = _images((2, 8, 12, 3))
  v = _init(model, x)
  assert "cls" not in v["params"] and "cls_pos_embedding" not in v["params"]
  tokens = model.apply(v, x, method=ViT.embed_patches)
  encoded = model.apply(v, tokens, train=False, method=ViT.encode)
  assert encoded.shape == (2, 6, 16)
  np.testing.assert_allclose(model.apply(v, x, train=False), encoded.mean(1), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("pool", ["cls", "gap"])
def test_map_and_block_outputs(pool):
  model = ViT(**TINY, pool=pool)
  x = _images((2, 8, 12, 3))
  v = _init(model, x)
  fmap = model.apply(v, x, train=False, return_map=True)
  assert fmap.shape == (2, 2, 3, 16) and fmap.dtype == jnp.float32
  encoded = model.apply(v, model.apply(v, x, method=ViT.embed_patches), train=False, method=ViT.encode)
  np.testing.assert_allclose(fmap.reshape(2, 6, 16), encoded[:, 1:] if pool == "cls" else encoded, atol=1e-6)
  blocks = model.apply(v, x, train=False, return_blocks=True)
  assert list(blocks) == ["block1", "block2"]
  assert all(b.shape == (2, 16) and b.dtype == jnp.float32 for b in blocks.values())
  assert model.num_features == 16


def test_interpolate_posemb():
  pe = _images((1, 4, 3))
  table = pe[0]
  assert interpolate_posemb(pe, 2) is pe and interpolate_posemb(table, (2, 2)) is table
  # Bilinear, half-pixel centres: [a, b] -> [a, 3a/4 + b/4, a/4 + 3b/4, b] along each axis.
  w = np.array([[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]])
  grid = np.asarray(pe[0]).reshape(2, 2, 3)
  expected = np.einsum("ia,jb,abd->ijd", w, w, grid).reshape(1, 16, 3)
  np.testing.assert_allclose(interpolate_posemb(pe, (4, 4)), expected, rtol=1e-5, atol=1e-6)
  assert interpolate_posemb(pe[0], 4).shape == (16, 3)
  assert interpolate_posemb(_images((1, 6, 3)), (4, 6), old_hw=(2, 3)).shape == (1, 24, 3)
  with pytest.raises(ValueError, match="old_hw"):
    interpolate_posemb(_images((1, 6, 3)), 4)


def test_learned_posemb_is_resampled_for_another_grid():
  model = ViT(**TINY)
  v = _init(model, _images((1, 8, 8, 3)))  # a 2x2 table
  x = _images((2, 16, 16, 3), seed=3)
  tokens = model.apply(v, x, method=ViT.embed_patches)
  expected = _patchify_embed(v["params"], x, 4) + interpolate_posemb(v["params"]["pos_embedding"], 4)
  np.testing.assert_allclose(tokens, expected, rtol=1e-5, atol=1e-5)
  assert model.apply(v, x, train=False).shape == (2, 16)


def test_sincos_has_no_position_parameters():
  model = ViT(**TINY, posemb="sincos2d")
  x = _images((2, 8, 12, 3))
  v = _init(model, x)
  assert "pos_embedding" not in v["params"] and "cls_pos_embedding" not in v["params"] and "cls" in v["params"]
  tokens = model.apply(v, x, method=ViT.embed_patches)
  np.testing.assert_allclose(tokens, _patchify_embed(v["params"], x, 4) + sincos_2d_posemb(2, 3, 16),
                             rtol=1e-5, atol=1e-5)


def test_dropout_only_in_training_and_bfloat16_outputs_float32():
  model = ViT(**TINY, dropout=0.5)
  x = _images((2, 8, 12, 3))
  v = _init(model, x)
  evaluated = model.apply(v, x, train=False)
  np.testing.assert_allclose(evaluated, ViT(**TINY).apply(v, x, train=False), rtol=1e-6, atol=1e-6)
  rngs = lambda s: {"dropout": jax.random.key(s)}
  assert not np.allclose(model.apply(v, x, train=True, rngs=rngs(0)), model.apply(v, x, train=True, rngs=rngs(1)))
  half = ViT(**TINY, dtype=jnp.bfloat16)
  out = jax.jit(functools.partial(half.apply, train=False))(v, x)  # one compile, not one per bfloat16 op
  assert out.dtype == jnp.float32
  np.testing.assert_allclose(out, evaluated, atol=0.1)


def test_variants_and_bad_arguments():
  assert vit_from_variant("L/14") == ViT(**VIT_VARIANTS["L"], patch_size=14)
  assert vit_from_variant("Ti/16", pool="gap").pool == "gap"
  assert vit_from_variant("S/16", patch_size=8).patch_size == 8  # keywords win
  with pytest.raises(ValueError, match="variant"):
    vit_from_variant("XL/16")
  with pytest.raises(ValueError, match="patch size"):
    vit_from_variant("S/x")
  for kw, match in [(dict(pool="map"), "pool"), (dict(posemb="rope"), "posemb"), (dict(num_heads=3), "num_heads")]:
    with pytest.raises(ValueError, match=match):
      ViT(**{**TINY, **kw})
  with pytest.raises(ValueError, match="multiple of patch_size"):
    _init(ViT(**TINY), jnp.zeros((1, 10, 8, 3)))

