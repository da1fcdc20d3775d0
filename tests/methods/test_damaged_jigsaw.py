"""Damaged Jigsaw: the damaged puzzle against Jigsaw's tiles and skimage's Lab, the staged
schedule, the three losses' wiring (the blank tile carries no colour loss), held-out terms,
evaluation view and the puzzle picture."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow as tf
from skimage import color

from jax_ssl import losses
from jax_ssl.data import ops
from jax_ssl.methods import DamagedJigsaw
from jax_ssl.methods.damaged_jigsaw import assemble_tiles
from tests.helpers import batches, toy_source
from tests.methods._steps import ConvNet

GEOMETRY = dict(resize=32, crop=30, grid=3, tile=8)


def tiny(**kw):
  return DamagedJigsaw(backbone=ConvNet((8, 8)), num_permutations=12, embed_dim=16, head_hidden_dims=(16,),
                       color_width=8, decoder_width=8, eval_size=16, min_prior_images=4, **{**GEOMETRY, **kw})


def _image(seed=0, size=40):
  return tf.constant(np.random.default_rng(seed).integers(0, 256, (size, size + 7, 3), dtype=np.uint8))


def test_damaged_puzzle_is_jigsaws_puzzle_with_one_tile_blank_and_no_colour():
  perms = ops.hamming_permutations(12)
  image = ops.to_float(_image())
  seed = tf.constant([3, 4], tf.int64)
  out = ops.damaged_jigsaw_puzzle(image, seed, perms, return_rgb=True, **GEOMETRY)
  # The same tiles and permutation as Jigsaw's op on the same split of the seed, colour kept.
  s_puzzle, _ = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
  ref = ops.jigsaw_tiles(image, s_puzzle, perms, gray_p=0.0, channel_jitter=0, normalize_tiles=False, **GEOMETRY)
  np.testing.assert_array_equal(out["rgb"].numpy(), ref["tiles"].numpy())
  assert int(out["label"]) == int(ref["label"])
  m = int(out["missing"])
  rgb = ref["tiles"].numpy().astype(np.float64)
  np.testing.assert_allclose(out["target"].numpy(), rgb[m] * 2 - 1, atol=1e-6)
  tiles, ab = out["tiles"].numpy(), out["ab"].numpy()
  assert tiles.shape == (9, 8, 8, 3) and ab.shape == (9, 2, 2, 2)
  assert np.all(tiles[m] == 0) and np.all(ab[m] == 0)
  lab = color.rgb2lab(rgb)  # [9, 8, 8, 3], independently of the library's conversion
  for i in set(range(9)) - {m}:
    np.testing.assert_allclose(ab[i], lab[i, ::4, ::4, 1:], atol=2e-2)
    # No colour reaches the network: three equal channels, the standardized grey of the tile's L.
    np.testing.assert_allclose(tiles[i][..., 0], tiles[i][..., 2], atol=1e-5)
    gray = color.lab2rgb(np.concatenate([lab[i, ..., :1], np.zeros_like(lab[i, ..., 1:])], -1))[..., 0]
    want = (gray - gray.mean()) / gray.std()
    np.testing.assert_allclose(tiles[i][..., 0], want, atol=2e-3)
  missing = {int(ops.damaged_jigsaw_puzzle(image, tf.constant([s, 1], tf.int64), perms, **GEOMETRY)["missing"])
             for s in range(60)}
  assert missing == set(range(9))
  with pytest.raises(ValueError, match="not a multiple of ab_stride"):
    ops.damaged_jigsaw_puzzle(image, seed, perms, resize=32, crop=30, tile=6)


def test_stages_switch_the_losses_on_and_the_blank_tile_has_no_colour_loss():
  method = tiny(weights=dict(inpaint=3.0))
  src = method.prepare_source(toy_source(n=32, size=32))
  method.set_schedule(steps_per_epoch=3, total_steps=30)  # color and inpaint start at round(30 / 3) = 10
  b = {k: jnp.asarray(v) for k, v in batches(method, src, 8, 1)[0].items()}
  params, state = jax.jit(method.init)(jax.random.key(0), b)
  out, terms = jax.jit(lambda p: (o := method._apply(p, state, b["tiles"], train=True)[0],
                                  method.task_losses(o, b, state["class_weights"])))(params)
  loss_at = jax.jit(lambda p, step: method.loss(p, state, b, None, step))  # one compilation, step traced
  grad_at = jax.jit(jax.grad(lambda p, step: method.loss(p, state, b, None, step)[0]))
  loss0, (_, m0) = loss_at(params, 9)
  loss1, (_, m1) = loss_at(params, 10)
  np.testing.assert_allclose(float(loss0), float(terms["jigsaw"]), rtol=1e-5)
  np.testing.assert_allclose(float(loss1), float(terms["jigsaw"] + terms["color"] + 3.0 * terms["inpaint"]), rtol=1e-5)
  assert float(m0["tasks_on"]) == 1 and float(m1["tasks_on"]) == 3
  g0, g1 = grad_at(params, 9), grad_at(params, 10)
  for head in ("color_head", "inpaint_head"):
    assert all(float(jnp.abs(x).max()) == 0 for x in jax.tree.leaves(g0[head])), head
    assert max(float(jnp.abs(x).max()) for x in jax.tree.leaves(g1[head])) > 0, head
  # The colour loss ignores whatever is predicted for the blank tile (its targets are zero).
  rows = np.arange(8)
  changed = out["color"].at[rows, b["missing"]].add(jax.random.normal(jax.random.key(1), out["color"].shape[2:]))
  color_loss = jax.jit(lambda c: method._color_loss(c, b["ab"], state["class_weights"]))
  np.testing.assert_allclose(float(color_loss(changed)), float(terms["color"]), rtol=1e-6)
  flat = lambda x: x.reshape((-1,) + x.shape[2:])  # noqa: E731
  np.testing.assert_allclose(float(terms["color"]), float(jax.jit(losses.colorization_loss)(
      flat(out["color"]), flat(b["ab"]), jnp.asarray(method.color.bins), state["class_weights"])), rtol=1e-6)
  with pytest.raises(ValueError, match="unknown tasks"):
    tiny(weights=dict(rotation=1.0))
  with pytest.raises(ValueError, match="fractions of the run"):
    tiny(stage_starts=dict(color=1.0))


def test_heldout_terms_eval_view_and_picture(tmp_path):
  method = tiny()
  src = method.prepare_source(toy_source(n=32, size=32))
  assert method.color.prior is not None  # the colour prior of the training images
  method.set_schedule(steps_per_epoch=2, total_steps=2)  # (training steps: the contract suite)
  bs = batches(method, src, 8, 1)
  b = {k: jnp.asarray(v) for k, v in bs[0].items()}
  params, state = jax.jit(method.init)(jax.random.key(0), b)
  np.testing.assert_array_equal(state["prior"], method.color.prior.astype(np.float32))  # kept in the state
  terms = jax.jit(method.heldout_terms)(params, state, b)
  assert set(terms) == {"jigsaw_top1", "hole_mse", "mean_fill_mse", "color_ce", "prior_ce"}
  assert float(terms["jigsaw_top1"][1]) == 8 and 0 <= float(terms["jigsaw_top1"][0]) <= 800
  fill = np.broadcast_to(method.fill, bs[0]["target"].shape)
  want = np.sum(((fill - bs[0]["target"]) / 2.0) ** 2)
  np.testing.assert_allclose(float(terms["mean_fill_mse"][0]), want, rtol=1e-5)
  view = method.eval_preprocess(tf.constant(src.images[0])).numpy()
  assert view.shape == (16, 16, 3)
  np.testing.assert_allclose(view[..., 0], view[..., 1], atol=1e-5)
  np.testing.assert_allclose(view.mean(axis=(0, 1)), 0.0, atol=1e-4)
  assert method.embed(params, state, view[None]).shape == (1, 8)
  (path,) = method.write_artifacts(str(tmp_path), params=params, state=state, source=src)
  assert os.path.getsize(path) > 0


def test_assemble_tiles_lays_them_out_in_raster_order():
  tiles = np.arange(9, dtype=np.float32)[None, :, None, None, None] * np.ones((1, 9, 2, 2, 3), np.float32)
  out = assemble_tiles(tiles, grid=3, gap=1)
  assert out.shape == (1, 8, 8, 3)
  assert out[0, 0, 0, 0] == 0 and out[0, 0, 3, 0] == 1 and out[0, 3, 0, 0] == 3 and out[0, 7, 7, 0] == 8
  assert out[0, 2, 0, 0] == 1.0 and out[0, 0, 2, 0] == 1.0  # white gaps
