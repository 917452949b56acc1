"""The module that is traced for export: the reparameterised network with the input
normalisation built in, checked before anything is converted.

Normalisation: the exported model takes 8-bit pixel values. The per-channel ``1/std`` is folded
into the first convolution's input channels (exact, including the zero padding at the borders,
because it scales the zero-padded tensor) and the per-channel mean is subtracted before it: by the
Core ML image input's per-channel bias, or by a subtraction in the graph for ONNX. (Folding the
mean into the conv's bias as well would be wrong at the image borders, where the zero padding of
the normalised image corresponds to the mean, not to zero, in pixel units.)
"""
import copy
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.modules.batchnorm import _BatchNorm

from ..errors import RapidNetError
from ..models import RapidNet, RapidNetClsHead
from .dilated import dilated_to_dense
from .normalization import InputNormalization

TASKS = ('classifier', 'backbone', 'segmentor')
SEG_OUTPUT = 'seg_logits'
TOTAL_STRIDE = 32


class ExportError(RapidNetError, ValueError):
    """A model or setting that cannot be exported; raised before any conversion starts."""


def option_flag(name: str) -> str:
    """The command-line spelling of an option keyword (``min_target`` -> ``--min-target``)."""
    return '--' + name.replace('_', '-')


def timm_network(model: nn.Module, task: str) -> Optional[nn.Module]:
    """The timm network an mmpretrain wrapper holds for ``task``, or None.

    'classifier': the model of a ``TimmClassifier`` (e.g. configs/repvit/repvit_*_in1k.py);
    'backbone' and 'segmentor': the ``timm_model`` of a ``TIMMBackbone`` backbone (the RepViT
    det/seg configs).
    Such networks are exported as timm builds them, folded by timm's own reparameterisation.
    """
    try:
        from mmpretrain.models import TIMMBackbone, TimmClassifier
    except ImportError:  # pragma: no cover - mmpretrain is part of the stack
        return None
    if task == 'classifier' and isinstance(model, TimmClassifier):
        return model.model
    if task != 'classifier' and isinstance(getattr(model, 'backbone', None), TIMMBackbone):
        return model.backbone.timm_model
    return None


def is_detector(model: nn.Module) -> bool:
    """Whether ``model`` is an mmdet detector (False when mmdet is not installed)."""
    try:
        from mmdet.models.detectors import BaseDetector
    except ImportError:
        return False
    return isinstance(model, BaseDetector)


def check_segmentor(model: nn.Module) -> None:
    """``--task segmentor`` needs an mmseg ``EncoderDecoder`` with one decode head."""
    name = type(model).__name__
    if is_detector(model):
        raise ExportError(f'--task segmentor needs a segmentation config; {name} is an mmdet '
                          'detector: export its backbone with --task backbone')
    try:
        from mmseg.models.segmentors import EncoderDecoder
    except ImportError:
        raise ExportError('--task segmentor needs mmsegmentation: pip install -e .[seg]') from None
    if not isinstance(model, EncoderDecoder):
        hint = ('use --task classifier' if hasattr(model, 'head') else 'use --task backbone')
        raise ExportError(f'--task segmentor needs a segmentation config (an mmseg '
                          f'EncoderDecoder), got {name}: {hint}')
    if not isinstance(model.decode_head, nn.Module) or isinstance(model.decode_head,
                                                                  nn.ModuleList):
        raise ExportError(f'--task segmentor exports one decode head; {name} has a cascade of '
                          'them: export it with --task backbone')


def check_task(model: nn.Module, task: str) -> None:
    """The model has what ``task`` exports: a RapidNet backbone (or a timm network in
    mmpretrain's TimmClassifier / TIMMBackbone), a head for 'classifier', an mmseg segmentor for
    'segmentor'. Detectors export their backbone only."""
    if task not in TASKS:
        raise ExportError(f'unknown task {task!r}; choose one of {TASKS}')
    if task == 'segmentor':
        check_segmentor(model)
    elif task == 'classifier' and is_detector(model):
        raise ExportError(f'{type(model).__name__} is an mmdet detector: only --task backbone '
                          'exports it here (its heads need RoIAlign and NMS); see '
                          'docs/deployment.md for whole-detector export')
    if timm_network(model, task) is not None:
        return
    backbone = getattr(model, 'backbone', None)
    if not isinstance(backbone, RapidNet):
        raise ExportError(f'{type(model).__name__} has no RapidNet backbone (model.backbone is '
                          f'{type(backbone).__name__}); these exporters handle RapidNet models '
                          'and timm models in TimmClassifier (--task classifier) or TIMMBackbone '
                          '(--task backbone or segmentor)')
    if task == 'classifier':
        from mmpretrain.models import ImageClassifier
        if not isinstance(model, ImageClassifier) or getattr(model, 'head', None) is None:
            raise ExportError(f'--task classifier needs an mmpretrain image classifier with a '
                              f'head, got {type(model).__name__}; export segmentation models '
                              'with --task segmentor (or --task backbone)')


