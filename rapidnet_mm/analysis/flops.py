"""Parameters and multiply-accumulates (MACs) of a model for one image, as tools/analysis_tools/get_flops.py
prints them and tools/analysis_tools/benchmark.py uses them for its fraction-of-peak column.

What is counted: the multiply-accumulates of every convolution (``nn.Conv2d``: output elements x
input channels per group x kernel area; the deformable ablation's convolutions likewise, without
their bilinear sampling) and every ``nn.Linear`` (output elements x input features). Norm layers,
activations, pooling, additions and the layer scales are not counted; that is how the paper's
figures are computed.
"""
from typing import Dict, Tuple

import torch
import torch.nn as nn


def count_macs(model: nn.Module, shape: Tuple[int, int]) -> Dict[str, int]:
    """MACs of one forward pass of a ``(1, 3, H, W)`` zero image, by layer kind.

    Args:
        model: An OpenMMLab model (called with ``mode='tensor'``) or a plain module.
        shape: ``(H, W)``.

    Returns:
        ``{'conv': ..., 'linear': ..., 'total': ...}``.
    """
    from rapidnet_mm.models.mldc import DeformableConvNorm
    counts = {'conv': 0, 'linear': 0}

    def conv_hook(module: nn.Conv2d, inputs, output: torch.Tensor) -> None:
        kh, kw = module.kernel_size
        counts['conv'] += output.numel() * (module.in_channels // module.groups) * kh * kw

    def deform_hook(module: DeformableConvNorm, inputs, output: torch.Tensor) -> None:
        in_channels = module.weight.shape[1]
        counts['conv'] += output.numel() * in_channels * module.kernel_size**2

    def linear_hook(module: nn.Linear, inputs, output: torch.Tensor) -> None:
        counts['linear'] += output.numel() * module.in_features

    handles = []
    for module in model.modules():
        for kind, hook in ((nn.Conv2d, conv_hook), (nn.Linear, linear_hook),
                           (DeformableConvNorm, deform_hook)):
            if isinstance(module, kind):
                handles.append(module.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            x = torch.zeros(1, 3, *shape)
            model(x, mode='tensor') if _is_openmmlab(model) else model(x)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    counts['total'] = counts['conv'] + counts['linear']
    return counts


def _is_openmmlab(model: nn.Module) -> bool:
    from mmengine.model import BaseModel
    return isinstance(model, BaseModel)


def count_params(model: nn.Module) -> int:
    """All parameters (trainable or not)."""
    return sum(p.numel() for p in model.parameters())
