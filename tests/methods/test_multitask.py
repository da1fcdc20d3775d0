"""MultiTask: one trunk, several heads, the weighted sum of the tasks' losses."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_ssl import methods, models
from tests.helpers import batches, toy_source


def _tasks():
  return dict(rotnet=dict(image_size=16, pad_crop=2),
              context=dict(patch=6, gap=2, jitter=1, area_range=None, downsample_p=0.0, embed_dim=16,
                           head_hidden_dims=(16,), eval_size=16, eval_crop_fraction=1.0))


def _method(**kw):
  return methods.MultiTask(tasks=_tasks(), backbone=models.build_backbone("convnet", widths=(8, 8)), **kw)


def test_one_trunk_and_each_tasks_gradient_reaches_it():
  method = _method(weights=dict(rotnet=1.0, context=0.0))
  b = jax.tree.map(jnp.asarray, batches(method, toy_source(n=16, size=16), 8, 1)[0])
  params, state = jax.jit(method.init)(jax.random.key(0), b)
  assert set(params) == {"trunk", "tasks"} and set(params["tasks"]) == {"rotnet", "context"}
  assert all("backbone" not in p for p in params["tasks"].values())  # the trunk is stored once
  rot = method.tasks["rotnet"]
  rot_views = {k[len("rotnet/"):]: v for k, v in b.items() if k.startswith("rotnet/")}

  def alone(trunk, head):  # RotNet by itself on the same trunk and the same views
    s = {"batch_stats": {**state["tasks"]["rotnet"]["batch_stats"], "backbone": state["trunk"]}}
    return rot.loss({**head, "backbone": trunk}, s, rot_views, jax.random.key(1), 0)[0]

  g_multi = jax.jit(jax.grad(lambda p: method.loss(p, state, b, jax.random.key(1), 0)[0]))(params)
  g_trunk, g_head = jax.jit(jax.grad(alone, argnums=(0, 1)))(params["trunk"], params["tasks"]["rotnet"])
  for x, y in zip(jax.tree.leaves(g_multi["trunk"]), jax.tree.leaves(g_trunk)):
    np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7)
  for x, y in zip(jax.tree.leaves(g_multi["tasks"]["rotnet"]), jax.tree.leaves(g_head)):
    np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7)
  assert all(float(jnp.abs(g).max()) == 0.0 for g in jax.tree.leaves(g_multi["tasks"]["context"]))
  # With both weights on, the context task's gradient joins the trunk's.
  both = _method()
  g_both = jax.jit(jax.grad(lambda p: both.loss(p, state, b, jax.random.key(1), 0)[0]))(params)
  diff = max(float(jnp.abs(x - y).max()) for x, y in zip(jax.tree.leaves(g_both["trunk"]), jax.tree.leaves(g_trunk)))
  assert diff > 1e-6
  loss, (_, m) = jax.jit(both.loss)(params, state, b, jax.random.key(1), 0)
  np.testing.assert_allclose(float(loss), float(m["rotnet/loss"] + m["context/loss"]), rtol=1e-6)


def test_tasks_that_cannot_share_a_trunk_are_refused():
  bb = models.build_backbone("convnet", widths=(8,))
  with pytest.raises(ValueError, match="overrides 'update_state'"):
    methods.MultiTask(tasks=dict(byol=dict(image_size=16)), backbone=bb)
  with pytest.raises(ValueError, match="unknown task 'nope'"):
    methods.MultiTask(tasks=dict(nope={}), backbone=bb)
  with pytest.raises(ValueError, match="weights for unknown tasks"):
    methods.MultiTask(tasks=dict(rotnet=dict(image_size=16)), weights=dict(jigsaw=1.0), backbone=bb)


def test_colorization_shares_an_rgb_trunk_through_its_grey_input():
  # Colorization with trunk_input="gray" feeds the trunk the achromatic RGB image of L, so it can
  # share RotNet's RGB trunk; its colour prior comes from the shared source and survives a restore.
  mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
  tasks = dict(rotnet=dict(image_size=16, pad_crop=2),
               colorization=dict(image_size=16, decoder_width=8, trunk_input="gray", min_prior_images=4))
  method = methods.MultiTask(tasks=tasks, backbone=models.build_backbone("convnet", widths=(8, 8)), mean=mean, std=std)
  src = method.prepare_source(toy_source(n=16, size=16))
  color = method.tasks["colorization"]
  assert color.prior is not None
  b = jax.tree.map(jnp.asarray, batches(method, src, 8, 1)[0])
  assert b["colorization/l"].shape == (8, 16, 16, 3) and b["rotnet/rotations"].shape[-1] == 3
  x = np.asarray(b["colorization/l"]) * 0.25 + 0.5  # un-normalized: grey, no colour reaches the trunk
  np.testing.assert_allclose(x[..., 0], x[..., 2], atol=1e-6)
  params, state = jax.jit(method.init)(jax.random.key(0), b)
  loss, (new_state, m) = jax.jit(method.loss)(params, state, b, jax.random.key(1), 0)
  np.testing.assert_allclose(float(loss), float(m["rotnet/loss"] + m["colorization/loss"]), rtol=1e-6)
  fresh = methods.MultiTask(tasks=tasks, backbone=models.build_backbone("convnet", widths=(8, 8)), mean=mean, std=std)
  fresh.restored(params, new_state)
  np.testing.assert_allclose(fresh.tasks["colorization"].prior, color.prior, rtol=1e-6)


def test_exemplar_shares_the_trunk_with_one_seed_per_image():
  # Doersch & Zisserman's rotation + exemplar: Exemplar in per-image mode keeps the images as the
  # source (RotNet needs them), class i = the seed of image i.
  tasks = dict(rotnet=dict(image_size=16, pad_crop=2),
               exemplar=dict(patch=8, num_seeds=16, head_hidden_dims=(16,), eval_size=16, per_image=True))
  method = methods.MultiTask(tasks=tasks, backbone=models.build_backbone("convnet", widths=(8, 8)),
                             mean=(0.5,) * 3, std=(0.25,) * 3)
  src = toy_source(n=16, size=16)
  assert method.prepare_source(src) is src
  b = jax.tree.map(jnp.asarray, batches(method, src, 8, 1)[0])
  assert b["exemplar/patch"].shape == (8, 8, 8, 3) and b["rotnet/rotations"].shape[1:] == (4, 16, 16, 3)
  params, state = jax.jit(method.init)(jax.random.key(0), b)
  assert params["tasks"]["exemplar"]["head"]["out"]["kernel"].shape[-1] == 16  # N-way: one class per image
  loss, (_, m) = jax.jit(method.loss)(params, state, b, jax.random.key(1), 0)
  np.testing.assert_allclose(float(loss), float(m["rotnet/loss"] + m["exemplar/loss"]), rtol=1e-6)
