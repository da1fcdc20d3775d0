"""The contract every registered method and every config variant keeps (STYLE rule 16).

For every config file x variant: the config builds its method, backbone and optimizer. For
every registered method (a tiny instance made from its quick config, with a tiny backbone):
two finite train steps, 8 simulated devices equal 1 device holding the global batch (values
and the state after the updates), a checkpoint round trip restores an identical state, and
the evaluation runs. A method registered later is covered as soon as it is in `CONTRACT`
(the first test fails until it is).
"""

import importlib
import json
import os

import jax
import numpy as np
import optax
import pytest

from experiments import runner
from jax_ssl import data, evaluate, methods, parallel, pretrained, train
from tests.helpers import assert_trees_close, batches, once, run_steps, toy_source

# Each method's steps are computed once per worker: all tests of one method run on one worker
# (an xdist group per method, see `ran`), and the methods spread over the workers.

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "experiments", "configs")
CONFIG_NAMES = sorted(f[:-3] for f in os.listdir(CONFIGS) if f.endswith(".py") and not f.startswith("_"))

# method -> (config, variant, method_kwargs overrides that shrink it, toy image side)
_SMALL = dict(proj_hidden_dims=(16,), proj_dim=8)
CONTRACT = {
    "simclr": ("simclr_cifar10", "quick", dict(_SMALL, image_size=16), 16),
    "swav": ("swav_cifar10", "quick", dict(_SMALL, crop_sizes=(16, 8), num_prototypes=12, queue_length=16,
                                           queue_start_epoch=0, freeze_prototypes_epochs=0.5), 16),
    "byol": ("byol_cifar10", "quick", dict(_SMALL, image_size=16, pred_hidden_dims=(16,)), 16),
    "detcon_s": ("detcon_cifar10", "s_quick", dict(_SMALL, image_size=16, grid_size=2, num_samples=4), 16),
    "detcon_b": ("detcon_cifar10", "b_quick", dict(_SMALL, image_size=16, grid_size=2, num_samples=4,
                                                   pred_hidden_dims=(16,)), 16),
    "rotnet": ("rotnet_cifar10", "quick", dict(image_size=16, pad_crop=2), 16),
    "context": ("context_hymenoptera", "cifar", dict(embed_dim=16, head_hidden_dims=(16,)), 32),
    "jigsaw": ("jigsaw_hymenoptera", "quick", dict(resize=72, crop=63, tile=18, embed_dim=16, head_hidden_dims=(16,),
                                                   num_permutations=10, eval_size=32), 80),
    "multitask": ("multitask_cifar10", "quick", dict(tasks=dict(
        rotnet=dict(image_size=16, pad_crop=2),
        context=dict(patch=6, gap=2, jitter=1, area_range=None, downsample_p=0.0, embed_dim=16,
                     head_hidden_dims=(16,), eval_size=16, eval_crop_fraction=1.0))), 16),
    "mae": ("mae_cifar10", "quick", dict(image_size=16, decoder_width=16, decoder_depth=1, decoder_heads=2), 16),
    "deepcluster": ("deepcluster_cifar10", "quick", dict(image_size=16, num_clusters=5, pca_dim=4), 16),
    "deepcluster_v2": ("deepcluster_v2_cifar10", "quick", dict(_SMALL, crop_sizes=(16, 8),
                                                                           num_prototypes=(6, 5)), 16),
    "sela": ("sela_cifar10", "quick", dict(image_size=16, num_heads=2, num_clusters=5), 16),
    "scan": ("scan_cifar10", "quick", dict(image_size=16, num_heads=2, num_clusters=4, num_neighbors=3, cutout=8), 16),
    # Threshold 0: at initialization no prediction is 0.99-confident (the loss would be 0).
    "scan_selflabel": ("scan_cifar10", "selflabel_quick", dict(image_size=16, num_clusters=4, cutout=8,
                                                               threshold=0.0), 16),
    "smog": ("smog_cifar10", "quick", dict(_SMALL, image_size=16, pred_hidden_dims=(16,), num_groups=4,
                                           reset_every=2, bank_size=48), 16),
    "colorization": ("colorization_cifar10", "quick", dict(image_size=16, decoder_width=8), 16),
    "context_encoder": ("context_encoder_cifar10", "quick", dict(image_size=16, bottleneck=16, decoder_width=8,
                                                                 disc_widths=(8, 8)), 16),
    "dcgan": ("dcgan_cifar10", "quick", dict(image_size=16, generator_width=8, calibration_batch=16), 16),
    "exemplar": ("exemplar_cifar10", "quick", dict(patch=8, num_seeds=32, head_hidden_dims=(16,), eval_size=16,
                                                   min_pca_images=4), 16),
    "damaged_jigsaw": ("damaged_jigsaw_cifar10", "quick", dict(resize=32, crop=30, tile=8, embed_dim=16,
                                                             head_hidden_dims=(16,), num_permutations=10,
                                                             color_width=8, decoder_width=8, eval_size=16,
                                                             min_prior_images=4), 32),
    "msn": ("msn_cifar10", "quick", dict(image_size=16, focal_size=8, focal_views=2, proj_hidden_dims=(16,),
                                         proj_dim=8, num_prototypes=12), 16),
}
# Methods whose backbone is not the default tiny ConvNet: method -> config.model.
_TINY_VIT = dict(name="vit", width=16, depth=1, num_heads=2, mlp_dim=32, patch_size=4, pool="cls", posemb="sincos2d")
BACKBONES = {"mae": _TINY_VIT,
             # MSN on mean-pooled patches: at init a tiny ViT's class token is nearly the same for every
             # image, and the head's BatchNorm over such features amplifies float32 noise past 1e-5.
             "msn": dict(_TINY_VIT, pool="gap"),
             # DetCon-B on 16-wide convolutions: with 8 channels its gradients are so ill-conditioned
             # that the same step on one device with the batch in another order (the same sum) moved
             # the momentum by 1.5e-5, as much as 8 devices did (2.1e-5); with 16 both stay at 3e-6.
             "detcon_b": dict(name="convnet", widths=(16, 16)),
             # SMoG: its cosine logits at temperature 0.1 amplify the 8-channel ConvNet's float32
             # noise tenfold (an 8-wide parameter differed by 1.1e-5 between the meshes); 16 channels as DetCon-B.
             "smog": dict(name="convnet", widths=(16, 16)),
             "context_encoder": dict(name="dcgan", widths=(8, 8)),
             "dcgan": dict(name="dcgan", widths=(8, 8))}
