"""The multi-level dilated convolution (MLDC) and the block built around it.

``MultiLevelDilatedConv`` sums parallel dense 3x3 convolutions of different dilations (2 and 3 in
the paper); ``DilatedTokenMixer`` wraps it between a positional encoding and two 1x1 convolutions;
``MLDCBlock`` is that mixer and the large-kernel FFN, each on a layer-scaled residual. The
ablations of the paper's supplementary material (single-level, plain 3x3, pointwise, deformable)
are options of the same classes; the plain FFN is its own class, ``PlainFFN``. Each class folds
itself with ``reparameterize()``.
"""
from typing import Optional, Sequence

import torch
import torch.nn as nn
from mmcv.cnn import build_activation_layer, build_norm_layer
from torchvision.ops import deform_conv2d

from .layers import (ConditionalPositionalEncoding, ConvNorm, fuse_conv_norm,
                     layer_scale_weight, make_drop_path, make_layer_scale)


class MultiLevelDilatedConv(nn.Module):
    """Sum of parallel dense ``k x k`` convolutions (each with norm and activation), one per
    dilation rate: the paper's MLDC. One branch gives the single-level (SLDC) and, with
    dilation 1, the plain 3x3 ablations.

    Args:
        channels: Input and output channels.
        dilations: One dilation rate per branch.
        kernel_sizes: One kernel size per branch.
        norm_cfg: Norm layer config.
        act_cfg: Activation config.
        deploy: Build the folded form directly.
    """

    def __init__(self,
                 channels: int,
                 dilations: Sequence[int] = (2, 3),
                 kernel_sizes: Sequence[int] = (3, 3),
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='GELU'),
                 deploy: bool = False) -> None:
        super().__init__()
        if len(dilations) != len(kernel_sizes):
            raise ValueError(f'one kernel size per dilation is needed, got dilations={dilations} '
                             f'and kernel_sizes={kernel_sizes}')
        self.branches = nn.ModuleList(
            ConvNorm(channels, channels, k, dilation=d, norm_cfg=norm_cfg, act_cfg=act_cfg,
                     deploy=deploy) for d, k in zip(dilations, kernel_sizes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x  # replaced by the first branch (a ModuleList slice does not script)
        for i, branch in enumerate(self.branches):
            out = branch(x) if i == 0 else out + branch(x)
        return out

    def reparameterize(self) -> None:
        for branch in self.branches:
            branch.reparameterize()


class DeformableConvNorm(nn.Module):
    """A deformable ``k x k`` convolution (torchvision's), then norm and activation.

    Sampling offsets come from the caller (so that branches can share one offset predictor).

    Args:
        channels: Input and output channels.
        kernel_size: Kernel size.
        dilation: Dilation of the sampling grid before the offsets.
        norm_cfg: Norm layer config.
        act_cfg: Activation config.
        deploy: Build the folded form directly.
    """

    def __init__(self, channels: int, kernel_size: int, dilation: int, norm_cfg: dict,
                 act_cfg: dict, deploy: bool = False) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        # (height, width) pairs, the types torchvision's deform_conv2d declares to TorchScript
        self.dilation = (dilation, dilation)
        self.padding = (dilation * (kernel_size - 1) // 2, ) * 2
        self.weight = nn.Parameter(torch.empty(channels, channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(channels))
        nn.init.kaiming_normal_(self.weight)
        self.norm = nn.Identity() if deploy else build_norm_layer(norm_cfg, channels)[1]
        self.act = build_activation_layer(act_cfg)
        self.deploy = deploy

    def forward(self, x: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        out = deform_conv2d(x, offset, self.weight, self.bias, padding=self.padding,
                            dilation=self.dilation)
        return self.act(self.norm(out))

    @torch.no_grad()
    def reparameterize(self) -> None:
        if self.deploy:
            return
        weight, bias = fuse_conv_norm(self.weight, self.bias, self.norm)
        self.weight.copy_(weight)
        self.bias.copy_(bias)
        self.norm = nn.Identity()
        self.deploy = True


class MultiLevelDeformableConv(nn.Module):
    """The deformable ablation (supplementary Table 6): each dilated branch of the MLDC becomes
    a deformable convolution; the branches share one offset predictor (a ``k x k`` conv,
    zero-initialised so training starts from the dilated grid).

    The authors published no code for this row; sharing the offsets is the reading that matches
    its 6.7M parameters (one predictor per branch would give 6.8M for RapidNet-Ti).

    Args:
        channels: Input and output channels.
        dilations: One dilation rate per branch.
        kernel_size: Kernel size of every branch.
        norm_cfg: Norm layer config.
        act_cfg: Activation config.
        deploy: Build the folded form directly.
    """

    def __init__(self,
                 channels: int,
                 dilations: Sequence[int] = (2, 3),
                 kernel_size: int = 3,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='GELU'),
                 deploy: bool = False) -> None:
        super().__init__()
        self.offset = nn.Conv2d(channels, 2 * kernel_size * kernel_size, kernel_size,
                                padding=kernel_size // 2)
        nn.init.zeros_(self.offset.weight)
        nn.init.zeros_(self.offset.bias)
        self.branches = nn.ModuleList(
            DeformableConvNorm(channels, kernel_size, d, norm_cfg, act_cfg, deploy)
            for d in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        offset = self.offset(x)
        out = x  # replaced by the first branch, as in MultiLevelDilatedConv
        for i, branch in enumerate(self.branches):
            out = branch(x, offset) if i == 0 else out + branch(x, offset)
        return out

    def reparameterize(self) -> None:
        for branch in self.branches:
            branch.reparameterize()


class DilatedTokenMixer(nn.Module):
    """The token mixer of an MLDC block: positional encoding, 1x1 ConvNorm, spatial mixing
    (multi-level dilated convolution by default, or an ablation), 1x1 ConvNorm.

    Args:
        channels: Channels in and out.
        mixer_type: 'mldc', 'sldc', 'conv3x3', 'pointwise' or 'deformable'.
        dilations: Dilation per branch (for the dilated and deformable types).
        kernel_sizes: Kernel size per branch.
        use_pos_enc: Whether to use the conditional positional encoding.
        norm_cfg: Norm layer config.
        act_cfg: Activation config.
        deploy: Build the folded form directly.
    """

    def __init__(self, channels: int, mixer_type: str, dilations: Sequence[int],
                 kernel_sizes: Sequence[int], use_pos_enc: bool, norm_cfg: dict, act_cfg: dict,
                 deploy: bool = False) -> None:
        super().__init__()
        self.pos_enc = (ConditionalPositionalEncoding(channels, 7, deploy)
                        if use_pos_enc else nn.Identity())
        self.fc1 = ConvNorm(channels, channels, 1, norm_cfg=norm_cfg, deploy=deploy)
        if mixer_type == 'pointwise':
            self.spatial = ConvNorm(channels, channels, 1, norm_cfg=norm_cfg, act_cfg=act_cfg,
                                    deploy=deploy)
        elif mixer_type == 'deformable':
            self.spatial = MultiLevelDeformableConv(channels, dilations, kernel_sizes[0],
                                                    norm_cfg, act_cfg, deploy)
        else:
            self.spatial = MultiLevelDilatedConv(channels, dilations, kernel_sizes, norm_cfg,
                                                 act_cfg, deploy)
        self.fc2 = ConvNorm(channels, channels, 1, norm_cfg=norm_cfg, deploy=deploy)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.spatial(self.fc1(self.pos_enc(x))))

    def reparameterize(self, out_scale: Optional[torch.Tensor] = None) -> None:
        if isinstance(self.pos_enc, ConditionalPositionalEncoding):
            self.pos_enc.reparameterize()
        self.fc1.reparameterize()
        self.spatial.reparameterize()
        self.fc2.reparameterize(out_scale)


class PlainFFN(nn.Module):
    """1x1 expand with activation, then 1x1 project: the FFN of the ablation without the large
    kernel (``ffn_type='plain'``).

    Args:
        channels: Channels in and out.
        expand_ratio: Hidden channels = ``expand_ratio * channels``.
        norm_cfg: Norm layer config.
        act_cfg: Activation config.
        deploy: Build the folded form directly.
    """

    def __init__(self, channels: int, expand_ratio: int = 4, norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='GELU'), deploy: bool = False) -> None:
        super().__init__()
        # before fc1: the modules, and so the random initialisation, keep the network's order
        self._build_input(channels, norm_cfg, deploy)
        hidden = channels * expand_ratio
        self.fc1 = ConvNorm(channels, hidden, 1, norm_cfg=norm_cfg, act_cfg=act_cfg,
                            deploy=deploy)
        self.fc2 = ConvNorm(hidden, channels, 1, norm_cfg=norm_cfg, deploy=deploy)

    def _build_input(self, channels: int, norm_cfg: dict, deploy: bool) -> None:
        """Nothing: the plain FFN starts with ``fc1``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1(x))

    def reparameterize(self, out_scale: Optional[torch.Tensor] = None) -> None:
        self.fc1.reparameterize()
        self.fc2.reparameterize(out_scale)


class LargeKernelFFN(PlainFFN):
    """Depthwise 7x7 (no bias) and norm, then :class:`PlainFFN`: the paper's FFN
    (``ffn_type='large_kernel'``). Same arguments as :class:`PlainFFN`."""

    def _build_input(self, channels: int, norm_cfg: dict, deploy: bool) -> None:
        self.dwconv = ConvNorm(channels, channels, 7, groups=channels, bias=False,
                               norm_cfg=norm_cfg, deploy=deploy)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1(self.dwconv(x)))  # TorchScript compiles no super() call

    def reparameterize(self, out_scale: Optional[torch.Tensor] = None) -> None:
        self.dwconv.reparameterize()
        super().reparameterize(out_scale)


# RapidNet's ``ffn_type`` -> the FFN of its MLDC blocks
FFN_CLASSES = {'large_kernel': LargeKernelFFN, 'plain': PlainFFN}


class MLDCBlock(nn.Module):
    """``x = x + dp(g1 * mixer(x)); x = x + dp(g2 * ffn(x))``.

    Args:
        channels: Channels in and out.
        drop_path: Stochastic depth rate.
        layer_scale_init_value: Initial g1/g2, or None for no layer scale.
        mixer_kwargs: Arguments of :class:`DilatedTokenMixer` beyond channels, norm and act.
        ffn_type: A key of :data:`FFN_CLASSES`: 'large_kernel' (the paper's) or 'plain'.
        norm_cfg: Norm layer config.
        act_cfg: Activation config.
        deploy: Build the folded form directly.
    """

    def __init__(self, channels: int, drop_path: float, layer_scale_init_value: Optional[float],
                 mixer_kwargs: dict, ffn_type: str, norm_cfg: dict, act_cfg: dict,
                 deploy: bool = False) -> None:
        super().__init__()
        self.mixer = DilatedTokenMixer(channels, norm_cfg=norm_cfg, act_cfg=act_cfg,
                                       deploy=deploy, **mixer_kwargs)
        self.layer_scale_1 = make_layer_scale(channels, layer_scale_init_value, deploy)
        self.ffn = FFN_CLASSES[ffn_type](channels, 4, norm_cfg, act_cfg, deploy)
        self.layer_scale_2 = make_layer_scale(channels, layer_scale_init_value, deploy)
        self.drop_path = make_drop_path(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.layer_scale_1(self.mixer(x)))
        return x + self.drop_path(self.layer_scale_2(self.ffn(x)))

    def reparameterize(self) -> None:
        self.mixer.reparameterize(layer_scale_weight(self.layer_scale_1))
        self.ffn.reparameterize(layer_scale_weight(self.layer_scale_2))
        self.layer_scale_1 = nn.Identity()
        self.layer_scale_2 = nn.Identity()
