"""The authors' mmseg 0.30 Semantic FPN checkpoints (``RapidNet_{M,B}_Sem_Seg.pth``) -> mmseg 1.x.

Such a file holds ``state_dict`` (``backbone.stem.stem.*``, ``backbone.backbone.{i}.{j}.*``,
``neck.*``, ``decode_head.*``), ``meta`` and ``optimizer``. The backbone keys go through the
shared RapidNet mapping. The neck and head names were compared one by one between mmseg 0.30.0
and the installed 1.2.2 (``FPN``: ``lateral_convs.{i}.conv``, ``fpn_convs.{i}.conv``;
``FPNHead``: ``scale_heads.{i}.{j}.conv`` / ``.bn`` with Upsample layers in between, and
``conv_seg``): none changed, so :data:`NECK_HEAD_KEYS` keeps them and rejects anything else
(an ``auxiliary_head``, another neck). The converted weights load with ``strict=True`` into the
model of ``configs/seg/fpn_rapidnet_{arch}_ade20k.py``.
"""
import re
from typing import Dict, List

import torch

from ..errors import InputError
from .backbone import convert_original_state
from .common import CheckpointLayoutError, Conversion, check_complete, detect_arch

# Every neck/head key an mmseg 0.30 Semantic FPN has; each is also its mmseg 1.x name.
_BN = r'(weight|bias|running_mean|running_var|num_batches_tracked)'
NECK_HEAD_KEYS = [
    r'neck\.(lateral_convs|fpn_convs)\.\d+\.conv\.(weight|bias)',
    r'decode_head\.scale_heads\.\d+\.\d+\.conv\.weight',
    r'decode_head\.scale_heads\.\d+\.\d+\.bn\.' + _BN,
    r'decode_head\.conv_seg\.(weight|bias)',
]
STEM_KEY = 'backbone.stem.stem.3.weight'
# Entries of an mmseg 0.30 checkpoint that carry no model weights.
TRAINING_STATE = ('meta', 'optimizer')


def is_neck_head_key(key: str) -> bool:
    """Whether ``key`` is an mmseg 0.30 Semantic FPN neck/head key (kept as it is in 1.x)."""
    return any(re.fullmatch(pattern, key) for pattern in NECK_HEAD_KEYS)


def matches(ckpt: dict) -> bool:
    """Whether ``ckpt`` is an authors' mmseg segmentor: a RapidNet under ``backbone.`` and a
    ``decode_head``."""
    state = ckpt.get('state_dict') if isinstance(ckpt, dict) else None
    return (isinstance(state, dict) and STEM_KEY in state
            and any(k.startswith('decode_head.') for k in state))


def expected_state(arch: str, neck_channels: int, head_channels: int,
                   num_classes: int) -> Dict[str, torch.Size]:
    """Key -> shape of the Semantic FPN that ``configs/seg/fpn_rapidnet_{arch}_ade20k.py`` builds,
    with the neck/head widths and class count found in the checkpoint."""
    from mmengine.registry import DefaultScope
    from mmseg.models import EncoderDecoder

    from ..models.arch import ARCH_SETTINGS
    norm_cfg = dict(type='BN', requires_grad=True)  # SyncBN has the same parameter names
    # mmseg's registry whatever scope is current (e.g. a Runner's 'mmengine' in this process)
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = EncoderDecoder(
            backbone=dict(type='RapidNet', arch=arch, norm_cfg=norm_cfg),
            neck=dict(type='FPN', in_channels=list(ARCH_SETTINGS[arch]['channels']),
                      out_channels=neck_channels, num_outs=4),
            decode_head=dict(type='FPNHead', in_channels=[neck_channels] * 4,
                             in_index=[0, 1, 2, 3], feature_strides=[4, 8, 16, 32],
                             channels=head_channels, dropout_ratio=0.1,
                             num_classes=num_classes, norm_cfg=norm_cfg, align_corners=False,
                             loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False)))
    return {k: v.shape for k, v in model.state_dict().items()}


def convert(ckpt: dict, **options) -> Conversion:
    """Convert an authors' mmseg 0.30 Semantic FPN checkpoint to mmseg 1.x names.

    Args:
        ckpt: The loaded file (see module docstring).
        **options: None are supported (the file holds one set of weights); any given raises
            InputError.

    Raises:
        CheckpointLayoutError: no ``state_dict``, keys that map to nothing in mmseg 1.x
            (listed), or tensors that do not fill the detected variant's Semantic FPN.
    """
    if options:
        raise InputError(f'unsupported options for a segmentation checkpoint: {sorted(options)} '
                         '(an mmseg file holds a single set of weights)')
    state = ckpt.get('state_dict')
    if not isinstance(state, dict):
        raise CheckpointLayoutError("an mmseg checkpoint needs a 'state_dict'; top-level keys",
                                    sorted(map(str, ckpt)))
    arch = detect_arch(state, prefix='backbone.')
    converted, rest = convert_original_state(state, backbone_prefix='backbone.',
                                             head_prefix=None, source_prefix='backbone.')
    unmapped: List[str] = []
    for key in rest:
        if is_neck_head_key(key):
            converted[key] = state[key]
        else:
            unmapped.append(key)
    if unmapped:
        raise CheckpointLayoutError(
            f'keys of the RapidNet-{arch} segmentation checkpoint that map to nothing in an '
            'mmseg 1.x Semantic FPN (FPN neck + FPNHead)', unmapped)
    try:
        neck_channels = converted['neck.lateral_convs.0.conv.weight'].shape[0]
        num_classes, head_channels = converted['decode_head.conv_seg.weight'].shape[:2]
    except KeyError as err:
        raise CheckpointLayoutError(f'the checkpoint has no {err.args[0]}; is it a Semantic FPN?',
                                    sorted(state)[-10:]) from None
    check_complete(converted, expected_state(arch, neck_channels, head_channels, num_classes),
                   arch)
    notes = [f'variant: RapidNet-{arch} (detected from the tensor shapes)',
             'neck and decode_head names are the same in mmseg 0.30 and 1.x; kept as they are']
    if (neck_channels, head_channels, num_classes) != (256, 128, 150):
        notes.append(f'FPN {neck_channels} channels, head {head_channels} channels, '
                     f'{num_classes} classes (the ADE20K configs have 256, 128, 150): set '
                     'model.neck.out_channels, model.decode_head.channels/num_classes')
    if any('cpe.reparam_conv' in key for key in state):
        notes.append('positional encodings were folded (reparam_conv); unfolded to the '
                     'training form')
    dropped = [key for key in TRAINING_STATE if key in ckpt]
    if dropped:
        notes.append('not converted (training state and mmseg 0.x metadata): '
                     + ', '.join(dropped))
    return Conversion(kind='segmentation', arch=arch, state_dict=converted, notes=notes)
