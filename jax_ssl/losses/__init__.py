"""Self-supervised losses: pure functions of arrays (jax + numpy only).

Every loss takes this device's shard of the batch and, under ``shard_map`` or ``pmap``, the
mapped axis as ``axis_name`` (None when the whole batch is in one array, including plain
``jit`` with sharded arrays). Losses compute in at least float32 (float64 stays float64) and
return the mean over the GLOBAL batch, the same value on every device; the gradient each
device takes with respect to its own inputs is the matching slice of the one-device gradient.
Under ``pmap`` (and ``shard_map(check_vma=False)``) a gradient with respect to a replicated
parameter is this device's share: reduce it across devices with ``psum``. Under
``shard_map`` with its default ``check_vma=True`` such gradients come out already summed.
"""

from jax_ssl.losses._byol import byol_loss
from jax_ssl.losses._colorization import (
    colorization_annealed_mean,
    colorization_loss,
    colorization_rebalance_weights,
    colorization_soft_encode,
)
from jax_ssl.losses._common import l2_normalize
from jax_ssl.losses._detcon import detcon_loss, mask_pool
from jax_ssl.losses._inpainting import gan_discriminator_loss, gan_generator_loss, inpainting_l2
from jax_ssl.losses._mae import mae_loss, mae_num_visible, mae_random_mask, normalize_patches, patchify, unpatchify
from jax_ssl.losses._msn import msn_loss, msn_sinkhorn, sharpen
from jax_ssl.losses._nt_xent import nt_xent
from jax_ssl.losses._pretext import (
    CONTEXT_OFFSETS,
    ROTATION_DEGREES,
    accuracy,
    classification_loss,
    context_label,
    rotate_batch,
)
from jax_ssl.losses._scan import scan_loss, scan_loss_terms, scan_selflabel_loss, scan_selflabel_terms
from jax_ssl.losses._smog import smog_assign, smog_group_update, smog_loss
from jax_ssl.losses._swav import sinkhorn, swav_codes, swav_loss

__all__ = [
    "CONTEXT_OFFSETS",
    "ROTATION_DEGREES",
    "accuracy",
    "byol_loss",
    "classification_loss",
    "colorization_annealed_mean",
    "colorization_loss",
    "colorization_rebalance_weights",
    "colorization_soft_encode",
    "context_label",
    "detcon_loss",
    "gan_discriminator_loss",
    "gan_generator_loss",
    "inpainting_l2",
    "l2_normalize",
    "mae_loss",
    "mae_num_visible",
    "mae_random_mask",
    "mask_pool",
    "msn_loss",
    "msn_sinkhorn",
    "normalize_patches",
    "patchify",
    "nt_xent",
    "rotate_batch",
    "scan_loss",
    "scan_loss_terms",
    "scan_selflabel_loss",
    "scan_selflabel_terms",
    "sharpen",
    "smog_assign",
    "smog_group_update",
    "smog_loss",
    "sinkhorn",
    "swav_codes",
    "swav_loss",
    "unpatchify",
]
