"""DCGAN: the paper's networks and initialization, the two phases' losses, the discriminator
features with BatchNorm statistics recomputed over the training images (checked against the
per-batch moments of the BatchNorm inputs), the trainer storing them in the final checkpoint,
and the sample grid."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jax_ssl import losses, models, train
from jax_ssl.methods import DCGAN
from tests.helpers import batches, toy_source


def tiny(**kw):
  return DCGAN(**{"backbone": models.build_backbone("dcgan", widths=(8, 16)), "image_size": 16, "generator_width": 8,
                  **kw})


def _setup(method, n=32):
  src = toy_source(n=n, size=16)
  b = jax.tree.map(jnp.asarray, batches(method, src, 16, 1)[0])
  params, state = jax.jit(method.init)(jax.random.key(0), b)
  return src, b, params, state


def test_networks_and_initialization_follow_the_paper():
  method = tiny()
  _, b, params, state = _setup(method)
  d = params["discriminator"]["backbone"]
  assert set(d) == {"conv0", "conv1", "bn1"}  # no BatchNorm on the first layer, no biases
  assert d["conv0"]["kernel"].shape == (4, 4, 3, 8) and set(d["conv0"]) == {"kernel"}
  assert params["discriminator"]["logit"]["kernel"].shape == (4, 4, 16, 1)  # over the whole 4x4 map
  g = params["generator"]
  assert g["project"]["kernel"].shape == (100, 4 * 4 * 16)  # z -> 4 x 4 x (8 * 2)
  assert g["deconv0"]["kernel"].shape[:2] == (4, 4) and g["deconv1"]["kernel"].shape[-1] == 3
  big = DCGAN(backbone=models.build_backbone("dcgan", widths=(32, 64, 128)), image_size=32, generator_width=32)
  p, s = jax.jit(big.init)(jax.random.key(0), {"image": jnp.zeros((2, 32, 32, 3))})
  kernels = np.concatenate([np.ravel(x) for path, x in jax.tree_util.tree_leaves_with_path(p)
                            if "kernel" in jax.tree_util.keystr(path)])
  assert abs(kernels.std() - 0.02) < 0.001 and abs(kernels.mean()) < 0.001  # N(0, 0.02)
  scale = np.asarray(p["discriminator"]["backbone"]["bn2"]["scale"])
  assert abs(scale.mean() - 1) < 0.01 and 0.01 < scale.std() < 0.03  # N(1, 0.02)
  fake = big.samples(p, s, 4)
  assert fake.shape == (4, 32, 32, 3) and fake.min() >= 0 and fake.max() <= 1
  z = method.sample_z(jax.random.key(1), 1000)
  assert z.shape == (1000, 100) and float(z.min()) >= -1 and float(z.max()) <= 1 and float(z.std()) > 0.5
  with pytest.raises(ValueError, match="4 \\* 2\\^k"):
    tiny(image_size=24)


def test_phases_losses_and_which_statistics_move():
  method = tiny()
  _, b, params, state = _setup(method)
  assert [(p.name, p.key) for p in method.phases()] == [("discriminator", "discriminator"), ("generator", "generator")]
  rng = jax.random.key(3)
  loss, (d_state, metrics) = jax.jit(method.discriminator_loss)(params, state, b, rng, 0)
  fake = method.gen.apply({"params": params["generator"], "batch_stats": state["batch_stats"]["generator"]},
                          method.sample_z(rng, 16), train=True, mutable=["batch_stats"])[0]
  d_vars = {"params": params["discriminator"], "batch_stats": state["batch_stats"]["discriminator"]}
  real_logits, upd = method.disc.apply(d_vars, b["image"], train=True, mutable=["batch_stats"])
  fake_logits = method.disc.apply({**d_vars, **upd}, fake, train=True, mutable=["batch_stats"])[0]
  np.testing.assert_allclose(float(loss), float(losses.gan_discriminator_loss(real_logits, fake_logits)), rtol=1e-5)
  # The discriminator's phase moves its own running statistics, not the generator's, nor the features'.
  assert jax.tree.all(jax.tree.map(np.array_equal, d_state["batch_stats"]["generator"], state["batch_stats"]["generator"]))
  assert not jax.tree.all(jax.tree.map(np.array_equal, d_state["batch_stats"]["discriminator"],
                                       state["batch_stats"]["discriminator"]))
  assert jax.tree.all(jax.tree.map(np.array_equal, d_state["feature_stats"], state["feature_stats"]))
  g_loss, (g_state, _) = jax.jit(method.generator_loss)(params, state, b, rng, 0)
  np.testing.assert_allclose(float(g_loss), float(losses.gan_generator_loss(fake_logits)), rtol=1e-5)
  assert jax.tree.all(jax.tree.map(np.array_equal, g_state["batch_stats"]["discriminator"],
                                   state["batch_stats"]["discriminator"]))


def test_features_use_batchnorm_statistics_recomputed_over_the_training_images():
  method = tiny(calibration_batch=16)
  src, b, params, state = _setup(method, n=32)  # two calibration batches of 16, no padding
  new = method.calibrate(params, state, src)
  # Independently: the BatchNorm layer's input (conv1 after conv0 + LeakyReLU) on each batch of 16
  # evaluation images, its batch mean and (biased) variance, averaged over the two batches.
  images = np.stack([np.asarray(method.eval_preprocess(im)) for im in src.images])
  d = params["discriminator"]["backbone"]
  conv = lambda x, k: jax.lax.conv_general_dilated(x, k, (2, 2), ((1, 1), (1, 1)),  # noqa: E731
                                                   dimension_numbers=("NHWC", "HWIO", "NHWC"))
  moments = []
  for chunk in (images[:16], images[16:]):
    h = np.asarray(conv(jax.nn.leaky_relu(conv(chunk, d["conv0"]["kernel"]), 0.2), d["conv1"]["kernel"]), np.float64)
    moments.append((h.mean(axis=(0, 1, 2)), h.var(axis=(0, 1, 2))))
  stats = new["feature_stats"]["backbone"]["bn1"]
  np.testing.assert_allclose(np.asarray(stats["mean"]), np.mean([m[0] for m in moments], 0), rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(np.asarray(stats["var"]), np.mean([m[1] for m in moments], 0), rtol=1e-4, atol=1e-6)
  # The features read those statistics; the exported backbone carries them.
  f_old, f_new = method.embed(params, state, b["image"]), method.embed(params, new, b["image"])
  assert f_new.shape == (16, 16 * (8 + 16)) and not np.allclose(f_old, f_new)
  variables = method.backbone_variables(params, new)
  np.testing.assert_allclose(np.asarray(method.disc.backbone.apply(variables, b["image"], train=False)),
                             np.asarray(f_new), rtol=1e-5, atol=1e-6)


def test_training_stores_the_recomputed_statistics_and_writes_samples(tmp_path):
  method = tiny(calibration_batch=16)
  src = toy_source(n=32, size=16)
  result = train.train(method, src, workdir=str(tmp_path), global_batch=16, total_steps=2,
                       tx=optax.adam(2e-4, b1=0.5), meta={"method": "dcgan"}, progress=False)
  want = method.calibrate(result.state.params, result.state.state, src)["feature_stats"]
  jax.tree.map(lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6),
               result.state.state["feature_stats"], want)
  paths = method.write_artifacts(str(tmp_path), params=result.state.params, state=result.state.state, source=src)
  assert paths == [str(tmp_path / "samples.png")] and (tmp_path / "samples.png").stat().st_size > 500
