"""SPINNet in PyTorch (DESIGN.md section 3), one file per part as RAFT's ``core/``.

* ``blocks.py``: green (3x3 conv + BN + LeakyReLU) and yellow (the same, stride 2) blocks;
* ``extractor.py``: the feature pyramid (two instances: reference and sample);
* ``warp.py``: the prop layer, ``warp(image, d) = image(x - d)`` with ``grid_sample``;
* ``cost_volume.py``: the PWC-Net cost volume in plain PyTorch;
* ``estimators.py``: PhaseNet, TNet, PhaseRefiner, TRefiner;
* ``spinnet.py``: :class:`SPINNet` composing them, coarse to fine;
* ``config.py``: :class:`SPINNetConfig` and the ``"full"``/``"lite"``/``"tiny"`` presets;
* ``loss.py``: Eq. 4 pair error and the multi-level training loss;
* ``predict.py``: numpy in, numpy out; checkpoints.

Conventions: displacements are ``(B, 2, H, W)`` with channel 0 = dx and 1 = dy, in
full-resolution pixels at every level; transmission is ``(B, 1, H, W)``; the forward model is
``sample(y, x) = T(y, x) * reference(y - dy, x - dx)``.
"""
from .config import PRESETS, SPINNetConfig, get_config
from .cost_volume import CostVolume, channel_of_shift, cost_volume, shift_of_channel
from .loss import DEFAULT_WEIGHTS, multilevel_loss, pair_error
from .predict import load_checkpoint, load_state, predict, read_checkpoint, save_checkpoint
from .spinnet import SPINNet
from .warp import inverse_warp, warp

__all__ = [
    "SPINNet", "SPINNetConfig", "get_config", "PRESETS",
    "warp", "inverse_warp", "cost_volume", "CostVolume", "shift_of_channel", "channel_of_shift",
    "pair_error", "multilevel_loss", "DEFAULT_WEIGHTS",
    "predict", "save_checkpoint", "load_checkpoint", "load_state", "read_checkpoint",
]
