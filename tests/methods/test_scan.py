"""SCAN's stages on the trainer: nearest-neighbour mining against NumPy, the best head's loss
against the SCAN loss, warm starts (a pretext run's backbone, a SCAN run's best head), and the
three-stage pipeline pretext -> SCAN -> self-labelling through `train.train` and `jax_ssl.load`."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jax_ssl import losses, models, parallel, pretrained, train
from jax_ssl.methods import SCAN, SCANSelfLabel, SimCLR
from jax_ssl.methods.scan import scan_head_losses
from tests.helpers import once, toy_source

pytestmark = pytest.mark.xdist_group("test_scan")

N, BATCH, K = 40, 16, 4


def _sharded(x, mesh, chunk=16):
  """`ShardedFeatures` of host rows x [N, F] in chunks of `chunk` (the last one padded)."""
  n = len(x)
  c = -(-n // chunk)
  idx = np.minimum(np.arange(c * chunk), n - 1).reshape(c, chunk)
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(None, mesh.axis_names[0]))
  put = lambda a: jax.device_put(a, sharding)
  return parallel.ShardedFeatures(features=put(x[idx].astype(np.float32)), index=put(idx.astype(np.int32)),
                                  valid=put(np.arange(c * chunk).reshape(c, chunk) < n),
                                  labels=put(np.zeros((c, chunk), np.int32)))


def test_nearest_neighbors_match_numpy_on_8_devices():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(37, 6))
  x[5] = x[9] * 3.0  # same direction: a tie broken towards the lower index
  feats = _sharded(x, parallel.make_mesh())
  idx, sims = parallel.nearest_neighbors(feats, k=5)
  got = np.asarray(parallel.per_example(feats, idx, len(x)))
  xn = x / np.linalg.norm(x, axis=1, keepdims=True)
  s = xn @ xn.T
  want = np.argsort(-s, axis=1, kind="stable")[:, :5]
  np.testing.assert_array_equal(got[:, 0][np.r_[0:5, 6:9, 10:37]], np.r_[0:5, 6:9, 10:37])  # self first
  assert list(got[5, :2]) == [5, 9] and list(got[9, :2]) == [5, 9]  # cosine 1 both ways: lower index first
  # Exact indices where no two of the top similarities are float32-close (5 and 9 are one direction).
  top = -np.sort(-s, axis=1)[:, :6]
  clear = np.min(np.abs(np.diff(top, axis=1)), axis=1) > 1e-5
  assert clear.sum() > 25
  np.testing.assert_array_equal(got[clear], want[clear])
  np.testing.assert_allclose(np.asarray(parallel.per_example(feats, sims, len(x))),
                             np.take_along_axis(s, want, 1), atol=1e-5)
  assert not np.isin(got, np.arange(37, 48)).any()  # padding rows are never neighbours
  with pytest.raises(ValueError, match="more than"):
    parallel.nearest_neighbors(feats, k=49)


def test_head_losses_are_the_scan_loss_with_entropy_weight_1():
  rng = np.random.default_rng(1)
  logits = rng.normal(size=(3, 12, K)) * 2
  probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
  nbrs = np.stack([np.arange(12), rng.integers(0, 12, 12), rng.integers(0, 12, 12)], 1)
  got = scan_head_losses(probs, nbrs)
  for h in range(3):  # every (anchor, neighbour) pair as one batch row: the same mean and entropy
    a = np.repeat(logits[h], nbrs.shape[1], axis=0)
    n = logits[h][nbrs.reshape(-1)]
    want = losses.scan_loss(jnp.asarray(a, jnp.float32), jnp.asarray(n, jnp.float32), entropy_weight=1.0)
    np.testing.assert_allclose(got[h], float(want), rtol=1e-5)


def _backbone():
  return models.build_backbone("convnet", widths=(8, 8))


def _scan(**kw):
  return SCAN(backbone=_backbone(), num_heads=3, num_clusters=K, num_neighbors=3, image_size=16, cutout=8,
              head_select_examples=kw.pop("head_select_examples", 24), select_neighbors=2, **kw)


def _train(method, workdir, *, steps, warm_start=None, stop_after=None):
  return train.train(method, toy_source(n=N, size=16), workdir=workdir, global_batch=BATCH, total_steps=steps,
                     tx=optax.adam(1e-3), seed=0, checkpoint_every=100, log_every=steps, progress=False,
                     mesh=parallel.make_mesh(jax.devices()[:2]), warm_start=warm_start, stop_after=stop_after,
                     meta={"config": {"method": method.name, "model": {"name": "convnet", "widths": [8, 8]},
                                      "data": {"mean": [0.5] * 3, "std": [0.25] * 3},
                                      "method_kwargs": _KWARGS[method.name]}})


_KWARGS = {"simclr": dict(image_size=16, proj_hidden_dims=[16], proj_dim=8),
           "scan": dict(num_heads=3, num_clusters=K, num_neighbors=3, image_size=16, cutout=8,
                        head_select_examples=24, select_neighbors=2, collapse_share=1.0),
           "scan_selflabel": dict(num_clusters=K, image_size=16, cutout=8, threshold=0.3, collapse_share=1.0)}


def _pipeline(tmp_path_factory):
  """pretext (SimCLR, 2 steps) -> SCAN (3 steps from it) -> self-labelling (2 steps from that)."""
  dirs = {k: str(tmp_path_factory.mktemp(k)) for k in ("simclr", "scan", "selflabel")}
  simclr = SimCLR(backbone=_backbone(), mean=(0.5,) * 3, std=(0.25,) * 3, **_KWARGS["simclr"])
  _train(simclr, dirs["simclr"], steps=2)
  pretext = pretrained.load(dirs["simclr"])
  seen = {}

  def warm(method, source, key):
    def fn(p, s):
      seen[key] = method.warm_start(p, s, source)
      return seen[key]
    return fn

  scan = SCAN(backbone=_backbone(), mean=(0.5,) * 3, std=(0.25,) * 3, **_KWARGS["scan"])
  scan_run = _train(scan, dirs["scan"], steps=3, warm_start=warm(scan, pretext, "scan"))
  scanned = pretrained.load(dirs["scan"])
  self_label = SCANSelfLabel(backbone=_backbone(), mean=(0.5,) * 3, std=(0.25,) * 3, **_KWARGS["scan_selflabel"])
  _train(self_label, dirs["selflabel"], steps=2, warm_start=warm(self_label, scanned, "selflabel"), stop_after=1)
  return dict(dirs=dirs, pretext=pretext, scan=scan, scan_run=scan_run, scanned=scanned, seen=seen,
              self_label=self_label)


def test_scan_starts_from_the_pretext_backbone_and_mines_its_neighbours(tmp_path_factory):
  run = once("scan-pipeline", lambda: _pipeline(tmp_path_factory))
  pretext, scanned = run["pretext"], run["scanned"]
  params, state = run["seen"]["scan"]
  theirs = pretext.method.backbone_variables(pretext.params, pretext.state)
  for a, b in zip(jax.tree.leaves(params["backbone"]), jax.tree.leaves(theirs["params"])):
    np.testing.assert_array_equal(a, b)
  for a, b in zip(jax.tree.leaves(state["batch_stats"]["backbone"]), jax.tree.leaves(theirs["batch_stats"])):
    np.testing.assert_array_equal(a, b)
  # The neighbours were mined before step 0 on the pretext backbone: cosine kNN of its features.
  src = toy_source(n=N, size=16)
  f = pretext.embed(src.images).astype(np.float64)
  f /= np.linalg.norm(f, axis=1, keepdims=True)
  s = f @ f.T
  got = np.asarray(scanned.state["neighbors"])
  assert got.shape == (N, 4)
  np.testing.assert_allclose(np.take_along_axis(s, got, 1), -np.sort(-s, axis=1)[:, :4], atol=1e-5)
  assert (got[:, 0] == np.arange(N)).mean() > 0.9  # self first (up to exact ties)
  same = (src.labels[got[:, 1:]] == src.labels[:, None]).mean()
  np.testing.assert_allclose(float(scanned.state["neighbor_accuracy"]), same, rtol=1e-5)
  # Head selection: neighbours within the selection set, the lowest SCAN loss, in the checkpoint.
  sel = np.asarray(scanned.state["select_index"])
  assert len(sel) == 24 and np.all(np.diff(sel) > 0)
  sn = np.asarray(scanned.state["select_neighbors"])
  np.testing.assert_allclose(np.take_along_axis(s[np.ix_(sel, sel)], sn, 1),
                             -np.sort(-s[np.ix_(sel, sel)], axis=1)[:, :3], atol=1e-5)
  m = scanned.method
  logits = np.stack([np.asarray(jax.jit(lambda p, st, x, h=h: m._apply(p, st, x, train=False)[h])(
      scanned.params, scanned.state, np.stack([np.asarray(m.eval_preprocess(im)) for im in src.images[sel]])))
      for h in range(3)])
  probs = np.exp(logits - logits.max(-1, keepdims=True))
  probs /= probs.sum(-1, keepdims=True)
  want = scan_head_losses(probs, sn)
  np.testing.assert_allclose(np.asarray(scanned.state["head_losses"]), want, rtol=1e-4)
  assert int(scanned.state["best_head"]) == int(np.argmin(want))


def test_selflabel_starts_from_the_best_head_and_resumes_without_the_source(tmp_path_factory):
  run = once("scan-pipeline", lambda: _pipeline(tmp_path_factory))
  scanned = run["scanned"]
  params, _ = run["seen"]["selflabel"]
  best = int(scanned.state["best_head"])
  for a, b in zip(jax.tree.leaves(params["top_layer0"]), jax.tree.leaves(scanned.params[f"top_layer{best}"])):
    np.testing.assert_array_equal(a, b)
  for a, b in zip(jax.tree.leaves(params["backbone"]), jax.tree.leaves(scanned.params["backbone"])):
    np.testing.assert_array_equal(a, b)

  def must_not_run(p, s):
    raise AssertionError("warm_start ran on a resumed run")

  result = _train(run["self_label"], run["dirs"]["selflabel"], steps=2, warm_start=must_not_run)
  assert result.step == 2


def test_warm_start_errors_name_the_problem(tmp_path_factory):
  run = once("scan-pipeline", lambda: _pipeline(tmp_path_factory))
  pretext = run["pretext"]
  wide = SCAN(backbone=models.build_backbone("convnet", widths=(8, 16)), num_clusters=K, num_neighbors=3,
              image_size=16)
  wide.set_schedule(steps_per_epoch=2, total_steps=2, num_examples=N)
  b = {"anchor": np.zeros((2, 16, 16, 3), np.float32), "neighbor": np.zeros((2, 16, 16, 3), np.float32)}
  p, s = jax.tree.map(np.asarray, wide.init(jax.random.key(0), b))
  with pytest.raises(ValueError, match=r"backbone of the simclr run does not fit this run's: .*bn1.* is \(8,\) there and \(16,\) here"):
    wide.warm_start(p, s, pretext)
  sl = run["self_label"]
  p, s = jax.tree.map(np.asarray, sl.init(jax.random.key(0), {"weak": b["anchor"], "strong": b["anchor"]}))
  with pytest.raises(ValueError, match="starts from a scan run .* 'simclr'"):
    sl.warm_start(p, s, pretext)