def check_input_size(size: Sequence[int]) -> Tuple[int, int]:
    """Fixed export shapes must be positive multiples of the total stride 32, so that every
    stage halves exactly (stride-4..32 features of H/4..H/32) as necks and the paper assume."""
    if len(size) != 2 or any(not isinstance(s, int) for s in size):
        raise ExportError(f'input size must be two ints H W, got {size!r}')
    h, w = size
    if h < TOTAL_STRIDE or w < TOTAL_STRIDE or h % TOTAL_STRIDE or w % TOTAL_STRIDE:
        def near(n):
            lo = max(TOTAL_STRIDE, n // TOTAL_STRIDE * TOTAL_STRIDE)
            return sorted({lo, lo + TOTAL_STRIDE} if n % TOTAL_STRIDE else {lo})
        raise ExportError(f'input size {h}x{w} cannot be taken: RapidNet needs H and W to be '
                          f'positive multiples of its total stride {TOTAL_STRIDE} (e.g. H in '
                          f'{near(h)}, W in {near(w)})')
    return h, w


def check_eval_mode(model: nn.Module) -> None:
    """Refuse modules that only behave deterministically in eval mode (DropPath, Dropout,
    BatchNorm on batch statistics): exported they would become random or batch-dependent ops."""
    training = [name or type(model).__name__ for name, m in model.named_modules() if m.training]
    if training:
        shown = ', '.join(training[:5]) + (f' and {len(training) - 5} more'
                                           if len(training) > 5 else '')
        raise ExportError(f'{len(training)} modules are in training mode ({shown}); DropPath, '
                          'Dropout and BatchNorm export as random or batch-dependent ops: call '
                          'model.eval() before exporting')
    batch_stats = [name for name, m in model.named_modules()
                   if isinstance(m, _BatchNorm) and not m.track_running_stats]
    if batch_stats:
        raise ExportError(f'BatchNorm without running statistics ({", ".join(batch_stats[:5])}) '
                          'uses batch statistics even in eval mode and cannot be exported')


def output_names(model: nn.Module, task: str) -> List[str]:
    """'logits', 'seg_logits', or 'feat_s4' ... 'feat_s32' for the backbone's out_indices."""
    if task == 'classifier':
        return ['logits']
    if task == 'segmentor':
        return [SEG_OUTPUT]
    timm_net = timm_network(model, task)
    if timm_net is not None:
        return [f'feat_s{r}' for r in timm_net.feature_info.reduction()]
    return [f'feat_s{2 ** (i + 2)}' for i in model.backbone.out_indices]


class SegmentorHead(nn.Module):
    """An mmseg decode head and the bilinear resize of its logits to the input size: what
    ``EncoderDecoder.predict`` computes after the neck (``decode_head.predict``)."""

    def __init__(self, decode_head: nn.Module, size: Sequence[int]) -> None:
        super().__init__()
        self.decode_head = decode_head
        self.size = tuple(size)
        self.align_corners = bool(decode_head.align_corners)

    def forward(self, feats) -> torch.Tensor:
        logits = self.decode_head(feats)
        return F.interpolate(logits, size=self.size, mode='bilinear',
                             align_corners=self.align_corners)


class ExportModule(nn.Module):
    """Pixels in (NCHW, 0-255, the model's channel order); logits, stage features or
    segmentation logits (N, C, H, W) out.

    Args:
        backbone: The reparameterised RapidNet with ``1/std`` folded into its first conv.
        neck: The classifier's or segmentor's neck, or None.
        head: The (folded) classification head, a :class:`SegmentorHead`, or None to output
            the backbone features.
        mean: Per-channel mean subtracted in the graph, or None when the caller's input
            pipeline (Core ML's image bias) subtracts it.
    """

    def __init__(self, backbone: nn.Module, neck: Optional[nn.Module],
                 head: Optional[nn.Module], mean: Optional[Sequence[float]]) -> None:
        super().__init__()
        self.backbone = backbone
        self.neck = neck
        self.head = head
        self.subtract_mean = mean is not None
        self.register_buffer('mean', torch.tensor(mean if mean is not None else [0., 0., 0.],
                                                  dtype=torch.float32).reshape(1, 3, 1, 1))

    def forward(self, image: torch.Tensor):
        x = image - self.mean if self.subtract_mean else image
        feats = self.backbone(x)
        if self.head is None:
            return tuple(feats) if isinstance(feats, list) else feats  # timm: a list
        if self.neck is not None:
            feats = self.neck(feats)
        return self.head(feats)


@torch.no_grad()
def fold_input_std(backbone: RapidNet, std: Sequence[float]) -> None:
    """Divide the first conv's weights by ``std`` per input channel, in place."""
    conv = backbone.stem.conv1.conv
    if conv.in_channels != len(std):
        raise ExportError(f'the first conv takes {conv.in_channels} channels but the '
                          f'normalisation has {len(std)} stds; an image input needs 3')
    conv.weight.div_(conv.weight.new_tensor(std).reshape(1, -1, 1, 1))


def prepare_export(model: nn.Module, task: str, input_size: Sequence[int],
                   norm: InputNormalization, dilated_as_dense: bool = False,
                   mean_in_graph: bool = False) -> ExportModule:
    """Check ``model`` and build the module to trace; ``model`` itself is left unchanged.

    Args:
        model: An eval-mode model with a RapidNet backbone (an mmpretrain classifier for
            'classifier', an mmseg segmentor for 'segmentor'), in training or deploy form.
        task: 'classifier' (logits), 'backbone' (one feature map per out_index) or 'segmentor'
            (backbone, neck, decode head and the resize to the input size: (N, C, H, W)
            logits).
        input_size: ``(H, W)``, positive multiples of 32.
        norm: The model's input normalisation.
        dilated_as_dense: Rewrite every dilated conv as its dense equivalent.
        mean_in_graph: Subtract the mean inside the module (ONNX) instead of leaving it to the
            input pipeline (Core ML's image bias).

    Raises:
        ExportError: an unknown task, a size the network cannot take, a training-mode module.
    """
    check_task(model, task)
    check_input_size(tuple(input_size))
    check_eval_mode(model)
    neck = head = None
    if task == 'segmentor':
        # BatchNorms of the neck and head folded into their convs (mmcv's fuse_conv_bn), as the
        # backbone's are: Core ML's converter would fold them itself under new weight names
        from mmcv.cnn import fuse_conv_bn
        neck = fuse_conv_bn(copy.deepcopy(model.neck)) if model.with_neck else None
        head = SegmentorHead(fuse_conv_bn(copy.deepcopy(model.decode_head)), input_size)
    timm_net = timm_network(model, task)
    if timm_net is not None:
        return _prepare_timm_export(timm_net, norm, dilated_as_dense, mean_in_graph, neck, head)
    backbone = copy.deepcopy(model.backbone).eval()
    if not backbone.deploy:
        backbone.switch_to_deploy()
    if task == 'classifier':
        neck = copy.deepcopy(getattr(model, 'neck', None))
        head = copy.deepcopy(model.head)
        if isinstance(head, RapidNetClsHead):
            head.reparameterize()
    fold_input_std(backbone, norm.std)
    if dilated_as_dense:
        dilated_to_dense(backbone)
    module = ExportModule(backbone, neck, head, norm.mean if mean_in_graph else None).eval()
    module.requires_grad_(False)
    return module


def _prepare_timm_export(network: nn.Module, norm: InputNormalization, dilated_as_dense: bool,
                         mean_in_graph: bool, neck: Optional[nn.Module] = None,
                         head: Optional[nn.Module] = None) -> ExportModule:
    """A copy of a timm network folded by timm's reparameterisation, with ``1/std`` folded into
    its first convolution (the numerical check after tracing confirms that it is the input conv)."""
    from timm.models import reparameterize_model as timm_reparameterize
    network = timm_reparameterize(copy.deepcopy(network).eval())
    first = next((m for m in network.modules() if isinstance(m, nn.Conv2d)), None)
    if first is None or first.in_channels != len(norm.std):
        raise ExportError(f'{type(network).__name__}: no first convolution with '
                          f'{len(norm.std)} input channels to fold the normalisation into')
    with torch.no_grad():
        first.weight.div_(first.weight.new_tensor(norm.std).reshape(1, -1, 1, 1))
    if dilated_as_dense:
        dilated_to_dense(network)
    module = ExportModule(network, neck, head, norm.mean if mean_in_graph else None).eval()
    module.requires_grad_(False)
    return module


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def describe(module: ExportModule) -> Dict[str, int]:
    """Sizes worth printing: parameters and dilated convs of the export module."""
    dilated = sum(1 for m in module.modules() if isinstance(m, nn.Conv2d) and max(m.dilation) > 1)
    return dict(params=count_parameters(module), dilated_convs=dilated)
