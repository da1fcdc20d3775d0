"""DeepCluster, DeepCluster-v2 and SeLA: their objectives and inputs against NumPy, their dataset
passes, SeLA's label-optimization schedule against the official loop, and bitwise resume
across a pass."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jax_ssl import cluster, evaluate, models, parallel, train
from jax_ssl.methods import DeepCluster, DeepClusterV2, SeLA, SMoG
from jax_ssl.methods.deepcluster import IGNORE, pseudo_label_cross_entropy
from jax_ssl.methods.sela import optimization_steps
from tests.helpers import batches, once, toy_source

pytestmark = pytest.mark.xdist_group("test_clustering_methods")

N, BATCH = 48, 16  # 3 steps per epoch


def _backbone():
  return models.build_backbone("convnet", widths=(8, 8))


def _dcv2():
  return DeepClusterV2(backbone=_backbone(), crop_sizes=(16, 8), crop_counts=(2, 1),
                       crop_scales=((0.3, 1.0), (0.1, 0.4)), proj_hidden_dims=(16,), proj_dim=8,
                       num_prototypes=(6, 5, 4), kmeans_iters=3, eval_crop_fraction=1.0,
                       view_kwargs=dict(blur_p=0.0))


def _dc(**kw):
  return DeepCluster(backbone=_backbone(), num_clusters=5, pca_dim=4, kmeans_iters=3, image_size=16,
                     eval_crop_fraction=1.0, **kw)


def _sela():
  return SeLA(backbone=_backbone(), num_heads=2, num_clusters=4, num_opts=4, image_size=16,
              eval_crop_fraction=1.0)


def _smog(**kw):
  kw = {"num_groups": 4, "reset_every": 4, "bank_size": 48, "kmeans_iters": 10, **kw}
  return SMoG(backbone=_backbone(), image_size=16, proj_hidden_dims=(16,), proj_dim=8, pred_hidden_dims=(16,),
              tau_base=0.99, eval_crop_fraction=1.0, view_kwargs=dict(blur_p=0.0), **kw)


def _np_ce(logits, labels):
  logits = logits.astype(np.float64)
  lse = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
  keep = labels != IGNORE
  return float(np.sum((lse - logits[np.arange(len(labels)), np.where(keep, labels, 0)])[keep]) / max(keep.sum(), 1))


def test_pseudo_label_cross_entropy_ignores_minus_100_as_torch():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(7, 5)).astype(np.float32)
  labels = np.array([0, 4, IGNORE, 2, IGNORE, 1, 3])
  np.testing.assert_allclose(pseudo_label_cross_entropy(jnp.asarray(logits), jnp.asarray(labels)),
                             _np_ce(logits, labels), rtol=1e-6)
  assert float(pseudo_label_cross_entropy(jnp.asarray(logits), jnp.full(7, IGNORE))) == 0.0


def _init(method, src):
  method.set_schedule(steps_per_epoch=len(src) // BATCH, total_steps=6, num_examples=len(src))
  b = batches(method, src, BATCH, 1)[0]
  params, state = method.init(jax.random.key(0), b)
  return b, params, state


def test_deepcluster_v2_loss_and_memory_bank_match_numpy():
  method, src = _dcv2(), toy_source(n=N, size=16)
  b, params, state = _init(method, src)
  loss, (new_state, metrics) = method.loss(params, state, b, jax.random.key(1), jnp.asarray(0))
  z, _ = method._project(params, state["batch_stats"], method._crops(b), train=True)  # pylint: disable=protected-access
  z = np.asarray(z, np.float64)
  idx = np.asarray(b["index"])
  want = np.mean([_np_ce(z @ np.asarray(p, np.float64).T / 0.1, np.tile(np.asarray(state["assignments"][h])[idx], 3))
                  for h, p in enumerate(state["prototypes"])])
  np.testing.assert_allclose(float(loss), want, rtol=1e-5)
  bank = np.asarray(new_state["bank"])
  for i, crop in enumerate((0, 1)):  # the assignment crops' embeddings at the batch's indices
    np.testing.assert_allclose(bank[i, idx], z[crop * BATCH:(crop + 1) * BATCH], rtol=1e-5, atol=1e-6)
  untouched = np.setdiff1d(np.arange(N), idx)
  assert np.all(bank[:, untouched] == 0)
  assert float(metrics["clusters_in_use"]) == 4.0


def test_deepcluster_v2_pass_clusters_the_bank_and_overwrites_the_prototypes():
  method, src = _dcv2(), toy_source(n=N, size=16)
  _, params, state = _init(method, src)
  mesh = parallel.make_mesh(jax.devices()[:1])
  embed = parallel.make_embed_fn(method.pass_features, mesh)
  feats = parallel.extract_features_sharded(embed, method.eval_preprocess, params, state, src, batch_size=BATCH,
                                            mesh=mesh)
  assert method.pass_needs_features(0) and not method.pass_needs_features(3)
  new = method.dataset_pass(params, state, feats, step=0)
  z, _ = parallel.extract_features(embed, method.eval_preprocess, params, state, src, batch_size=BATCH, mesh=mesh)
  z = z / np.linalg.norm(z, axis=1, keepdims=True)
  bank = np.asarray(new["bank"])
  np.testing.assert_allclose(bank[0], z, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(bank[0], bank[1])
  for h, k in enumerate((6, 5, 4)):
    c, a = np.asarray(new["prototypes"][h]), np.asarray(new["assignments"][h])
    assert c.shape == (k, 8)
    np.testing.assert_allclose(np.linalg.norm(c, axis=1), 1.0, rtol=1e-5)
    # The assignments are the argmax under the returned prototypes (the final assignment).
    np.testing.assert_array_equal(a, np.argmax(bank[h % 2] @ c.T, axis=1))
    assert float(new["clusters_in_use"][h]) == len(np.unique(a))
  # The report's clusters: the first head's nearest prototype of each image's projection.
  pred = evaluate.cluster_predictions(method, params, new, src, batch_size=BATCH, mesh=mesh)
  np.testing.assert_array_equal(pred, np.argmax(z @ np.asarray(new["prototypes"][0]).T, axis=1))
  # A later pass (no features) clusters the bank as it is, reproducibly for a given step.
  again = method.dataset_pass(params, new, None, step=3)
  again2 = method.dataset_pass(params, new, None, step=3)
  for x, y in zip(jax.tree.leaves(again), jax.tree.leaves(again2)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  np.testing.assert_array_equal(np.asarray(again["bank"]), bank)


def _official_opt_steps(*, epochs, n, batch, nopts, total_steps):
  """The official main.py loop: pop the smallest pending point when niter * batch reaches it."""
  times = [(epochs + 2) * n] + ((epochs + 1.01) * n * (np.linspace(0, 1, nopts) ** 2)[::-1]).tolist()
  out = []
  for niter in range(total_steps):
    if niter * batch >= times[-1]:
      times.pop()
      out.append(niter)
  return out


@pytest.mark.parametrize("epochs,spe,nopts", [(4, 10, 5), (400, 5004, 100), (8, 29, 12), (3, 7, 40)])
def test_sela_label_steps_follow_the_official_loop(epochs, spe, nopts):
  batch = 256
  got = optimization_steps(total_steps=epochs * spe, steps_per_epoch=spe, epochs=epochs, num_opts=nopts)
  assert got == _official_opt_steps(epochs=epochs, n=spe * batch, batch=batch, nopts=nopts, total_steps=epochs * spe)


def test_sela_pass_labels_are_sinkhorn_of_each_heads_logits():
  method, src = _sela(), toy_source(n=N, size=16)
  _, params, state = _init(method, src)
  labels0 = np.asarray(state["labels"])
  assert all(np.bincount(row, minlength=4).tolist() == [12] * 4 for row in labels0)  # random balanced start
  mesh = parallel.make_mesh(jax.devices()[:1])
  embed = parallel.make_embed_fn(method.pass_features, mesh)
  feats = parallel.extract_features_sharded(embed, method.eval_preprocess, params, state, src, batch_size=BATCH,
                                            mesh=mesh)
  new = method.dataset_pass(params, state, feats, step=0)
  f, _ = parallel.extract_features(embed, method.eval_preprocess, params, state, src, batch_size=BATCH, mesh=mesh)
  for h in range(2):
    w = np.asarray(params[f"top_layer{h}"]["kernel"], np.float64)
    bias = np.asarray(params[f"top_layer{h}"]["bias"], np.float64)
    want = cluster.sela_labels(f.astype(np.float64) @ w + bias, lam=25.0)
    np.testing.assert_array_equal(np.asarray(new["labels"][h]), want)
  assert int(new["label_opts"]) == 1


def _run(method_fn, workdir, *, total_steps=9, stop_after=None):
  method = method_fn()
  passes = []
  inner = method.dataset_pass

  def record(params, state, features, *, step):
    passes.append(step)
    return inner(params, state, features, step=step)

  method.dataset_pass = record
  result = train.train(method, toy_source(n=N, size=16), workdir=workdir, global_batch=BATCH, total_steps=total_steps,
                       tx=optax.sgd(0.05, momentum=0.9), seed=1, checkpoint_every=3, log_every=3, progress=False,
                       mesh=parallel.make_mesh(jax.devices()[:2]), stop_after=stop_after)
  return passes, result


def _host(result):
  return jax.tree.map(np.asarray, jax.device_get({"p": result.state.params, "s": result.state.state,
                                                 "o": result.state.opt_state}))


# DeepCluster-v2 stopped exactly at an epoch boundary (its pass is redone from the checkpointed
# bank), SeLA just after a label optimization.
@pytest.mark.parametrize("name,method_fn,stop_at", [("deepcluster", _dc, 3), ("deepcluster_v2", _dcv2, 3),
                                                    ("sela", _sela, 4), ("smog", _smog, 4)])
def test_resume_across_a_dataset_pass_is_bitwise_exact(tmp_path_factory, name, method_fn, stop_at):
  ref_passes, ref = once(("clustering-ref", name), lambda: _run(method_fn, str(tmp_path_factory.mktemp("ref"))))
  if name.startswith("deepcluster"):
    assert ref_passes == [0, 3, 6]  # every epoch, before its first step
  elif name == "smog":
    assert ref_passes == [0, 4, 8]  # every reset_every = 4 steps
  else:
    assert ref_passes == optimization_steps(total_steps=9, steps_per_epoch=3, epochs=3, num_opts=4)
    assert ref_passes == [0, 2, 6]
  workdir = str(tmp_path_factory.mktemp("resume"))
  first, r1 = _run(method_fn, workdir, stop_after=stop_at)
  assert r1.step == stop_at and max(first) <= stop_at
  second, r2 = _run(method_fn, workdir)
  assert r2.step == 9
  assert sorted(set(first) | set(second)) == ref_passes  # the boundary's pass is redone, no other
  for x, y in zip(jax.tree.leaves(_host(ref)), jax.tree.leaves(_host(r2))):
    np.testing.assert_array_equal(x, y)
  if name == "smog":  # its pass leaves the pipeline as it is: rebuilding it anyway changes nothing
    def rebuilding():
      method = _smog()
      method.pass_changes_inputs = True
      return method
    _, rebuilt = _run(rebuilding, str(tmp_path_factory.mktemp("rebuilt")))
    for x, y in zip(jax.tree.leaves(_host(ref)), jax.tree.leaves(_host(rebuilt))):
      np.testing.assert_array_equal(x, y)


# ------------------------------------------------------------------------------ SMoG
def _unit(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=1, keepdims=True)


def _np_smog(t1, t2, p1, p2, groups, beta=0.99, temperature=0.1):
  """SMoG's step in float64: assign both views' momentum features to the nearest group, move
  the groups to the momentum mean of their members, cross-entropy of each view's prediction
  against the other view's group under the moved groups."""
  t = _unit(np.concatenate([t1, t2]))
  g = np.asarray(groups, np.float64)
  a = np.argmax(t @ _unit(g).T, axis=1)
  new = g.copy()
  for k in np.unique(a):
    v = beta * g[k] + (1 - beta) * t[a == k].mean(0)
    new[k] = v / np.linalg.norm(v)
  b = len(t1)
  a1, a2 = a[:b], a[b:]
  return 0.5 * (_np_ce(_unit(p1) @ _unit(new).T / temperature, a2)
                + _np_ce(_unit(p2) @ _unit(new).T / temperature, a1)), new, t


