"""Non-trivial weights for the tests that fold or export a RapidNet: a wrong fold must show."""
import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

from rapidnet_mm.models.layers import LayerScale


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BN statistics and affine parameters, and layer scales of order 1, so that a
    wrong fold shows up (with gamma = 1e-5 the residual branches would hide it)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, _BatchNorm):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            elif isinstance(m, LayerScale):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 0.5 + 0.25)
            elif isinstance(m, nn.Conv2d) and m.bias is not None:
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return model