BATCH = 16


def _config(name, variant):
  return importlib.import_module(f"experiments.configs.{name}").get_config(variant)


# ------------------------------------------------------------------------------------ configs
@pytest.mark.parametrize("name,variant", [(n, v) for n in CONFIG_NAMES
                                          for v in importlib.import_module(f"experiments.configs.{n}").VARIANTS])
def test_every_config_variant_builds(name, variant):
  config = _config(name, variant)
  method = runner.build_method(config)
  assert method.name == config.method
  json_sig = method.signature()
  assert json_sig["method"] == config.method
  assert config.train.batch_size % 8 == 0 and config.eval.batch_size % 8 == 0  # runs on 8 devices
  tx, schedule, total = runner.build_optimizer(config.train, num_train=50 * config.train.batch_size)
  assert total == round(config.train.epochs * 50) and callable(tx)
  with pytest.raises(ValueError, match="unknown variant"):
    _config(name, "no_such_variant")


def test_every_registered_method_is_in_the_contract():
  assert set(CONTRACT) == set(methods.REGISTRY)


# ------------------------------------------------------------------------------------ methods
def _tiny(name, tmp):
  """(method, its prepared toy source, the run config dict it is built from)."""
  cfg_name, variant, over, size = CONTRACT[name]
  config = _config(cfg_name, variant)
  kwargs = {**config.method_kwargs.to_dict(), **over}
  if "mask_cache_dir" in kwargs:
    kwargs["mask_cache_dir"] = str(tmp)
  run_config = {"method": config.method, "model": BACKBONES.get(name, dict(name="convnet", widths=(8, 8))),
                "data": {"mean": tuple(config.data.mean), "std": tuple(config.data.std)},
                "method_kwargs": kwargs, "eval": {"batch_size": BATCH}}
  method = pretrained.build_method(run_config)
  src = toy_source(n=2 * BATCH, size=size)
  method.set_schedule(steps_per_epoch=2, total_steps=4, num_examples=len(src))
  return method, method.prepare_source(src), run_config