def test_smog_loss_groups_and_ring_bank_match_numpy():
  method, src = _smog(), toy_source(n=N, size=16)
  b, params, state = _init(method, src)
  for call in range(2):  # the second call wraps around the 48-row bank (32 rows per step)
    loss, (new, metrics) = method.loss(params, state, b, jax.random.key(1), jnp.asarray(call))
    (_, p1, t1), (_, p2, t2), _ = method.net.two_views(params, state, (b["view1"],), (b["view2"],))
    want, groups, t = _np_smog(*(np.asarray(x) for x in (t1, t2, p1, p2, state["groups"])))
    np.testing.assert_allclose(float(loss), want, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(new["groups"]), groups, rtol=1e-5, atol=1e-6)
    rows = (call * 32 + np.arange(32)) % 48
    np.testing.assert_allclose(np.asarray(new["bank"])[rows], t, rtol=1e-5, atol=1e-6)
    assert int(new["bank_ptr"]) == (call + 1) * 32 % 48 and int(new["bank_filled"]) == min((call + 1) * 32, 48)
    assert float(metrics["groups_in_use"]) == len(np.unique(np.argmax(t @ _unit(state["groups"]).T, axis=1)))
    state = new
  untouched = np.setdiff1d(np.arange(48), (32 + np.arange(32)) % 48)
  assert untouched.tolist() == list(range(16, 32))  # the first call's rows 16-31, kept


