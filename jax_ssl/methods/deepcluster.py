"""DeepCluster-v2 (Caron et al. 2020, "Unsupervised Learning of Visual Features by Contrasting
Cluster Assignments", NeurIPS 2020, Sec. 4 / App. B), as the official facebookresearch/swav
``main_deepclusterv2.py`` runs it.

* Views: SwAV's multi-crop (:func:`jax_ssl.data.ops.multicrop_views`), large crops first.
* Network: backbone (once per resolution group, :func:`encode_multicrop`) -> projection MLP ->
  L2-normalised embeddings ``z [V * B, D]`` (``feat_dim`` 128), crop-major.
* Memory bank: for each assignment crop (``crops_for_assign``, the two large crops) the latest
  embedding of every training image, ``bank [A, N, D]`` in the method state, written by each
  training step at the batch's example indices (after the loss, detached), so at an epoch
  boundary it holds the previous epoch's embeddings.
* Clustering (every epoch, before its first step: the trainer's dataset pass): for head ``h``,
  spherical k-means (:func:`jax_ssl.cluster.spherical_kmeans`: 10 iterations, an empty
  cluster keeps its centroid, then one more assignment) on the bank of assignment crop
  ``h mod A``, started from ``K_h`` distinct random rows of it; the head's prototypes are
  *overwritten* by the centroids and every image gets the head's cluster as its target.
* Loss: for each head, cross-entropy of ``z P_h^T / temperature`` (every crop of an image)
  against the image's assignment (``ignore_index`` -100 for images without one), averaged
  over the heads.

Where this differs from the official code, and why:

* The prototypes are method state, not parameters: the official runs freeze them
  (``--freeze_prototypes_niters 300000``, more iterations than any of its runs: 800 epochs of
  312 steps is 250k) and overwrite them with the centroids every epoch, so they are never
  trained; keeping them out of the optimizer says so and gives them no weight decay.
* The initial memory bank (official ``init_memory``: one pass of the augmented loader before
  training) is the projections of the evaluation view of every image (the trainer's dataset
  pass at step 0); afterwards the bank holds the training crops' embeddings as the official.
* The bank has a row for every example (the official keeps the ``len(loader) * batch`` rows of
  the epoch's samples); examples the epoch's last partial batch leaves out keep their
  previous embedding.
* The official draws the initial centroids with torch's global RNG; here they come from
  ``seed`` and the step, so a resumed run clusters exactly as an uninterrupted one.

Collapse watch: the clusters each head uses after k-means are logged (``clusters_in_use``,
the smallest over heads) and a run whose k-means puts every image in `collapse_clusters` or
fewer clusters stops with a message.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jax_ssl import cluster, data, parallel
from jax_ssl.data import ops
from jax_ssl.methods._base import Method
from jax_ssl.methods._common import Normalizer, eval_input, module_signature, split_views
from jax_ssl.methods._parts import Prototypes, encode_multicrop, l2_normalize
from jax_ssl.models import MLP

IGNORE = -100  # torch's CrossEntropyLoss ignore_index, the official "no assignment"


class MultiCropProjector(nn.Module):
  """Multi-resolution backbone -> projection MLP -> L2-normalised embeddings ``[V * B, D]``."""

  backbone: nn.Module
  head: nn.Module

  @nn.compact
  def __call__(self, crops: Sequence[jax.Array], *, train: bool):
    return l2_normalize(self.head(encode_multicrop(self.backbone, crops, train=train), train=train))

  def features(self, x):
    return self.backbone(x, train=False)

  def block_features(self, x):
    return self.backbone(x, train=False, return_blocks=True)


def pseudo_label_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Mean softmax cross-entropy over the rows whose label is not `IGNORE` (-100), as torch's
  ``CrossEntropyLoss(ignore_index=-100)``; 0 when every row is ignored."""
  keep = labels != IGNORE
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.where(keep, labels, 0))
  return jnp.sum(jnp.where(keep, ce, 0.0)) / jnp.maximum(jnp.sum(keep), 1)


def balanced_random_labels(rng, num_examples: int, num_classes: int) -> jax.Array:
  """``i mod K`` for every example, randomly permuted: every cluster (almost) equally used (the
  labels a run starts from before its first clustering; SeLA's official initial labelling)."""
  return jax.random.permutation(rng, jnp.arange(num_examples, dtype=jnp.int32) % num_classes)