@pytest.fixture(params=[pytest.param(n, marks=pytest.mark.xdist_group(f"test_contract_{n}")) for n in sorted(CONTRACT)])
def ran(request, tmp_path_factory):
  """Two steps of each method on 1 and on 8 devices, computed once per method and worker."""
  return once(("contract", request.param), lambda: _run_contract(request.param, tmp_path_factory.mktemp("masks")))


def _run_contract(name, tmp):
  method, src, run_config = _tiny(name, tmp)
  bs = batches(method, src, BATCH, 2)
  tx = optax.sgd(0.1, momentum=0.9)
  # Both meshes start from one initialization (on 8 devices it is the checkpoint test's target).
  mesh = parallel.make_mesh(jax.devices())
  start = jax.device_get(train.init_train_state(method, tx, jax.random.key(0), parallel.shard_batch(bs[0], mesh), mesh))
  p0, s1, m1 = run_steps(method, tx, bs, jax.devices()[:1], with_initial=True, start=start)
  s8, m8 = run_steps(method, tx, bs, jax.devices(), start=start)
  return dict(name=name, method=method, src=src, config=run_config, batches=bs, tx=tx, start=start, p0=p0, s1=s1,
              m1=m1, s8=s8, m8=m8)


def test_two_finite_steps_that_change_the_parameters(ran):
  for m in ran["m1"] + ran["m8"]:
    assert np.isfinite(m["loss"]) and m["nonfinite"] == 0, m
  assert int(ran["s1"].skipped) == 0 and int(ran["s1"].step) == 2
  moved = max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
              for a, b in zip(jax.tree.leaves(ran["p0"]), jax.tree.leaves(ran["s1"].params)))
  assert moved > 1e-4, ran["name"]


def test_eight_devices_equal_one_device_with_the_global_batch(ran):
  assert jax.device_count() == 8
  assert_trees_close(ran["s8"].params, ran["s1"].params)
  assert_trees_close(ran["s8"].state, ran["s1"].state)
  assert_trees_close(ran["s8"].opt_state, ran["s1"].opt_state)
  if ran["name"] == "swav":  # the queue filled by step 1 joins Sinkhorn in step 2, on both meshes
    assert [float(m["queue_used"]) for m in ran["m1"]] == [0.0, 1.0]
  for a, b in zip(ran["m8"], ran["m1"]):
    assert a.keys() == b.keys()
    for k in a:
      np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-5, err_msg=f"{ran['name']}: {k}")


