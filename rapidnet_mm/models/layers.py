"""Building blocks of RapidNet that know how to fold themselves for inference.

Every learnable layer here has a training form and a deploy form. ``reparameterize()`` turns the
first into the second in place, so that in eval mode both give the same output to float
tolerance: BatchNorm folds into the convolution before it, a per-channel layer scale folds into the
last convolution of its branch, and the identity of the conditional positional encoding folds into
the centre tap of its depthwise kernel.
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmcv.cnn.bricks import DropPath


def fuse_conv_norm(weight: torch.Tensor, bias: Optional[torch.Tensor],
                   norm: nn.Module) -> Tuple[torch.Tensor, torch.Tensor]:
    """Return the weight and bias of a convolution with the BatchNorm after it folded in.

    Args:
        weight: Convolution weight, ``(out, in/groups, kh, kw)``.
        bias: Convolution bias or None.
        norm: A BatchNorm-like layer (running statistics, affine weight and bias).

    Returns:
        The folded ``(weight, bias)``.
    """
    if not hasattr(norm, 'running_var') or norm.running_var is None:
        raise TypeError(f'cannot fold {type(norm).__name__} into a convolution: only BatchNorm '
                        'layers with running statistics can be reparameterised')
    std = (norm.running_var + norm.eps).sqrt()
    gamma = norm.weight if norm.affine else torch.ones_like(std)
    beta = norm.bias if norm.affine else torch.zeros_like(std)
    scale = gamma / std
    if bias is None:
        bias = torch.zeros_like(norm.running_mean)
    return weight * scale.reshape(-1, 1, 1, 1), beta + (bias - norm.running_mean) * scale


class ConvNorm(nn.Module):
    """Conv2d, then a norm layer, then an optional activation; folds to one biased Conv2d.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        kernel_size: Square kernel size.
        stride: Stride.
        dilation: Dilation; padding keeps the size at stride 1 (``dilation * (k - 1) // 2``).
        groups: Convolution groups.
        bias: Whether the training-form convolution has a bias.
        norm_cfg: Norm layer config (mmcv ``build_norm_layer``).
        act_cfg: Activation config, or None for no activation.
        deploy: Build the folded form directly (a biased conv and no norm).
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int = 1,
                 stride: int = 1,
                 dilation: int = 1,
                 groups: int = 1,
                 bias: bool = True,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: Optional[dict] = None,
                 deploy: bool = False) -> None:
        super().__init__()
        padding = dilation * (kernel_size - 1) // 2
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation,
                              groups, bias=bias or deploy)
        self.norm = nn.Identity() if deploy else build_norm_layer(norm_cfg, out_channels)[1]
        self.act = build_activation_layer(act_cfg) if act_cfg else nn.Identity()
        self.deploy = deploy

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))

    @torch.no_grad()
    def reparameterize(self, out_scale: Optional[torch.Tensor] = None) -> None:
        """Fold the norm (and ``out_scale``, a per-output-channel factor applied after this
        layer, allowed only without activation) into the convolution."""
        if out_scale is not None and not isinstance(self.act, nn.Identity):
            raise ValueError('an output scale can only be folded into a ConvNorm without activation')
        if self.deploy:
            if out_scale is not None:
                raise ValueError('this ConvNorm is already in deploy form')
            return
        weight, bias = fuse_conv_norm(self.conv.weight, self.conv.bias, self.norm)
        if out_scale is not None:
            out_scale = out_scale.reshape(-1)
            weight, bias = weight * out_scale.reshape(-1, 1, 1, 1), bias * out_scale
        conv = self.conv
        self.conv = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                              conv.padding, conv.dilation, conv.groups, bias=True,
                              device=weight.device, dtype=weight.dtype)
        self.conv.weight.copy_(weight)
        self.conv.bias.copy_(bias)
        self.norm = nn.Identity()
        self.deploy = True


class LayerScale(nn.Module):
    """Learnable per-channel scale of an NCHW tensor (``gamma`` of shape ``(C, 1, 1)``).

    Args:
        channels: Number of channels.
        init_value: Initial value of every scale.
    """

    def __init__(self, channels: int, init_value: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels, 1, 1), float(init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight


def make_layer_scale(channels: int, init_value: Optional[float], deploy: bool) -> nn.Module:
    """A LayerScale, or an Identity when disabled (``init_value`` None) or folded (deploy)."""
    if deploy or init_value is None:
        return nn.Identity()
    return LayerScale(channels, init_value)


def make_drop_path(rate: float) -> nn.Module:
    """Stochastic depth at ``rate``, or an Identity for rate 0."""
    return DropPath(rate) if rate > 0 else nn.Identity()


def layer_scale_weight(layer_scale: nn.Module) -> Optional[torch.Tensor]:
    """The scale held by ``make_layer_scale``'s module, or None for an Identity."""
    return layer_scale.weight if isinstance(layer_scale, LayerScale) else None


class ConditionalPositionalEncoding(nn.Module):
    """``x + dwconv7x7(x)``; the deploy form is one depthwise conv with the identity folded in.

    Args:
        channels: Number of channels.
        kernel_size: Depthwise kernel size.
        deploy: Build the folded form directly.
    """

    def __init__(self, channels: int, kernel_size: int = 7, deploy: bool = False) -> None:
        super().__init__()
        conv = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2,
                         groups=channels, bias=True)
        # Different attribute names keep training and deploy checkpoints from loading into each
        # other's form by accident: their tensors have the same shapes but not the same meaning.
        # The training form holds ``reparam_conv = None``: forward tests it against None, which
        # TorchScript decides when compiling, so each form compiles only its own branch.
        self.reparam_conv: Optional[nn.Conv2d] = conv if deploy else None
        if not deploy:
            self.conv = conv
        self.deploy = deploy

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reparam_conv is not None:
            return self.reparam_conv(x)
        return x + self.conv(x)

    @torch.no_grad()
    def reparameterize(self) -> None:
        if self.deploy:
            return
        conv = self.conv
        k = conv.kernel_size[0]
        weight = conv.weight.clone()
        weight[:, 0, k // 2, k // 2] += 1.0
        self.reparam_conv = nn.Conv2d(conv.in_channels, conv.out_channels, k,
                                      padding=conv.padding, groups=conv.groups, bias=True,
                                      device=weight.device, dtype=weight.dtype)
        self.reparam_conv.weight.copy_(weight)
        self.reparam_conv.bias.copy_(conv.bias)
        del self.conv
        self.deploy = True