class DeepClusterV2(Method):
  """DeepCluster-v2.

  Args:
    backbone: a Flax module mapping images [N, H, W, 3] to features [N, F] (`train=` kwarg).
    crop_sizes, crop_counts, crop_scales: multi-crop groups (side, number, area range), large
      crops first. ImageNet: (224, 96), (2, 6), ((0.14, 1), (0.05, 0.14)).
    proj_hidden_dims, proj_dim: projection MLP (2048 hidden with BN + ReLU, ``feat_dim`` 128).
    num_prototypes: K of each head (official 3000, 3000, 3000); every K at most N.
    temperature: of the prototype scores (0.1).
    kmeans_iters: spherical k-means iterations per head per epoch (10).
    assign_crops: the crops whose embeddings fill the memory bank (the two large crops);
      head h clusters the bank of ``assign_crops[h % len(assign_crops)]``.
    view_kwargs: per-crop augmentation arguments of `multicrop_views`.
    collapse_clusters: stop the run when k-means leaves this many or fewer clusters in use.
    bank_dtype: storage of the memory bank (float32; bfloat16 halves it: 1.28M x 128 x 2
      crops is 1.3 GB in float32 on every device).
    seed: the initial centroids' draws (with the step).
    mean, std: per-channel normalisation of the views.
    eval_crop_fraction: centre-crop fraction of the evaluation view (ImageNet 0.875).
  """

  name = "deepcluster_v2"
  dataset_pass_every = ("epochs", 1)

  def __init__(self, *, backbone: nn.Module, crop_sizes: Sequence[int] = (224, 96),
               crop_counts: Sequence[int] = (2, 6), crop_scales=((0.14, 1.0), (0.05, 0.14)),
               proj_hidden_dims: Sequence[int] = (2048,), proj_dim: int = 128,
               num_prototypes: Sequence[int] = (3000, 3000, 3000), temperature: float = 0.1,
               kmeans_iters: int = 10, assign_crops: Sequence[int] = (0, 1), view_kwargs: dict | None = None,
               collapse_clusters: int = 1, bank_dtype: str = "float32", seed: int = 0,
               mean=ops.IMAGENET_MEAN, std=ops.IMAGENET_STD, eval_crop_fraction: float = 0.875):
    self.crop_spec = ops.multicrop_spec(crop_sizes, crop_counts, crop_scales)
    self.crop_sizes = tuple(int(s) for s in crop_sizes)
    self.crop_counts = tuple(int(c) for c in crop_counts)
    self.crop_scales = tuple(tuple(float(v) for v in s) for s in crop_scales)
    self.num_crops = len(self.crop_spec)
    self.assign_crops = tuple(int(a) for a in assign_crops)
    if not self.assign_crops or any(not 0 <= a < self.num_crops for a in self.assign_crops):
      raise ValueError(f"assign_crops {list(assign_crops)} must index the {self.num_crops} crops")
    if isinstance(num_prototypes, int):
      num_prototypes = (num_prototypes,)
    self.num_prototypes = tuple(int(k) for k in num_prototypes)
    if not self.num_prototypes or min(self.num_prototypes) < 2:
      raise ValueError(f"num_prototypes must be one K >= 2 per head, got {list(num_prototypes)}")
    if temperature <= 0:
      raise ValueError(f"temperature must be positive, got {temperature}")
    if int(kmeans_iters) < 1:
      raise ValueError(f"kmeans_iters must be >= 1, got {kmeans_iters}")
    self.model = MultiCropProjector(backbone, MLP(tuple(proj_hidden_dims), proj_dim, use_bn=True))
    self.proj_dim = int(proj_dim)
    self.temperature = float(temperature)
    self.kmeans_iters = int(kmeans_iters)
    self.view_kwargs = dict(view_kwargs or {})
    self.collapse_clusters = int(collapse_clusters)
    self.bank_dtype = jnp.dtype(bank_dtype)
    self.seed = int(seed)
    self.normalize = Normalizer(mean, std)
    self.eval_crop_fraction = eval_crop_fraction
    self._cluster = jax.jit(self._cluster_bank)

  # -- data
  def crop_keys(self):
    return [f"crop{i}" for i in range(self.num_crops)]

  def make_views(self, example, seed):
    crops = ops.multicrop_views(ops.to_float(example["image"]), seed, sizes=self.crop_sizes, counts=self.crop_counts,
                                scales=self.crop_scales, **self.view_kwargs)
    return {**{k: self.normalize(c) for k, c in zip(self.crop_keys(), crops)}, "index": example["index"]}

  def eval_view(self, image):
    return eval_input(image, size=self.crop_sizes[0], normalize=None, crop_fraction=self.eval_crop_fraction)

  # -- model
  def _crops(self, batch):
    missing = [k for k in self.crop_keys() + ["index"] if k not in batch]
    if missing:
      raise KeyError(f"DeepCluster-v2 batch lacks {missing}; it has {sorted(batch)}")
    return [jnp.asarray(batch[k]) for k in self.crop_keys()]

  def init(self, rng, batch):
    if self.num_examples is None:
      raise ValueError("DeepCluster-v2 needs set_schedule(num_examples=N) before init (its memory bank)")
    n = self.num_examples
    if max(self.num_prototypes) > n:
      raise ValueError(f"num_prototypes {list(self.num_prototypes)}: a head has more clusters than the "
                       f"{n} training images")
    variables = self.model.init(rng, self._crops(batch), train=True)
    keys = jax.random.split(jax.random.fold_in(rng, 1), 2 * len(self.num_prototypes))
    # Before the first clustering (a run clusters at step 0, so only steps taken outside the
    # trainer see these): random unit prototypes and balanced random assignments.
    protos = tuple(l2_normalize(jax.random.normal(keys[2 * h], (k, self.proj_dim)))
                   for h, k in enumerate(self.num_prototypes))
    assignments = jnp.stack([balanced_random_labels(keys[2 * h + 1], n, k) for h, k in enumerate(self.num_prototypes)])
    state = {"batch_stats": variables["batch_stats"],
             "bank": jnp.zeros((len(self.assign_crops), n, self.proj_dim), self.bank_dtype),
             "prototypes": protos, "assignments": assignments,
             "clusters_in_use": jnp.asarray([float(k) for k in self.num_prototypes], jnp.float32)}
    return variables["params"], state

  def _project(self, params, batch_stats, crops, train):
    variables = {"params": params, "batch_stats": batch_stats}
    if not train:
      return self.model.apply(variables, crops, train=False), batch_stats
    z, upd = self.model.apply(variables, crops, train=True, mutable=["batch_stats"])
    return z, upd["batch_stats"]

  def loss(self, params, state, batch, rng, step):
    del rng, step
    z, batch_stats = self._project(params, state["batch_stats"], self._crops(batch), train=True)
    index = jnp.asarray(batch["index"])
    loss = 0.0
    for h, protos in enumerate(state["prototypes"]):
      targets = jnp.tile(state["assignments"][h][index], self.num_crops)  # torch .repeat: crop-major
      loss = loss + pseudo_label_cross_entropy(z @ protos.T / self.temperature, targets)
    loss = loss / len(self.num_prototypes)
    z_crops = split_views(jax.lax.stop_gradient(z), self.num_crops)
    bank = state["bank"]
    for i, a in enumerate(self.assign_crops):
      bank = bank.at[i, index].set(z_crops[a].astype(bank.dtype))
    metrics = Prototypes.stats([z_crops[a] for a in self.assign_crops], state["prototypes"][0])
    metrics["clusters_in_use"] = jnp.min(state["clusters_in_use"])
    return loss, (dict(state, batch_stats=batch_stats, bank=bank), metrics)

  def embed(self, params, state, images):
    return self.model.apply({"params": params, "batch_stats": state["batch_stats"]}, images,
                            method=MultiCropProjector.features)

  def embed_blocks(self, params, state, images):
    return self.model.apply({"params": params, "batch_stats": state["batch_stats"]}, images,
                            method=MultiCropProjector.block_features)

  def cluster_logits(self, params, state, images):
    """Scores of the first head's prototypes for preprocessed images (the clustering report)."""
    z, _ = self._project(params, state["batch_stats"], [images], train=False)
    return z @ state["prototypes"][0].T

  # -- dataset pass
  def pass_features(self, params, state, images):
    z, _ = self._project(params, state["batch_stats"], [images], train=False)
    return z

  def pass_needs_features(self, step):
    return step == 0  # afterwards the training steps have filled the bank

  def _cluster_bank(self, state, features, step):
    bank = state["bank"]
    if features is not None:  # the initial bank: every assignment crop's rows = the evaluation view's projection
      z = parallel.per_example(features, features.features, bank.shape[1])
      bank = jnp.broadcast_to(l2_normalize(z).astype(bank.dtype)[None], bank.shape)
    key = jax.random.fold_in(jax.random.key(self.seed), step)
    protos, assignments, in_use = [], [], []
    for h, k in enumerate(self.num_prototypes):
      x = bank[h % len(self.assign_crops)].astype(jnp.float32)
      rows = jax.random.permutation(jax.random.fold_in(key, h), x.shape[0])[:k]
      c, a = cluster.spherical_kmeans(x, x[rows], num_iters=self.kmeans_iters)
      protos.append(c)
      assignments.append(a)
      in_use.append(jnp.sum(jnp.bincount(a, length=k) > 0).astype(jnp.float32))
    return dict(state, bank=bank, prototypes=tuple(protos), assignments=jnp.stack(assignments),
                clusters_in_use=jnp.stack(in_use))

  def dataset_pass(self, params, state, features, *, step):
    del params
    return self._cluster(state, features, jnp.asarray(step, jnp.int32))

  # -- run hooks
  def check_metrics(self, metrics):
    in_use = metrics.get("clusters_in_use")
    if in_use is not None and in_use <= self.collapse_clusters:
      return (f"DeepCluster-v2 collapsed: k-means put every image in {in_use:.0f} cluster(s) of "
              f"{min(self.num_prototypes)}; lower the learning rate or raise the temperature")
    return None

  def signature(self):
    return {"method": self.name, "model": module_signature(self.model),
            "crops": [list(self.crop_sizes), list(self.crop_counts)], "prototypes": list(self.num_prototypes),
            "bank": [len(self.assign_crops), self.proj_dim]}