def _assert_kmeans_fixed_point(groups, x):
  """Each group with members is the normalized mean of the rows nearest to it (k-means converged)."""
  x = _unit(x)
  a = np.argmax(x @ np.asarray(groups, np.float64).T, axis=1)
  for k in np.unique(a):
    m = x[a == k].mean(0)
    np.testing.assert_allclose(np.asarray(groups[k], np.float64), m / np.linalg.norm(m), rtol=1e-4, atol=1e-5)
  return len(np.unique(a))


def test_smog_resets_groups_by_kmeans_of_the_features_then_of_the_filled_bank():
  method, src = _smog(num_groups=3, kmeans_iters=30), toy_source(n=N, size=16)
  b, params, state = _init(method, src)
  mesh = parallel.make_mesh(jax.devices()[:1])
  embed = parallel.make_embed_fn(method.pass_features, mesh)
  feats = parallel.extract_features_sharded(embed, method.eval_preprocess, params, state, src, batch_size=BATCH,
                                            mesh=mesh)
  assert method.pass_needs_features(0) and not method.pass_needs_features(4)
  assert method.dataset_pass_due(0) and method.dataset_pass_due(4) and not method.dataset_pass_due(3)
  new = method.dataset_pass(params, state, feats, step=0)
  z, _ = parallel.extract_features(embed, method.eval_preprocess, params, state, src, batch_size=BATCH, mesh=mesh)
  assert float(new["kmeans_groups"]) == _assert_kmeans_fixed_point(np.asarray(new["groups"]), z)
  assert int(new["bank_filled"]) == 0  # the initial pass leaves the bank to the steps
  # The report's clusters: each image's nearest group.
  pred = evaluate.cluster_predictions(method, params, new, src, batch_size=BATCH, mesh=mesh)
  np.testing.assert_array_equal(pred, np.argmax(_unit(z) @ np.asarray(new["groups"], np.float64).T, axis=1))
  # Later: k-means on the bank's filled rows only; rows not yet written take no part.
  rng = np.random.default_rng(0)
  bank = _unit(rng.normal(size=(48, 8))).astype(np.float32)
  filled = dict(new, bank=jnp.asarray(bank), bank_filled=jnp.asarray(30, jnp.int32))
  junk = dict(filled, bank=jnp.asarray(np.concatenate([bank[:30], np.ones((18, 8), np.float32)])))
  r1, r2 = method.dataset_pass(params, filled, None, step=4), method.dataset_pass(params, junk, None, step=4)
  np.testing.assert_array_equal(np.asarray(r1["groups"]), np.asarray(r2["groups"]))
  assert float(r1["kmeans_groups"]) == _assert_kmeans_fixed_point(np.asarray(r1["groups"]), bank[:30])
  # Fewer filled rows than groups: the groups are kept.
  few = method.dataset_pass(params, dict(filled, bank_filled=jnp.asarray(2, jnp.int32)), None, step=4)
  np.testing.assert_array_equal(np.asarray(few["groups"]), np.asarray(new["groups"]))


