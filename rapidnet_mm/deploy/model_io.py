"""Config + checkpoint -> model, through the registry of the library the config names, and the
input normalisation the model expects (from the config's data preprocessor)."""
import copy
import os.path as osp
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.config import Config

from ..runner import ConfigError, load_config


@dataclass
class InputNormalization:
    """What the model's data preprocessor does to an 8-bit image before the network.

    Attributes:
        mean: Per-channel mean in pixel units (0-255), in the channel order the network sees.
        std: Per-channel standard deviation in pixel units.
        channel_order: 'RGB' or 'BGR': the order the network sees (after any conversion).
    """
    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]
    channel_order: str

    def apply(self, image: torch.Tensor) -> torch.Tensor:
        """Normalise an NCHW image tensor in pixel units, as the data preprocessor would."""
        mean = image.new_tensor(self.mean).reshape(1, -1, 1, 1)
        std = image.new_tensor(self.std).reshape(1, -1, 1, 1)
        return (image - mean) / std


def model_registry(scope: str):
    """The ``MODELS`` registry of the library ``scope`` names."""
    if scope == 'mmpretrain':
        from mmpretrain.registry import MODELS
    elif scope == 'mmdet':
        from mmdet.registry import MODELS
    elif scope == 'mmseg':
        from mmseg.registry import MODELS
    else:
        raise ConfigError(f'default_scope {scope!r} is not one of mmpretrain, mmdet, mmseg')
    return MODELS


def load_model_config(config: str, cfg_options: Optional[dict] = None) -> Config:
    """Load a config the way tools/train.py does (scope checked, overrides applied)."""
    return load_config(config, cfg_options, 'none', None)


def build_model(cfg: Config, checkpoint: Optional[str] = None) -> nn.Module:
    """Build ``cfg.model`` through its library's registry and load ``checkpoint`` strictly.

    Args:
        cfg: A config loaded with :func:`load_model_config`.
        checkpoint: An mmengine checkpoint (or a bare state dict); None keeps random weights.

    Returns:
        The model, on CPU, in eval mode.
    """
    from mmengine.registry import DefaultScope
    from mmengine.runner import load_checkpoint
    # building can edit the config it is given (mmpretrain's batch augments do): use a copy
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = model_registry(cfg.default_scope).build(copy.deepcopy(cfg.model))
    if checkpoint is not None:
        if not osp.isfile(checkpoint):
            raise ConfigError(f'checkpoint not found: {checkpoint}')
        try:
            load_checkpoint(model, checkpoint, map_location='cpu', strict=True, logger='silent')
        except RuntimeError as err:
            deploy = getattr(getattr(model, 'backbone', None), 'deploy', None)
            hint = ('a deploy checkpoint (from tools/reparameterize.py) needs the deploy form: '
                    'use a configs/cls/deploy/ config or --cfg-options model.backbone.deploy=True'
                    if deploy is False else
                    'a training checkpoint needs the training form: drop backbone.deploy=True')
            first = str(err).strip().splitlines()
            raise ConfigError(f'{checkpoint} does not fit the model of the config ({hint}); '
                              f'{" ".join(first[:3])[:400]}') from None
    return model.eval()


def _preprocessor_cfg(cfg: Config) -> dict:
    model_pre = cfg.model.get('data_preprocessor') or {}
    top_pre = cfg.get('data_preprocessor') or {}
    merged = dict(top_pre)
    merged.update(model_pre)
    return merged


def input_normalization(cfg: Config) -> InputNormalization:
    """Read mean, std and channel order from the config's data preprocessor.

    Raises:
        ConfigError: the config states no mean/std (exported models must normalise exactly as
            the model was trained, so nothing is assumed).
    """
    pre = _preprocessor_cfg(cfg)
    mean, std = pre.get('mean'), pre.get('std')
    if mean is None or std is None:
        raise ConfigError('the config has no data_preprocessor mean/std; set '
                          'model.data_preprocessor (or data_preprocessor) mean and std, e.g. the '
                          'ImageNet ones [123.675, 116.28, 103.53] / [58.395, 57.12, 57.375]')
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise ConfigError(f'data_preprocessor mean {mean} / std {std}: an image model needs 3 '
                          'means and 3 positive stds')
    to_rgb = bool(pre.get('to_rgb', False) or pre.get('bgr_to_rgb', False))
    return InputNormalization(tuple(float(m) for m in mean), tuple(float(s) for s in std),
                              'RGB' if to_rgb else 'BGR')


def parse_input_size(values: Optional[Sequence[int]], default: Optional[Tuple[int, int]],
                     what: str) -> Tuple[int, int]:
    """``--input-size H W`` (or one value for a square) as a tuple, or ``default``."""
    if values is None:
        if default is None:
            raise ConfigError(f'{what} needs --input-size H W (e.g. --input-size 512 512)')
        return default
    if len(values) == 1:
        return int(values[0]), int(values[0])
    if len(values) != 2:
        raise ConfigError(f'--input-size takes H W (or one value for a square), got {values}')
    return int(values[0]), int(values[1])
