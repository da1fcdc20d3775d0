"""Dataset-level passes: features of the whole training set between steps, fed back to the loss.

The test method is a small DeepCluster: before every epoch the trainer extracts the features
of every training image, the method runs k-means on them (chunked, on the devices) and stores
the centroids and one pseudo-label per example in its state; the pipeline puts each
example's pseudo-label into the batch and the loss classifies it.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jax_ssl import data, parallel, train
from jax_ssl.methods import Method
from tests.helpers import once, toy_source

# The shared reference run is computed once per worker: keep the module on one worker.
pytestmark = pytest.mark.xdist_group("test_dataset_pass")

K, N, BATCH = 3, 64, 16  # 4 steps per epoch


class _Net(nn.Module):
  @nn.compact
  def __call__(self, x):
    f = nn.Dense(4, name="enc")(jnp.mean(x, axis=(1, 2)))
    return f, nn.Dense(K, name="head")(f)


class ToyCluster(Method):
  name = "toy_cluster_test"
  dataset_pass_every = ("epochs", 1)

  def __init__(self):
    self.net = _Net()
    self.passes = []  # host-side record of the steps at which a pass ran

  def make_views(self, example, seed):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    x = tf.cast(example["image"], tf.float32) / 255.0
    x = x + tf.random.stateless_uniform(tf.shape(x), seed, -0.05, 0.05)
    return {"x": x, "pseudo_label": example["pseudo_label"], "index": example["index"]}

  def eval_preprocess(self, image):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    return tf.cast(image, tf.float32) / 255.0

  def init(self, rng, batch):
    params = self.net.init(rng, jnp.asarray(batch["x"]))["params"]
    return params, {"centroids": jnp.zeros((K, 4)), "labels": jnp.zeros((self.num_examples,), jnp.int32),
                    "passes": jnp.zeros((), jnp.int32)}

  def embed(self, params, state, images):
    return self.net.apply({"params": params}, images)[0]

  def loss(self, params, state, batch, rng, step):
    _, logits = self.net.apply({"params": params}, batch["x"])
    labels = batch["pseudo_label"]
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    # The batch's labels must be those of the state's latest pass (the pipeline was rebuilt).
    agree = jnp.mean((state["labels"][batch["index"]] == labels).astype(jnp.float32))
    return loss, (state, {"label_agree": agree})

  def dataset_extras(self, state, num_examples):
    if state is None:
      return {"pseudo_label": np.zeros((num_examples,), np.int32)}
    return {"pseudo_label": np.asarray(jax.device_get(state["labels"]))}

  def dataset_pass(self, params, state, feats, *, step):
    self.passes.append(step)
    return _kmeans_pass(state, feats)


@jax.jit
def _kmeans_pass(state, feats):
  """Two Lloyd iterations over the chunks (never an N x K matrix), then per-example labels."""
  x, valid = feats.features, feats.valid
  first = state["passes"] == 0
  cent = jnp.where(first, x[0, :K], state["centroids"])

  def assign(cent, xc):
    return jnp.argmin(jnp.sum((xc[:, None, :] - cent[None]) ** 2, -1), axis=-1)

  for _ in range(2):
    def acc(carry, chunk, cent=cent):
      xc, vc = chunk
      onehot = jax.nn.one_hot(assign(cent, xc), K) * vc[:, None]
      return (carry[0] + onehot.T @ xc, carry[1] + onehot.sum(0)), None
    (sums, counts), _ = jax.lax.scan(acc, (jnp.zeros_like(cent), jnp.zeros((K,))), (x, valid))
    cent = jnp.where(counts[:, None] > 0, sums / jnp.maximum(counts[:, None], 1), cent)
  labels = jax.lax.map(lambda xc: assign(cent, xc), x)
  new = state["labels"].at[feats.index.reshape(-1)].set(
      jnp.where(valid.reshape(-1), labels.reshape(-1), state["labels"][feats.index.reshape(-1)]).astype(jnp.int32))
  return {"centroids": cent, "labels": new, "passes": state["passes"] + 1}


def _run(workdir, *, total_steps=12, stop_after=None, devices=1):
  method = ToyCluster()
  result = train.train(method, toy_source(n=N, size=8), workdir=workdir, global_batch=BATCH, total_steps=total_steps,
                       tx=optax.sgd(0.5), seed=1, checkpoint_every=4, log_every=2, progress=False,
                       mesh=parallel.make_mesh(jax.devices()[:devices]), stop_after=stop_after)
  return method, result


def _host(result):
  return jax.tree.map(np.asarray, jax.device_get({"p": result.state.params, "s": result.state.state}))


@pytest.fixture
def reference(tmp_path_factory):
  def make():
    workdir = str(tmp_path_factory.mktemp("ref"))
    return (*_run(workdir), workdir)
  return once("test_dataset_pass.reference", make)


def test_one_pass_per_epoch_and_labels_reach_the_batches(reference):
  method, result, workdir = reference
  assert method.passes == [0, 4, 8]  # before each of the 3 epochs, not after the last step
  assert int(result.state.state["passes"]) == 3
  metrics = train.read_metrics(workdir)
  assert len(metrics) == 6 and all(m["label_agree"] == 1.0 for m in metrics)
  labels = np.asarray(result.state.state["labels"])
  assert labels.shape == (N,) and len(np.unique(labels)) > 1  # real clusters, not one label


@pytest.mark.parametrize("stop_at", [4, 5])  # exactly at the epoch boundary (before its pass), and after it
def test_resume_across_an_epoch_boundary_is_bitwise_exact(reference, tmp_path, stop_at):
  _, ref, _ = reference
  workdir = str(tmp_path)
  first, r1 = _run(workdir, stop_after=stop_at)
  assert r1.step == stop_at
  assert first.passes == ([0] if stop_at == 4 else [0, 4])
  second, r2 = _run(workdir)
  assert r2.step == 12
  assert second.passes == ([4, 8] if stop_at == 4 else [8])  # the boundary's pass is redone, nothing else
  a, b = _host(ref), _host(r2)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)


def test_dataset_state_is_in_the_checkpoint(reference):
  _, ref, workdir = reference
  method = ToyCluster()
  ckpt = train.Checkpointer(workdir + "/checkpoints")
  restored, _, step = ckpt.restore({"params": ref.state.params, "state": ref.state.state}, method.signature(),
                                   partial=True)
  ckpt.close()
  assert step == 12
  np.testing.assert_array_equal(np.asarray(restored["state"]["labels"]), np.asarray(ref.state.state["labels"]))


def test_sharded_features_equal_host_features_on_8_devices():
  method = ToyCluster()
  method.set_schedule(steps_per_epoch=4, total_steps=12, num_examples=50)
  src = toy_source(n=50, size=8)  # not a multiple of the chunk: the last chunk is padded
  mesh = parallel.make_mesh()
  params, _ = method.init(jax.random.key(0), {"x": np.zeros((2, 8, 8, 3), np.float32)})
  embed = parallel.make_embed_fn(method.embed, mesh)
  host, labels = parallel.extract_features(embed, method.eval_preprocess, params, None, src, batch_size=16, mesh=mesh)
  sh = parallel.extract_features_sharded(embed, method.eval_preprocess, params, None, src, batch_size=16, mesh=mesh)
  assert sh.features.shape == (4, 16, 4) and sh.features.sharding.spec[1] == parallel.DATA_AXIS
  valid = np.asarray(sh.valid).reshape(-1)
  assert valid.sum() == 50
  np.testing.assert_array_equal(np.asarray(sh.index).reshape(-1)[valid], np.arange(50))
  np.testing.assert_allclose(np.asarray(sh.features).reshape(-1, 4)[valid], host, rtol=1e-6, atol=1e-6)
  np.testing.assert_array_equal(np.asarray(sh.labels).reshape(-1)[valid], labels)


class SampledCluster(ToyCluster):
  """The pass's state also drives the sampler (only clusters of the first half of the examples
  are drawn), one partner example per example (its successor) and the head's parameters
  (reset to the centroids after every pass, as DeepCluster-v2's prototypes)."""

  name = "toy_sampled_cluster_test"
  partner_key = "successor"

  def make_views(self, example, seed):
    return {**super().make_views(example, seed), "partner_index": example["partner"]["index"]}

  def dataset_extras(self, state, num_examples):
    succ = ((np.arange(num_examples) + 1) % num_examples).astype(np.int32)[:, None]
    return {**super().dataset_extras(state, num_examples), "successor": succ}

  def sampler(self, state, num_examples):
    assert isinstance(state["labels"], np.ndarray)  # host numpy
    groups = np.where(np.arange(num_examples) < num_examples // 2, state["labels"], -1)
    return data.uniform_over_groups(groups)

  def after_dataset_pass(self, params, state):
    return {**params, "head": {**params["head"], "kernel": state["centroids"].T}}

  def loss(self, params, state, batch, rng, step):
    loss, (new_state, m) = super().loss(params, state, batch, rng, step)
    m = dict(m, max_index=jnp.max(batch["index"]).astype(jnp.float32),
             partner_ok=jnp.mean((batch["partner_index"] == (batch["index"] + 1) % N).astype(jnp.float32)),
             head_gap=jnp.max(jnp.abs(params["head"]["kernel"] - state["centroids"].T)))
    return loss, (new_state, m)


def test_sampler_partner_and_parameter_reset_on_8_devices(tmp_path):
  method = SampledCluster()
  result = train.train(method, toy_source(n=N, size=8), workdir=str(tmp_path), global_batch=BATCH, total_steps=9,
                       tx=optax.sgd(0.5), seed=1, checkpoint_every=100, log_every=1, progress=False)
  assert result.state.params["head"]["kernel"].sharding.is_fully_replicated
  metrics = train.read_metrics(str(tmp_path))
  assert len(metrics) == 9 and method.passes == [0, 4, 8]
  assert all(m["max_index"] < N // 2 for m in metrics)  # the sampler, from the very first step
  assert all(m["partner_ok"] == 1.0 and m["label_agree"] == 1.0 for m in metrics)
  # The head equals the centroids at the first step after each pass, and training moves it on.
  gaps = [m["head_gap"] for m in metrics]
  assert gaps[0] == gaps[4] == gaps[8] == 0.0 and min(gaps[1:4]) > 0