# ------------------------------------------------------------------------------ DeepCluster (v1)
class ClusterClassifier(nn.Module):
  """DeepCluster's network: backbone -> classifier MLP (official AlexNet ``classifier``: for each
  hidden width, dropout then Linear then ReLU) -> ``top_layer`` Linear of K clusters.

  `pass_features` is the classifier's output without its last ReLU (the official removes it
  while computing the features to cluster); with no hidden widths, the backbone's features.
  """

  backbone: nn.Module
  hidden_dims: Sequence[int]
  dropout: float
  num_clusters: int

  def setup(self):
    init = nn.initializers.normal(0.01)  # official _initialize_weights: Linear N(0, 0.01), bias 0
    self.fcs = [nn.Dense(d, kernel_init=init, name=f"fc{i}") for i, d in enumerate(self.hidden_dims)]
    self.drops = [nn.Dropout(self.dropout) for _ in self.hidden_dims]
    self.top_layer = nn.Dense(self.num_clusters, kernel_init=init, name="top_layer")

  def _classifier(self, x, train):
    h = self.backbone(x, train=train)
    for i, (drop, fc) in enumerate(zip(self.drops, self.fcs)):
      h = fc(drop(h, deterministic=not train))
      if i < len(self.fcs) - 1:
        h = nn.relu(h)
    return h

  def __call__(self, x, *, train: bool):
    h = self._classifier(x, train)
    return self.top_layer(nn.relu(h) if self.fcs else h)

  def pass_features(self, x):
    return self._classifier(x, False)

  def features(self, x):
    return self.backbone(x, train=False)

  def block_features(self, x):
    return self.backbone(x, train=False, return_blocks=True)


