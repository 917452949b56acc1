"""RapidNet: a mobile CNN backbone built on multi-level dilated convolutions.

Munir, Rahman, Marculescu, "RapidNet: Multi-Level Dilated Convolution Based Mobile Backbone",
WACV 2025. The network is reproduced exactly (parameter counts of the original for all four
variants); beyond the original, every block can be reparameterised into plain convolutions.
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from mmpretrain.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm

from .arch import ARCH_SETTINGS, resolve_arch
from .layers import ConvNorm, layer_scale_weight, make_drop_path, make_layer_scale
from .mldc import FFN_CLASSES, MLDCBlock, MultiLevelDeformableConv

MIXER_TYPES = ('mldc', 'sldc', 'conv3x3', 'pointwise', 'deformable')
FFN_TYPES = tuple(FFN_CLASSES)
DROP_PATH_SCHEDULES = ('original', 'linear')
# The dilations each mixer type uses when ``dilations`` is not given.
DEFAULT_DILATIONS = {'mldc': (2, 3), 'sldc': (2, ), 'conv3x3': (1, ), 'deformable': (2, 3)}


def drop_path_rates(ir_blocks: Sequence[int], mldc_blocks: Sequence[int], drop_path_rate: float,
                    schedule: str) -> List[List[float]]:
    """Per-stage, per-block stochastic depth rates (a stage's inverted-residual blocks first).

    ``'linear'``: ``linspace(0, rate, total blocks)`` over all blocks in order.
    ``'original'``: what the authors' code actually trained. It draws from the same linspace but
    advances the index only after each MLDC block, so an inverted-residual block takes the rate
    of the next MLDC block's slot (all early blocks get 0).
    """
    if schedule not in DROP_PATH_SCHEDULES:
        raise ValueError(f'unknown drop_path_schedule {schedule!r}; choose one of '
                         f'{DROP_PATH_SCHEDULES}')
    total = sum(ir_blocks) + sum(mldc_blocks)
    rates = torch.linspace(0, drop_path_rate, total).tolist()
    out, idx = [], 0
    for n_ir, n_mldc in zip(ir_blocks, mldc_blocks):
        stage = []
        if schedule == 'linear':
            stage = rates[idx:idx + n_ir + n_mldc]
            idx += n_ir + n_mldc
        else:
            stage += [rates[idx]] * n_ir
            for _ in range(n_mldc):
                stage.append(rates[idx])
                idx += 1
        out.append(stage)
    return out


class Stem(nn.Module):
    """Two 3x3 stride-2 ConvNorm layers with activation: stride 4, ``in -> C0/2 -> C0``."""

    def __init__(self, in_channels: int, out_channels: int, norm_cfg: dict, act_cfg: dict,
                 deploy: bool = False) -> None:
        super().__init__()
        self.conv1 = ConvNorm(in_channels, out_channels // 2, 3, stride=2, norm_cfg=norm_cfg,
                              act_cfg=act_cfg, deploy=deploy)
        self.conv2 = ConvNorm(out_channels // 2, out_channels, 3, stride=2, norm_cfg=norm_cfg,
                              act_cfg=act_cfg, deploy=deploy)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))

    def reparameterize(self) -> None:
        self.conv1.reparameterize()
        self.conv2.reparameterize()


class Downsample(ConvNorm):
    """3x3 stride-2 conv and norm, no activation."""

    def __init__(self, in_channels: int, out_channels: int, norm_cfg: dict,
                 deploy: bool = False) -> None:
        super().__init__(in_channels, out_channels, 3, stride=2, norm_cfg=norm_cfg,
                         deploy=deploy)


class InvertedResidual(nn.Module):
    """``x + drop_path(gamma * f(x))`` with f = 1x1 expand, 3x3 depthwise, 1x1 project.

    Args:
        channels: Channels in and out.
        expand_ratio: Hidden channels = ``expand_ratio * channels``.
        drop_path: Stochastic depth rate.
        layer_scale_init_value: Initial gamma, or None for no layer scale.
        norm_cfg: Norm layer config.
        act_cfg: Activation config.
        deploy: Build the folded form directly.
    """

    def __init__(self, channels: int, expand_ratio: int = 4, drop_path: float = 0.,
                 layer_scale_init_value: Optional[float] = 1e-5,
                 norm_cfg: dict = dict(type='BN'), act_cfg: dict = dict(type='GELU'),
                 deploy: bool = False) -> None:
        super().__init__()
        hidden = channels * expand_ratio
        self.expand = ConvNorm(channels, hidden, 1, norm_cfg=norm_cfg, act_cfg=act_cfg,
                               deploy=deploy)
        self.depthwise = ConvNorm(hidden, hidden, 3, groups=hidden, norm_cfg=norm_cfg,
                                  act_cfg=act_cfg, deploy=deploy)
        self.project = ConvNorm(hidden, channels, 1, norm_cfg=norm_cfg, deploy=deploy)
        self.layer_scale = make_layer_scale(channels, layer_scale_init_value, deploy)
        self.drop_path = make_drop_path(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.depthwise(self.expand(x)))
        return x + self.drop_path(self.layer_scale(out))

    def reparameterize(self) -> None:
        self.expand.reparameterize()
        self.depthwise.reparameterize()
        self.project.reparameterize(layer_scale_weight(self.layer_scale))
        self.layer_scale = nn.Identity()


@MODELS.register_module()
class RapidNet(BaseBackbone):
    """RapidNet backbone; returns a tuple of stage outputs (strides 4, 8, 16, 32).

    A PyTorch implementation of `RapidNet: Multi-Level Dilated Convolution Based Mobile Backbone
    <https://arxiv.org/abs/2412.10995>`_ (WACV 2025). The variants are the table
    ``ARCH_SETTINGS`` (``arch_settings`` on the class).

    Args:
        arch: 'ti', 's', 'm', 'b', or a dict with ``ir_blocks``, ``mldc_blocks`` and
            ``channels`` (see ``ARCH_SETTINGS`` and :func:`~rapidnet_mm.models.arch.resolve_arch`).
        in_channels: Input image channels.
        out_indices: Stages to output, 0-3; negative indices count from the end.
        frozen_stages: -1 freezes nothing; 0 the stem; i the stem and stages 1..i. Frozen
            parameters get no gradient and their norm layers stay in eval mode.
        norm_eval: Keep every BatchNorm in eval mode while training (statistics frozen).
        norm_cfg: Norm layer config (BN by default; SyncBN is chosen by configs, never forced).
        act_cfg: Activation config (exact GELU by default).
        drop_path_rate: Maximum stochastic depth rate (the recipe uses 0.1).
        drop_path_schedule: 'original' reproduces the per-block rates the authors' code trained
            with; 'linear' spreads ``linspace(0, rate, n_blocks)`` over all blocks.
        layer_scale_init_value: Initial per-channel residual scale, or None to disable.
        mixer_type: Spatial mixing of MLDC blocks: 'mldc' (multi-level dilated, the paper),
            'sldc' (single-level dilated), 'conv3x3', 'pointwise' or 'deformable'.
        dilations: Dilation per branch; None picks the type's default ((2, 3) for 'mldc' and
            'deformable', (2,) for 'sldc', (1,) for 'conv3x3').
        mixer_kernel_size: Kernel size of every mixer branch, or one per branch.
        use_pos_enc: Use the conditional positional encoding in MLDC blocks.
        ffn_type: 'large_kernel' (depthwise 7x7 first, the paper: ``LargeKernelFFN``) or
            'plain' (1x1 convs only: ``PlainFFN``).
        deploy: Build the reparameterised (inference) form directly.
        pretrained: Not supported (the deprecated mmseg/mmdet 2.x way); it exists to turn the
            ``model.pretrained`` that mmseg's base configs pass down (ResNet weights) into a
            clear error instead of a silent load of foreign weights.
        init_cfg: mmengine init config; None keeps the original initialisation (Kaiming-normal
            convs with zero bias, unit BatchNorm).

    Example:
        >>> import torch
        >>> from rapidnet_mm.models import RapidNet
        >>> model = RapidNet(arch='ti').eval()
        >>> x = torch.rand(1, 3, 224, 224)
        >>> outputs = model(x)
        >>> for out in outputs:
        ...     print(tuple(out.shape))
        (1, 32, 56, 56)
        (1, 64, 28, 28)
        (1, 112, 14, 14)
        (1, 224, 7, 7)
        >>> model.switch_to_deploy()  # plain convolutions, the same outputs
        >>> folded = model(x)
        >>> bool((folded[-1] - outputs[-1]).abs().max() < 1e-4 * outputs[-1].abs().max())
        True
    """
    arch_settings = ARCH_SETTINGS
    num_stages = 4
    # mmengine's BaseModule property, a Python-side flag: torch.jit.script leaves it out
    __jit_unused_properties__ = ['is_init']

    def __init__(self,
                 arch: Union[str, dict] = 's',
                 in_channels: int = 3,
                 out_indices: Union[int, Sequence[int]] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='GELU'),
                 drop_path_rate: float = 0.,
                 drop_path_schedule: str = 'original',
                 layer_scale_init_value: Optional[float] = 1e-5,
                 mixer_type: str = 'mldc',
                 dilations: Optional[Sequence[int]] = None,
                 mixer_kernel_size: Union[int, Sequence[int]] = 3,
                 use_pos_enc: bool = True,
                 ffn_type: str = 'large_kernel',
                 deploy: bool = False,
                 pretrained: Optional[str] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        if pretrained is not None:
            raise ValueError(
                f'RapidNet got pretrained={pretrained!r} (mmseg passes model.pretrained of its '
                'base configs down to the backbone); set model.pretrained=None and load RapidNet '
                "weights with backbone.init_cfg=dict(type='Pretrained', checkpoint=PATH, "
                "prefix='backbone.')")
        super().__init__(init_cfg=init_cfg)
        settings = resolve_arch(arch)
        self.arch = settings
        ir_blocks, mldc_blocks = settings['ir_blocks'], settings['mldc_blocks']
        channels = settings['channels']
        self.num_stages = len(channels)
        self.channels = channels
        self.out_indices = self._check_out_indices(out_indices, self.num_stages)
        if not isinstance(frozen_stages, int) or not -1 <= frozen_stages <= self.num_stages:
            raise ValueError(f'frozen_stages must be an int in [-1, {self.num_stages}] (-1: none, '
                             f'0: stem, i: stem and stages 1..i), got {frozen_stages!r}')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        if not 0 <= drop_path_rate < 1:
            raise ValueError(f'drop_path_rate must be in [0, 1), got {drop_path_rate}')
        mixer_kwargs = self._mixer_kwargs(mixer_type, dilations, mixer_kernel_size, use_pos_enc)
        if ffn_type not in FFN_TYPES:
            raise ValueError(f'unknown ffn_type {ffn_type!r}; choose one of {FFN_TYPES}')
        self.deploy = deploy

        self.stem = Stem(in_channels, channels[0], norm_cfg, act_cfg, deploy)
        rates = drop_path_rates(ir_blocks, mldc_blocks, drop_path_rate, drop_path_schedule)
        self.stages = nn.ModuleList()
        for i, (n_ir, n_mldc, c) in enumerate(zip(ir_blocks, mldc_blocks, channels)):
            layers = []
            if i > 0:
                layers.append(Downsample(channels[i - 1], c, norm_cfg, deploy))
            for j in range(n_ir):
                layers.append(InvertedResidual(c, 4, rates[i][j], layer_scale_init_value,
                                               norm_cfg, act_cfg, deploy))
            for j in range(n_ir, n_ir + n_mldc):
                layers.append(MLDCBlock(c, rates[i][j], layer_scale_init_value, mixer_kwargs,
                                        ffn_type, norm_cfg, act_cfg, deploy))
            self.stages.append(nn.Sequential(*layers))

        self._init_original_weights()
        self._freeze_stages()

    @staticmethod
    def _check_out_indices(out_indices: Union[int, Sequence[int]], num_stages: int) -> Tuple[int]:
        if isinstance(out_indices, int):
            out_indices = [out_indices]
        if not isinstance(out_indices, Sequence) or isinstance(out_indices, str):
            raise TypeError('out_indices must be an int or a sequence of ints, got '
                            f'{type(out_indices).__name__}')
        result = []
        for idx in out_indices:
            if not isinstance(idx, int) or not -num_stages <= idx < num_stages:
                raise ValueError(f'out_indices {tuple(out_indices)}: each index must be an int '
                                 f'in [{-num_stages}, {num_stages - 1}] (stages 0-'
                                 f'{num_stages - 1}), got {idx!r}')
            result.append(idx % num_stages)
        if len(set(result)) != len(result) or not result:
            raise ValueError(f'out_indices {tuple(out_indices)} must name each stage at most '
                             'once and at least one stage')
        return tuple(sorted(result))

    @staticmethod
    def _mixer_kwargs(mixer_type: str, dilations: Optional[Sequence[int]],
                      kernel_size: Union[int, Sequence[int]], use_pos_enc: bool) -> dict:
        if mixer_type not in MIXER_TYPES:
            raise ValueError(f'unknown mixer_type {mixer_type!r}; choose one of {MIXER_TYPES}')
        if mixer_type == 'pointwise':
            if dilations is not None or kernel_size not in (1, 3):
                raise ValueError("mixer_type='pointwise' is a 1x1 conv: leave dilations and "
                                 'mixer_kernel_size unset')
            return dict(mixer_type=mixer_type, dilations=(), kernel_sizes=(),
                        use_pos_enc=use_pos_enc)
        dilations = tuple(DEFAULT_DILATIONS[mixer_type] if dilations is None else dilations)
        if not dilations or any(not isinstance(d, int) or d < 1 for d in dilations):
            raise ValueError(f'dilations must be positive ints, got {dilations}')
        expected = {'sldc': 1, 'conv3x3': 1}.get(mixer_type)
        if expected is not None and len(dilations) != expected:
            raise ValueError(f"mixer_type={mixer_type!r} has a single branch: give one dilation, "
                             f'got {dilations}; use mixer_type=\'mldc\' for several')
        if mixer_type == 'conv3x3' and dilations != (1, ):
            raise ValueError("mixer_type='conv3x3' is undilated; use 'sldc' with dilations=(d,)")
        if mixer_type == 'mldc' and len(dilations) < 2:
            raise ValueError(f"mixer_type='mldc' needs at least two dilations, got {dilations}; "
                             "use 'sldc' for one")
        kernel_sizes = ((kernel_size, ) * len(dilations)
                        if isinstance(kernel_size, int) else tuple(kernel_size))
        if len(kernel_sizes) != len(dilations) or any(
                not isinstance(k, int) or k < 1 or k % 2 == 0 for k in kernel_sizes):
            raise ValueError(f'mixer_kernel_size must be an odd int or one odd int per dilation '
                             f'{dilations}, got {kernel_size!r}')
        if mixer_type == 'deformable' and len(set(kernel_sizes)) != 1:
            raise ValueError('the deformable mixer shares one offset predictor, so all its '
                             f'branches need the same kernel size, got {kernel_sizes}')
        return dict(mixer_type=mixer_type, dilations=dilations, kernel_sizes=kernel_sizes,
                    use_pos_enc=use_pos_enc)

    @torch.no_grad()
    def _init_original_weights(self) -> None:
        """The authors' initialisation: Kaiming-normal (fan_in) conv weights, zero conv biases
        (norm layers keep PyTorch's unit weight and zero bias)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, MultiLevelDeformableConv):  # offsets start at the dilated grid
                nn.init.zeros_(m.offset.weight)
                nn.init.zeros_(m.offset.bias)

    def init_weights(self) -> None:
        # Without init_cfg the weights keep the original initialisation done in __init__;
        # with one (e.g. Pretrained) mmengine applies it.
        if self.init_cfg is not None:
            super().init_weights()

    # torch.jit.script cannot type a tuple of any length: scripted models (the timm classifier)
    # call forward_stages, and forward stays Python.
    @torch.jit.ignore
    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        return tuple(self.forward_stages(x))

    def forward_stages(self, x: torch.Tensor) -> List[torch.Tensor]:
        """The outputs of the stages ``out_indices`` names, as a list (scriptable)."""
        x = self.stem(x)
        outs: List[torch.Tensor] = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_indices:
                outs.append(x)
        return outs

    def _frozen_modules(self) -> List[nn.Module]:
        if self.frozen_stages < 0:
            return []
        return [self.stem] + list(self.stages[:self.frozen_stages])

    def _freeze_stages(self) -> None:
        for module in self._frozen_modules():
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'RapidNet':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    def switch_to_deploy(self) -> None:
        """Fold every BatchNorm, layer scale and positional-encoding identity into the
        convolutions, in place (mmpretrain's name for reparameterisation). The backbone keeps
        its train/eval mode; the new convolutions take it too."""
        for module in [self.stem] + [m for stage in self.stages for m in stage]:
            module.reparameterize()
        self.deploy = True
        self.train(self.training)

    def reparameterize(self) -> None:
        """Alias of :meth:`switch_to_deploy`."""
        self.switch_to_deploy()