def test_smog_stops_a_collapsed_run_and_refuses_a_small_bank():
  method = _smog()
  assert method.check_metrics({"groups_in_use": 5.0}) is None
  assert "SMoG collapsed" in method.check_metrics({"groups_in_use": 1.0})
  with pytest.raises(ValueError, match="bank_size"):
    _smog(bank_size=3)
  method, src = _smog(bank_size=20), toy_source(n=N, size=16)
  b, params, state = _init(method, src)
  with pytest.raises(ValueError, match="raise bank_size"):
    method.loss(params, state, b, jax.random.key(1), jnp.asarray(0))


# ------------------------------------------------------------------------------ DeepCluster (v1)
def test_sobel_is_the_official_filter_on_the_channel_mean():
  from scipy.signal import correlate2d

  from jax_ssl.data import ops

  x = np.random.default_rng(0).normal(size=(9, 7, 3)).astype(np.float32)
  got = np.asarray(ops.sobel(x))
  gray = x.astype(np.float64).mean(-1)
  gx = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], np.float64)
  want = np.stack([correlate2d(gray, gx, mode="same", boundary="fill"),
                   correlate2d(gray, gx.T, mode="same", boundary="fill")], -1)
  assert got.shape == (9, 7, 2)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_pca_whitening_matches_numpy_up_to_the_eigenvectors_signs():
  rng = np.random.default_rng(1)
  x = (rng.normal(size=(3, 32, 6)) * [5, 4, 3, 2, 1, 0.5] + 2.0).astype(np.float32)
  valid = np.ones((3, 32), bool)
  valid[2, 20:] = False  # padding of the last chunk: left out of the statistics
  feats = parallel.ShardedFeatures(jnp.asarray(x), jnp.arange(96).reshape(3, 32), jnp.asarray(valid),
                                   jnp.zeros((3, 32), jnp.int32))
  got = np.asarray(parallel.pca_whiten(feats, dim=4).features)[valid]
  v = x[valid].astype(np.float64)
  mu = v.mean(0)
  eig, vec = np.linalg.eigh(np.cov(v.T, bias=True))
  eig, vec = eig[::-1][:4], vec[:, ::-1][:, :4]
  want = (v - mu) @ vec / np.sqrt(eig)
  want /= np.linalg.norm(want, axis=1, keepdims=True)
  signs = np.sign(np.sum(got * want, axis=0))
  np.testing.assert_allclose(got * signs, want, rtol=1e-4, atol=1e-4)
  with pytest.raises(ValueError, match="dim 7 is more than the 6"):
    parallel.pca_whiten(feats, dim=7)