def test_checkpoint_round_trip_restores_an_identical_state(ran, tmp_path):
  method, s = ran["method"], ran["s8"]
  mesh = parallel.make_mesh()
  target = jax.device_put(ran["start"], parallel.replicated(mesh))  # the trainer's init on 8 devices
  ckpt = train.Checkpointer(str(tmp_path), save_every=1, async_save=False)
  assert ckpt.save(2, jax.device_put(s, parallel.replicated(mesh)), {"signature": method.signature()}, force=True)
  ckpt.wait()
  restored, _, step = ckpt.restore(target, method.signature())
  ckpt.close()
  assert step == 2
  for a, b in zip(jax.tree.leaves(jax.device_get(restored)), jax.tree.leaves(s)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  with pytest.raises(train.CheckpointError, match="different model"):
    train.Checkpointer(str(tmp_path)).restore(target, {"method": "another_model"})  # "a different model"


def _save_like_the_trainer(ran, directory):
  """Step 2 of `ran` saved with the meta the trainer writes (config + init shapes)."""
  method, src = ran["method"], ran["src"]
  meta = {"signature": method.signature(), "run": {"config": json.loads(json.dumps(ran["config"]))},
          "init": {"batch": methods.batch_spec(ran["batches"][0]), "steps_per_epoch": 2, "total_steps": 4,
                   "num_examples": len(src)}}
  ckpt = train.Checkpointer(os.path.join(directory, "checkpoints"), save_every=1, async_save=False)
  assert ckpt.save(2, jax.device_put(ran["s8"], parallel.replicated(parallel.make_mesh())), meta, force=True)
  ckpt.wait()
  ckpt.close()


def _loaded(ran, tmp_path_factory):
  """`pretrained.load` of `ran`'s step 2 saved like the trainer, once per method and worker
  (the load and export tests share it)."""
  def make():
    directory = str(tmp_path_factory.mktemp(f"saved_{ran['name']}"))
    _save_like_the_trainer(ran, directory)
    return pretrained.load(directory)
  return once(("loaded", ran["name"]), make)


def test_load_rebuilds_the_method_from_the_checkpoint_alone(ran, tmp_path_factory):
  """`jax_ssl.load` needs no data: zeros of the stored shapes initialize the network, the
  checkpoint fills it, and `embed` gives the evaluation's features exactly."""
  model = _loaded(ran, tmp_path_factory)
  assert model.step == 2 and model.method.signature() == ran["method"].signature()
  for got, want in ((model.params, ran["s8"].params), (model.state, ran["s8"].state)):
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  head = data.take_examples(ran["src"], np.arange(10), "toy[:10]")
  want, _ = evaluate.extract_features(ran["method"], ran["s8"].params, ran["s8"].state, head, batch_size=BATCH)
  np.testing.assert_array_equal(model.embed(head.images), want)


def test_exported_backbone_reloads_with_identical_features(ran, tmp_path, tmp_path_factory):
  """The backbone alone (`export_backbone`) in a fresh `models` module gives `embed`'s features."""
  model = _loaded(ran, tmp_path_factory)
  written = model.export_backbone(str(tmp_path / "export" / "backbone"))
  assert all(os.path.exists(p) for p in written)
  module, variables, card = pretrained.load_backbone(str(tmp_path / "export" / "backbone"))
  assert card["method"] == ran["name"] and card["step"] == 2
  assert card["architecture"] == json.loads(json.dumps(ran["config"]["model"]))
  head = data.take_examples(ran["src"], np.arange(8), "toy[:8]")
  x = np.stack([np.asarray(model.method.eval_preprocess(im)) for im in head.images])
  np.testing.assert_array_equal(np.asarray(jax.jit(lambda v, x: module.apply(v, x, train=False))(variables, x)),
                                np.asarray(jax.jit(ran["method"].embed)(ran["s8"].params, ran["s8"].state, x)))
  assert card["num_features"] == model.embed(head.images).shape[1]
  assert f"[N, H, W, {card['input_shape'][-1]}]" in card["input"], card["input"]  # says what the network takes


@pytest.mark.parametrize("ran", ["simclr"], indirect=True)
def test_load_errors(ran, tmp_path):
  with pytest.raises(train.CheckpointError, match="no checkpoint"):
    pretrained.load(str(tmp_path))
  _save_like_the_trainer(ran, str(tmp_path))
  other = json.loads(json.dumps(ran["config"]))
  other["model"]["widths"] = [8, 16]
  with pytest.raises(train.CheckpointError, match="different model"):
    pretrained.load(str(tmp_path), config=other)
  with pytest.raises(train.CheckpointError, match="no checkpoint of step 5"):
    pretrained.load(str(tmp_path), step=5)
  model = pretrained.load(str(tmp_path))
  images = ran["src"].images[:4]
  for bad, message in ((images.astype(np.float32) / 255, "uint8"), (images[..., :1], r"\[N, H, W, 3\]"),
                       (images[:0], "no images")):
    with pytest.raises(ValueError, match=message):
      model.embed(bad)
  with pytest.raises(ValueError, match="unknown block 'stage9'"):
    model.features(images, block="stage9")


def test_evaluation_runs(ran):
  method, s = ran["method"], ran["s1"]
  report = evaluate.evaluate_method(method, s.params, s.state, ran["src"], ran["src"], batch_size=BATCH,
                                    knn_ks=(5,), linear=False, baselines=False, pretext_epochs=1)
  row = report["pretrained"]
  assert "knn_top1_k5" in row or any(k.startswith("knn") for k in row), row
  assert all(np.isfinite(v) and 0 <= v <= 100 for v in row.values()), row
