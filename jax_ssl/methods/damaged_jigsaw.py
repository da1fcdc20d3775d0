"""Completing damaged jigsaw puzzles (Kim, Cho, Yoo & Kweon, WACV 2018, "Learning Image
Representations by Completing Damaged Jigsaw Puzzles").

The puzzle is Jigsaw's (`ops.jigsaw_tiles`: 3x3 tiles with gaps, shuffled by one of P
maximal-Hamming permutations), then damaged (`ops.damaged_jigsaw_puzzle`): one position is
left blank and the colour is dropped from the other eight tiles (each is the grey image of its
CIE L, standardized on its own). One network recovers all three kinds of damage:

* the permutation: Jigsaw's context-free network (`TiledClassifier`: one trunk and fc6 per
  tile, fc7 and the P-way classifier on the nine concatenated fc6 outputs, the blank included);
* the missing tile's colour pixels: a `models.DCGANGenerator` on the same concatenation
  (inpainting: `losses.inpainting_l2`, weight 1 on every pixel of the tile, pixels in [-1, 1]);
* every tile's colour: Colorization's decoder (`ColorHead`) on each tile's last trunk map,
  313-style ab bins at a quarter of the tile's resolution, soft-encoded and class-rebalanced by
  the training set's colour prior (`losses.colorization_loss`; the blank tile's targets are zero,
  so the loss skips it as a grey tile). The prior is estimated by `Colorization.estimate_prior`
  and kept in the method state, as Colorization's.

The parts are this library's Jigsaw, inpainting and Colorization parts, not copies.

Training schedule: each task's loss is switched on at a fraction of the run (`stage_starts`),
so the run can be staged (the default: the permutation alone for the first third, then all
three tasks) or joint from the first step (all 0). The paper's text was not available to this
implementation (the reference search has its abstract only); its exact staging is not
reproduced here, the schedule is a configurable assumption and the quick config's docstring gives
the validation-split comparison of staged vs joint. The paper's inpainting branch may also use
an adversarial term (as Context Encoders); this implementation has the L2 term only.

Evaluation: `embed` gives the trunk's pooled features of the whole image, grey (colour was
never seen) and standardized like the tiles (`eval_preprocess`). The held-out report
(`heldout_terms`) adds the permutation accuracy ("jigsaw_top1", %), the squared error of the
generated tile ("hole_mse", pixels in [0, 1]) next to that of the mean colour ("mean_fill_mse"),
and the colour cross-entropy ("color_ce") next to predicting the prior ("prior_ce").
`write_artifacts` draws held-out puzzles as (damaged input, completed, original).
"""

from __future__ import annotations

import os
from typing import Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import tensorflow as tf

from jax_ssl import losses, models
from jax_ssl.data import center_view, ops
from jax_ssl.methods._base import Method
from jax_ssl.methods._common import module_signature, save_image_grid
from jax_ssl.methods._parts import apply_bn
from jax_ssl.methods._pretext import TiledClassifier
from jax_ssl.methods.colorization import ColorHead, Colorization, annealed_rgb

TASKS = ("jigsaw", "color", "inpaint")


class DamagedJigsawNet(TiledClassifier):
  """Tiles [B, T, t, t, 3] -> {"jigsaw": [B, P], "color": [B, T, t/s, t/s, Q], "inpaint": [B, t, t, 3]}."""

  num_bins: int = 0
  tile: int = 64
  ab_stride: int = 4
  color_width: int = 128
  decoder_width: int = 64

  def setup(self):
    super().setup()
    side = self.tile // self.ab_stride
    self.color_head = ColorHead(self.num_bins, out_hw=(side, side), width=self.color_width)
    self.inpaint_head = models.DCGANGenerator(image_size=self.tile, width=self.decoder_width)

  def __call__(self, x, *, train: bool):
    if x.ndim != 5:
      raise ValueError(f"DamagedJigsawNet expects tiles [B, T, h, w, C], got {x.shape}")
    b, t = x.shape[:2]
    fmap, e = self.tile_map_and_embedding(x.reshape((b * t,) + x.shape[2:]), train=train)
    cat = e.reshape(b, t * e.shape[-1])  # tile order preserved, the blank included
    color = self.color_head(fmap, train=train)
    return {"jigsaw": self.head(cat, train=train), "color": color.reshape((b, t) + color.shape[1:]),
            "inpaint": self.inpaint_head(cat, train=train)}