def test_deepcluster_loss_views_pass_and_classifier_reset():
  method, src = _dc(), toy_source(n=N, size=16)
  b, params, state = _init(method, src)
  assert b["image"].shape == (BATCH, 16, 16, 2)  # Sobel input
  # The loss: cross-entropy of the top layer's logits against the image's pseudo-label.
  loss, _ = method.loss(params, state, b, jax.random.key(0), 0)
  logits, _ = method.model.apply({"params": params, "batch_stats": state["batch_stats"]}, jnp.asarray(b["image"]),
                                 train=True, mutable=["batch_stats"])  # BatchNorm on the batch, as training
  logits, labels = np.asarray(logits), np.asarray(state["labels"])[b["index"]]
  np.testing.assert_allclose(float(loss), _np_ce(logits, labels), rtol=1e-5)
  # The pass: k-means of the PCA-whitened, normalized features of every image; all K used.
  embed = parallel.make_embed_fn(method.pass_features, parallel.make_mesh())
  feats = parallel.extract_features_sharded(embed, method.eval_preprocess, params, state, src, batch_size=BATCH)
  new = method.dataset_pass(params, state, feats, step=3)
  want = parallel.kmeans(parallel.pca_whiten(feats, dim=4), jax.random.fold_in(jax.random.key(0), 3),
                         num_clusters=5, iters=3)
  np.testing.assert_array_equal(np.asarray(new["labels"]), np.asarray(parallel.per_example(feats, want.assignments, N)))
  assert sorted(set(np.asarray(new["labels"]).tolist())) == list(range(5)) and int(new["passes"]) == 1
  assert float(new["largest_cluster"]) == int(np.max(np.asarray(want.counts))) / N
  # After it, a new top layer (N(0, 0.01), zero bias), the rest untouched.
  reset = method.after_dataset_pass(params, new)
  top = np.asarray(reset["top_layer"]["kernel"])
  assert not np.allclose(top, params["top_layer"]["kernel"]) and 0.005 < top.std() < 0.02
  assert not np.any(np.asarray(reset["top_layer"]["bias"]))
  assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves({k: v for k, v in reset.items() if k != "top_layer"}),
                                                   jax.tree.leaves({k: v for k, v in params.items() if k != "top_layer"})))
  # The sampler draws every cluster equally often: N // K + 1 images each.
  host_labels = np.asarray(new["labels"])
  drawn = np.asarray(method.sampler(jax.device_get(new), N)(N, 0, 0))
  np.testing.assert_array_equal(np.bincount(host_labels[drawn], minlength=5), np.full(5, N // 5 + 1))


def test_optimizer_state_of_the_reset_parameters_starts_again():
  method = _dc()
  params = {"backbone": {"kernel": jnp.ones((2, 2))}, "top_layer": {"kernel": jnp.ones((2, 3)), "bias": jnp.ones(3)}}
  tx = optax.chain(optax.add_decayed_weights(1e-4), optax.sgd(0.1, momentum=0.9))
  opt = tx.init(params)
  grads = jax.tree.map(jnp.ones_like, params)
  _, opt = tx.update(grads, opt, params)
  out = train.reset_optimizer_state(method, tx, params, opt)
  trace = out[1][0].trace
  assert not np.any(np.asarray(trace["top_layer"]["kernel"])) and not np.any(np.asarray(trace["top_layer"]["bias"]))
  np.testing.assert_array_equal(trace["backbone"]["kernel"], opt[1][0].trace["backbone"]["kernel"])
  assert np.any(np.asarray(trace["backbone"]["kernel"]))


def test_deepcluster_run_resets_the_classifiers_momentum_after_each_pass(tmp_path_factory):
  """The trainer applies `reset_optimizer_after_pass`: without it the same run ends elsewhere."""
  _, ref = once(("clustering-ref", "deepcluster"), lambda: _run(_dc, str(tmp_path_factory.mktemp("ref"))))

  def no_reset():
    m = _dc()
    m.reset_optimizer_after_pass = ()
    return m

  _, other = _run(no_reset, str(tmp_path_factory.mktemp("noreset")))
  a, b = _host(ref), _host(other)
  assert not np.allclose(a["p"]["top_layer"]["kernel"], b["p"]["top_layer"]["kernel"])