class DeepCluster(Method):
  """DeepCluster (Caron, Bojanowski, Joulin & Douze 2018, "Deep Clustering for Unsupervised
  Learning of Visual Features", ECCV), as the official facebookresearch/deepcluster ``main.py``
  runs it.

  * Input: Sobel-filtered (:func:`jax_ssl.data.ops.sobel`: channel mean, then the two 3x3
    Sobel filters) normalized images, for training, clustering and evaluation alike (the
    official ``model.sobel`` sits in front of the network); ``sobel=False`` feeds RGB.
  * Training view: random resized crop (0.08-1), horizontal flip (the official ``tra``).
  * Every ``reassign_epochs`` epochs, before the epoch (the trainer's dataset pass): the
    features (`ClusterClassifier.pass_features`, inference mode, centre crop) of the whole
    training set, PCA-whitened to ``pca_dim`` dimensions and L2-normalized
    (:func:`jax_ssl.parallel.pca_whiten`, the official ``preprocess_features``), clustered by
    k-means (:func:`jax_ssl.parallel.kmeans`: ``kmeans_iters`` 20 Lloyd iterations on every
    point, no subsampling, faiss's empty-cluster split) into ``num_clusters`` groups; the
    cluster of every image is its pseudo-label.
  * After each pass the classifier ``top_layer`` is re-initialized (N(0, 0.01), bias 0) and
    its optimizer state reset (the official builds a new layer and a new SGD every epoch);
    the epoch samples every cluster equally often (`data.uniform_over_groups`, the official
    ``UnifLabelSampler``).
  * Loss: cross-entropy of the top layer's logits against the pseudo-labels.

  Logged: ``largest_cluster`` (the largest cluster's share of the images) and ``kmeans_loss``
  (the mean squared distance to the assigned centroid, the official "clustering loss"); a
  run whose largest cluster reaches ``collapse_share`` of the images stops with a message.

  Where this differs from the official code: the k-means seed is a function of ``seed`` and
  the step (the official draws ``np.random.randint(1234)``), so a resumed run clusters as an
  uninterrupted one; the top layer's step uses the run's learning-rate schedule (the official
  top-layer SGD has the constant base rate).

  Args:
    backbone: a Flax module mapping images [N, H, W, C] to features [N, F] (`train=` kwarg).
    num_clusters: K (ImageNet 10,000).
    pca_dim: the PCA-whitening dimension (256); at most the features' dimension.
    kmeans_iters: Lloyd iterations per pass (20).
    head_hidden_dims, dropout: the classifier MLP between the backbone and the top layer
      (AlexNet's 4096, 4096 with dropout 0.5; () for ResNets, which cluster the pooled features).
    sobel: the Sobel input filter.
    reassign_epochs: epochs between clusterings (1).
    image_size, crop_scale: the training view.
    collapse_share: stop the run when one cluster holds this share of the images.
    seed: k-means initializations and the top layer's re-initializations (with the step).
    mean, std: per-channel normalisation (before the Sobel filter).
    eval_crop_fraction: centre-crop fraction of the evaluation / clustering view.
  """

  name = "deepcluster"
  reset_optimizer_after_pass = ("top_layer",)

  def __init__(self, *, backbone: nn.Module, num_clusters: int = 10000, pca_dim: int = 256, kmeans_iters: int = 20,
               head_hidden_dims: Sequence[int] = (), dropout: float = 0.5, sobel: bool = True,
               reassign_epochs: int = 1, image_size: int = 224, crop_scale: Sequence[float] = (0.08, 1.0),
               collapse_share: float = 0.5, seed: int = 0, mean=ops.IMAGENET_MEAN, std=ops.IMAGENET_STD,
               eval_crop_fraction: float = 0.875):
    if int(num_clusters) < 2 or int(pca_dim) < 1 or int(kmeans_iters) < 1 or int(reassign_epochs) < 1:
      raise ValueError(f"DeepCluster needs num_clusters >= 2 and pca_dim, kmeans_iters, reassign_epochs >= 1; got "
                       f"{num_clusters}, {pca_dim}, {kmeans_iters}, {reassign_epochs}")
    if not 0 < collapse_share <= 1:
      raise ValueError(f"collapse_share must be in (0, 1], got {collapse_share}")
    self.num_clusters, self.pca_dim, self.kmeans_iters = int(num_clusters), int(pca_dim), int(kmeans_iters)
    self.model = ClusterClassifier(backbone, tuple(int(d) for d in head_hidden_dims), float(dropout), self.num_clusters)
    self.sobel = bool(sobel)
    self.dataset_pass_every = ("epochs", int(reassign_epochs))
    self.image_size = int(image_size)
    self.crop_scale = tuple(float(s) for s in crop_scale)
    self.collapse_share = float(collapse_share)
    self.seed = int(seed)
    self.normalize = Normalizer(mean, std)
    self.eval_crop_fraction = eval_crop_fraction
    self._cluster = jax.jit(self._cluster_features)

  @property
  def input_description(self):
    if not self.sobel:
      return Method.input_description
    return ("Sobel-filtered normalized RGB (jax_ssl.data.ops.sobel of (RGB in [0, 1] - data.mean) / data.std): "
            "[N, H, W, 2]")

  # -- data
  def _input(self, img):
    x = self.normalize(img)
    return ops.sobel(x) if self.sobel else x

  def make_views(self, example, seed):
    s = ops.split_seed(seed, 2)
    img = ops.random_resized_crop(ops.to_float(example["image"]), s[0], self.image_size, scale=self.crop_scale)
    return {"image": self._input(ops.random_flip(img, s[1])), "index": example["index"]}

  def eval_view(self, image):
    return eval_input(image, size=self.image_size, normalize=None, crop_fraction=self.eval_crop_fraction)

  def eval_preprocess(self, image):
    return self._input(self.eval_view(image))

  # -- model
  def init(self, rng, batch):
    if self.num_examples is None:
      raise ValueError("DeepCluster needs set_schedule(num_examples=N) before init (its pseudo-labels)")
    if self.num_clusters > self.num_examples:
      raise ValueError(f"num_clusters {self.num_clusters} is more than the {self.num_examples} training images")
    variables = self.model.init(rng, jnp.asarray(batch["image"]), train=False)
    # Before the first clustering (a run clusters at step 0; only steps outside the trainer see
    # these): balanced random labels.
    labels = balanced_random_labels(jax.random.fold_in(rng, 1), self.num_examples, self.num_clusters)
    return variables["params"], {"batch_stats": variables.get("batch_stats", {}), "labels": labels,
                                 "passes": jnp.zeros((), jnp.int32), "largest_cluster": jnp.zeros(()),
                                 "kmeans_loss": jnp.zeros(())}

  def _variables(self, params, state):
    return {"params": params, "batch_stats": state["batch_stats"]}

  def loss(self, params, state, batch, rng, step):
    del step
    logits, upd = self.model.apply(self._variables(params, state), jnp.asarray(batch["image"]), train=True,
                                   mutable=["batch_stats"], rngs={"dropout": rng})
    labels = state["labels"][jnp.asarray(batch["index"])]
    loss = pseudo_label_cross_entropy(logits, jnp.where(labels >= 0, labels, IGNORE))
    metrics = {"label_agreement": jnp.mean((jnp.argmax(logits, -1) == labels).astype(jnp.float32)),
               "largest_cluster": state["largest_cluster"], "kmeans_loss": state["kmeans_loss"]}
    return loss, (dict(state, batch_stats=upd.get("batch_stats", state["batch_stats"])), metrics)

  def embed(self, params, state, images):
    return self.model.apply(self._variables(params, state), images, method=ClusterClassifier.features)

  def embed_blocks(self, params, state, images):
    return self.model.apply(self._variables(params, state), images, method=ClusterClassifier.block_features)

  def cluster_logits(self, params, state, images):
    """The top layer's logits for preprocessed images (the clustering report)."""
    return self.model.apply(self._variables(params, state), images, train=False)

  # -- dataset pass
  def pass_features(self, params, state, images):
    return self.model.apply(self._variables(params, state), images, method=ClusterClassifier.pass_features)

  def _cluster_features(self, state, features, step):
    x = parallel.pca_whiten(features, dim=self.pca_dim)
    key = jax.random.fold_in(jax.random.key(self.seed), step)
    res = parallel.kmeans(x, key, num_clusters=self.num_clusters, iters=self.kmeans_iters)
    labels = parallel.per_example(x, res.assignments, self.num_examples, fill=-1)
    n = jnp.sum(features.valid)
    return dict(state, labels=labels, passes=state["passes"] + 1,
                largest_cluster=jnp.max(res.counts) / n, kmeans_loss=res.inertia / n)

  def dataset_pass(self, params, state, features, *, step):
    del params  # (pca_whiten refuses a pca_dim above the features' dimension)
    return self._cluster(state, features, jnp.asarray(step, jnp.int32))

  def after_dataset_pass(self, params, state):
    key = jax.random.fold_in(jax.random.key(self.seed + 1), state["passes"])
    top = params["top_layer"]
    fresh = {"kernel": 0.01 * jax.random.normal(key, top["kernel"].shape, top["kernel"].dtype),
             "bias": jnp.zeros_like(top["bias"])}
    return {**params, "top_layer": fresh}

  def sampler(self, state, num_examples):
    return data.uniform_over_groups(state["labels"])

  # -- run hooks
  def check_metrics(self, metrics):
    share = metrics.get("largest_cluster")
    if share is not None and share >= self.collapse_share:
      return (f"DeepCluster collapsed: k-means put {100 * share:.0f}% of the images in one cluster of "
              f"{self.num_clusters}; lower the learning rate or use more clusters")
    return None

  def signature(self):
    return {"method": self.name, "model": module_signature(self.model), "clusters": self.num_clusters,
            "pca_dim": self.pca_dim, "sobel": self.sobel}