def assemble_tiles(tiles: np.ndarray, *, grid: int, gap: int = 1) -> np.ndarray:
  """Tiles [N, T, t, t, 3] in output order -> puzzles [N, S, S, 3] (raster order, white gaps)."""
  n, _, t = tiles.shape[:3]
  side = grid * t + (grid - 1) * gap
  out = np.ones((n, side, side, 3), np.float32)
  for i in range(grid * grid):
    y, x = (i // grid) * (t + gap), (i % grid) * (t + gap)
    out[:, y:y + t, x:x + t] = tiles[:, i]
  return out


class DamagedJigsaw(Method):
  """Damaged jigsaw puzzles: permutation, missing tile and colour recovered by one network.

  Args:
    backbone: trunk, tiles [N, t, t, 3] -> pooled features (`return_map=True`: its last map).
    num_permutations, permutation_seed, permutation_criterion: as `Jigsaw`.
    resize, crop, grid, tile: the puzzle's geometry (Jigsaw's; tile a power of two times 4, the
      generator's side). channel_jitter: Jigsaw's chromatic-aberration blocker (0: the colour is
      dropped anyway).
    embed_dim, head_hidden_dims: fc6 per tile, fc7 (as Jigsaw).
    color_grid, num_neighbors, sigma, lam, prior_sigma, prior_images, min_prior_images,
      gray_threshold, color_width: Colorization's (ab grid 10, 5 neighbours, sigma 5, lambda
      0.5, ...; `color_width` the decoder's 3x3 conv). decoder_width: the generator's base width.
    weights: task -> the weight of its loss (default 1 each; tasks "jigsaw", "color", "inpaint").
    stage_starts: task -> the fraction of the run's steps at which its loss is switched on
      (default jigsaw 0, color 1/3, inpaint 1/3; all 0: joint training).
    eval_size, eval_crop_fraction: the whole-image evaluation view. temperature: the pictures'
      annealed mean (0.38).
    mean: the dataset's mean colour in [0, 1] (the "mean_fill_mse" baseline); std unused.
  """

  name = "damaged_jigsaw"
  input_description = ("the grey image of CIE L (ops.lightness_to_gray), each image standardized per channel: "
                       "[N, H, W, 3]")
  ab_stride = 4

  def __init__(self, *, backbone: nn.Module, num_permutations: int = 100, permutation_seed: int = 0,
               permutation_criterion: str = "mean", resize: int = 256, crop: int = 225, grid: int = 3,
               tile: int = 64, channel_jitter: int = 0, embed_dim: int = 512,
               head_hidden_dims: Sequence[int] = (1024,), color_grid: int = 10, num_neighbors: int = 5,
               sigma: float = 5.0, lam: float = 0.5, prior_sigma: float = 5.0, prior_images: int = 10000,
               min_prior_images: int = 16, gray_threshold: float = 5.0, color_width: int = 128,
               decoder_width: int = 64, weights: Mapping | None = None, stage_starts: Mapping | None = None,
               eval_size: int = 96, eval_crop_fraction: float = 0.875, temperature: float = 0.38,
               mean=(0.5, 0.5, 0.5), std=None):
    del std
    self.weights = _per_task("weights", weights, 1.0)
    self.stage_starts = _per_task("stage_starts", stage_starts, {"jigsaw": 0.0, "color": 1 / 3, "inpaint": 1 / 3})
    if any(not 0.0 <= v < 1.0 for v in self.stage_starts.values()):
      raise ValueError(f"stage_starts must be fractions of the run in [0, 1), got {self.stage_starts}")
    if eval_size % self.ab_stride:
      raise ValueError(f"eval_size {eval_size} is not a multiple of {self.ab_stride}")
    self.permutations = ops.hamming_permutations(num_permutations, grid=grid, seed=permutation_seed,
                                                 criterion=permutation_criterion)
    self.permutation_args = dict(num=num_permutations, seed=permutation_seed, criterion=permutation_criterion)
    # The colour part: its bins, prior estimation and loss (the network below is this method's own).
    self.color = Colorization(backbone=backbone, image_size=eval_size, grid=color_grid, num_neighbors=num_neighbors,
                              sigma=sigma, lam=lam, prior_sigma=prior_sigma, prior_images=prior_images,
                              min_prior_images=min_prior_images, gray_threshold=gray_threshold,
                              eval_crop_fraction=eval_crop_fraction, temperature=temperature)
    self.model = DamagedJigsawNet(backbone, num_classes=num_permutations, embed_dim=embed_dim,
                                  head_hidden_dims=tuple(head_hidden_dims), num_bins=len(self.color.bins), tile=tile,
                                  ab_stride=self.ab_stride, color_width=color_width, decoder_width=decoder_width)
    self.geometry = dict(resize=resize, crop=crop, grid=grid, tile=tile, channel_jitter=channel_jitter,
                         ab_stride=self.ab_stride)
    self.eval_size, self.eval_crop_fraction, self.temperature = eval_size, eval_crop_fraction, temperature
    self.fill = np.asarray(mean, np.float32) * 2.0 - 1.0  # the mean colour in the generator's [-1, 1]

  # -- data
  def make_views(self, example, seed):
    out = ops.damaged_jigsaw_puzzle(ops.to_float(example["image"]), seed, self.permutations, **self.geometry)
    return {"tiles": out["tiles"], "jigsaw_label": out["label"], "missing": out["missing"],
            "target": out["target"], "ab": out["ab"]}

  def eval_view(self, image):
    return center_view(image, size=self.eval_size, crop_fraction=self.eval_crop_fraction)

  def eval_preprocess(self, image):
    """The trunk's input: the grey image of the view's L, standardized like the tiles."""
    return ops.standardize_tile(ops.lightness_to_gray(ops.rgb_to_lab(self.eval_view(image))[..., :1]))

  def prepare_source(self, source):
    return self.color.prepare_source(source)  # the colour prior of the training set

  def restored(self, params, state):
    self.color.restored(params, state)

  # -- model
  def init(self, rng, batch):
    variables = self.model.init(rng, jnp.asarray(batch["tiles"]), train=True)
    prior = self.color.prior if self.color.prior is not None else np.full(len(self.color.bins), 1 / len(self.color.bins))
    return variables["params"], {
        "batch_stats": variables["batch_stats"], "prior": jnp.asarray(prior, jnp.float32),
        "class_weights": jnp.asarray(losses.colorization_rebalance_weights(prior, lam=self.color.lam), jnp.float32)}

  def _apply(self, params, state, tiles, *, train: bool):
    return apply_bn(self.model, {"params": params, "batch_stats": state["batch_stats"]}, tiles, train=train)

  def _color_loss(self, color_logits, ab, class_weights):
    flat = lambda x: x.reshape((-1,) + x.shape[2:])  # noqa: E731  ([B, T, ...] -> [B T, ...])
    return self.color._loss(flat(color_logits), flat(ab), class_weights)  # pylint: disable=protected-access

  def task_losses(self, out, batch, class_weights) -> dict:
    return {"jigsaw": losses.classification_loss(out["jigsaw"], batch["jigsaw_label"]),
            "color": self._color_loss(out["color"], batch["ab"], class_weights),
            "inpaint": losses.inpainting_l2(out["inpaint"], batch["target"], 1.0)}

  def active(self, step) -> dict:
    """task -> 1.0 where its stage has started at `step` (a traced scalar), else 0.0."""
    total = self.total_steps or 0
    return {k: (step >= int(round(start * total))).astype(jnp.float32) for k, start in self.stage_starts.items()}

  def loss(self, params, state, batch, rng, step):
    del rng
    out, stats = self._apply(params, state, batch["tiles"], train=True)
    terms = self.task_losses(out, batch, state["class_weights"])
    on = self.active(jnp.asarray(step))
    loss = sum(self.weights[k] * on[k] * terms[k] for k in TASKS)
    metrics = {f"{k}_loss": v for k, v in terms.items()}
    metrics.update(jigsaw_acc=losses.accuracy(out["jigsaw"], batch["jigsaw_label"]), tasks_on=sum(on.values()))
    return loss, ({**state, "batch_stats": stats}, metrics)

  def heldout_terms(self, params, state, batch):
    """[sum, count] of: the permutation accuracy in % ("jigsaw_top1"), the squared error of the
    generated tile ("hole_mse", pixels in [0, 1]) and of the mean colour ("mean_fill_mse"), the
    colour cross-entropy ("color_ce") and that of predicting the prior ("prior_ce")."""
    out, _ = self._apply(params, state, batch["tiles"], train=False)
    b = batch["tiles"].shape[0]
    n = jnp.asarray(b, jnp.float32)
    sq = lambda x: jnp.sum(jnp.square((x - batch["target"]) / 2.0))  # noqa: E731
    pixels = jnp.asarray(np.prod(batch["target"].shape), jnp.float32)
    prior = jnp.broadcast_to(jnp.log(jnp.maximum(state["prior"], 1e-12)), out["color"].shape)
    cells = jnp.asarray(np.prod(out["color"].shape[:4]), jnp.float32)
    return {"jigsaw_top1": jnp.stack([100.0 * jnp.sum(jnp.argmax(out["jigsaw"], -1) == batch["jigsaw_label"]), n]),
            "hole_mse": jnp.stack([sq(out["inpaint"]), pixels]),
            "mean_fill_mse": jnp.stack([sq(jnp.broadcast_to(jnp.asarray(self.fill), batch["target"].shape)), pixels]),
            "color_ce": jnp.stack([self._color_loss(out["color"], batch["ab"], state["class_weights"]) * cells, cells]),
            "prior_ce": jnp.stack([self._color_loss(prior, batch["ab"], state["class_weights"]) * cells, cells])}

  def embed(self, params, state, images):
    return self.model.apply({"params": params, "batch_stats": state["batch_stats"]}, images,
                            method=TiledClassifier.features)

  def embed_blocks(self, params, state, images):
    return self.model.apply({"params": params, "batch_stats": state["batch_stats"]}, images,
                            method=TiledClassifier.block_features)

  def complete(self, params, state, puzzles: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Puzzles of `ops.damaged_jigsaw_puzzle(..., return_rgb=True)` (batched numpy) -> (damaged
    input, completed, original), each [N, S, S, 3] in [0, 1] with the tiles in output order:
    the input's tiles as their grey L (the blank white), the completion's tiles colourized by
    the annealed mean and the missing one generated."""
    rgb = np.asarray(puzzles["rgb"], np.float32)  # [N, T, t, t, 3]
    n, t = rgb.shape[:2]
    out, _ = jax.jit(lambda p, s, x: self._apply(p, s, x, train=False))(params, state, jnp.asarray(puzzles["tiles"]))
    lightness = ops.rgb_to_lab(tf.constant(rgb.reshape((n * t,) + rgb.shape[2:]))).numpy()[..., :1]
    color_logits = np.asarray(out["color"]).reshape((n * t,) + out["color"].shape[2:])
    gray, colored = (x.reshape(rgb.shape) for x in annealed_rgb(lightness, color_logits, self.color.bins,
                                                                temperature=self.temperature))
    rows = np.arange(n)
    missing = np.asarray(puzzles["missing"])
    gray[rows, missing] = 1.0
    colored[rows, missing] = np.clip((np.asarray(out["inpaint"]) + 1.0) / 2.0, 0.0, 1.0)
    grid = self.geometry["grid"]
    return tuple(assemble_tiles(x, grid=grid) for x in (gray, colored, rgb))

  def write_artifacts(self, workdir, *, params, state, source, heldout=None):
    """puzzles.png: (damaged input, completed, original) for 8 held-out puzzles."""
    src = heldout if heldout is not None else source
    idx = np.linspace(0, len(src) - 1, min(8, len(src))).round().astype(int)
    made = [ops.damaged_jigsaw_puzzle(ops.to_float(tf.constant(src.image(int(i)))), tf.constant([7, int(i)], tf.int64),
                                      self.permutations, return_rgb=True, **self.geometry) for i in idx]
    puzzles = {k: np.stack([m[k].numpy() for m in made]) for k in ("tiles", "missing", "rgb")}
    panels = np.stack(self.complete(params, state, puzzles), axis=1)
    path = os.path.join(workdir, "puzzles.png")
    return [save_image_grid(panels, path, min_side=96, pad=12, title="damaged | completed | original")]

  def signature(self):
    return {"method": self.name, "model": module_signature(self.model), "permutations": self.permutation_args,
            "color_grid": self.color.grid}


def _per_task(what: str, given: Mapping | None, default) -> dict:
  """{task: value} for the three tasks, `default` (a value or a dict) where `given` is silent."""
  base = dict(default) if isinstance(default, Mapping) else {k: default for k in TASKS}
  unknown = sorted(set(given or {}) - set(TASKS))
  if unknown:
    raise ValueError(f"damaged_jigsaw: {what} for unknown tasks {unknown}; tasks: {list(TASKS)}")
  return {k: float((given or {}).get(k, base[k])) for k in TASKS}
