"""The input normalisation a model expects, read from its config's data preprocessor: what the
exported graphs build in, so that they take plain 8-bit pixels."""
from dataclasses import dataclass
from typing import Tuple

import torch
from mmengine.config import Config

from ..config import ConfigError


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
