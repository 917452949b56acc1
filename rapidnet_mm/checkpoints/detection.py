"""The authors' mmdet 2.28 RapidNet Mask R-CNN checkpoints (``RapidNet_{M,B}_Detection.pth``)
-> mmdet 3.x Mask R-CNN with our ``RapidNet`` backbone (``configs/det/maskrcnn_rapidnet_*``).

The backbone keys go through :func:`convert_original_state`. The FPN, RPN head and RoI heads were
checked module by module against the installed mmdet 3.3.0 (``FPN``, ``RPNHead``,
``Shared2FCBBoxHead``, ``FCNMaskHead``): every parameter name of the mmdet 2.28 Mask R-CNN
survived unchanged (including ``rpn_head.rpn_conv`` for the single-conv RPN head), so the rules
below are identities, kept as an explicit list so that any key outside it is reported instead of
being carried over unchecked.
"""
from typing import Dict, List, Optional

import torch

from .backbone import convert_original_state
from .common import CheckpointLayoutError, Conversion, detect_arch, match_rules

# (mmdet 2.28 key pattern, mmdet 3.x key template) for everything but the backbone.
NECK_AND_HEAD_RULES = [
    (r'neck\.lateral_convs\.(\d+)\.conv\.(weight|bias)', r'neck.lateral_convs.\1.conv.\2'),
    (r'neck\.fpn_convs\.(\d+)\.conv\.(weight|bias)', r'neck.fpn_convs.\1.conv.\2'),
    (r'rpn_head\.rpn_conv\.(weight|bias)', r'rpn_head.rpn_conv.\1'),
    (r'rpn_head\.rpn_cls\.(weight|bias)', r'rpn_head.rpn_cls.\1'),
    (r'rpn_head\.rpn_reg\.(weight|bias)', r'rpn_head.rpn_reg.\1'),
    (r'roi_head\.bbox_head\.shared_fcs\.(\d+)\.(weight|bias)',
     r'roi_head.bbox_head.shared_fcs.\1.\2'),
    (r'roi_head\.bbox_head\.fc_cls\.(weight|bias)', r'roi_head.bbox_head.fc_cls.\1'),
    (r'roi_head\.bbox_head\.fc_reg\.(weight|bias)', r'roi_head.bbox_head.fc_reg.\1'),
    (r'roi_head\.mask_head\.convs\.(\d+)\.conv\.(weight|bias)',
     r'roi_head.mask_head.convs.\1.conv.\2'),
    (r'roi_head\.mask_head\.upsample\.(weight|bias)', r'roi_head.mask_head.upsample.\1'),
    (r'roi_head\.mask_head\.conv_logits\.(weight|bias)', r'roi_head.mask_head.conv_logits.\1'),
]
STEM_KEY = 'backbone.stem.stem.0.weight'
DETECTOR_PREFIXES = ('rpn_head.', 'roi_head.')


def map_neck_or_head_key(key: str) -> Optional[str]:
    """The mmdet 3.x name of an mmdet 2.28 Mask R-CNN neck/head key, or None."""
    return match_rules(NECK_AND_HEAD_RULES, key)


def matches(ckpt: dict) -> bool:
    """Whether ``ckpt`` is an authors' mmdet 2.x RapidNet two-stage detector checkpoint: a
    ``state_dict`` with the authors' backbone under ``backbone.`` and RPN / RoI head keys."""
    state = ckpt.get('state_dict') if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or STEM_KEY not in state:
        return False
    return any(k.startswith(DETECTOR_PREFIXES) for k in state)


def convert(ckpt: dict, arch: Optional[str] = None) -> Conversion:
    """Rename an authors' mmdet 2.28 RapidNet Mask R-CNN checkpoint to our mmdet 3.x model.

    Args:
        ckpt: The loaded checkpoint (``state_dict``, ``meta``, ``optimizer``).
        arch: The expected variant ('ti', 's', 'm', 'b'); None accepts the detected one.

    Returns:
        A ``Conversion(kind='detection')`` whose state dict loads strictly into the model of
        ``configs/det/maskrcnn_rapidnet_{arch}_coco.py`` (with the checkpoint's class count).

    Raises:
        CheckpointLayoutError: not this layout, keys that fit no rule (all listed), or a
            variant other than ``arch``.
    """
    if not matches(ckpt):
        raise CheckpointLayoutError(
            "not an mmdet 2.x RapidNet detector checkpoint: it needs a 'state_dict' with "
            f"'{STEM_KEY}' and rpn_head./roi_head. keys",
            sorted(ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else [])[:10])
    state: Dict[str, torch.Tensor] = ckpt['state_dict']
    detected = detect_arch(state, prefix='backbone.')
    if arch is not None and arch.lower() != detected:
        raise CheckpointLayoutError(f'the checkpoint holds RapidNet-{detected.upper()}, not '
                                    f'the requested {arch!r}; drop the arch option or pick the '
                                    f'maskrcnn_rapidnet_{detected}_coco.py config')
    backbone_state = {k: v for k, v in state.items() if k.startswith('backbone.')}
    converted, unmapped = convert_original_state(backbone_state, backbone_prefix='backbone.',
                                                 head_prefix=None, source_prefix='backbone.')
    for key, value in state.items():
        if key.startswith('backbone.'):
            continue
        ours = map_neck_or_head_key(key)
        if ours is None:
            unmapped.append(key)
        else:
            converted[ours] = value
    if unmapped:
        raise CheckpointLayoutError('keys of the mmdet 2.x checkpoint that map to no mmdet 3.x '
                                    'RapidNet Mask R-CNN parameter', sorted(unmapped))
    return Conversion(kind='detection', arch=detected, state_dict=converted,
                      notes=_notes(ckpt, converted))


def _notes(ckpt: dict, converted: Dict[str, torch.Tensor]) -> List[str]:
    """What the user should know about the converted file."""
    meta = ckpt.get('meta') or {}
    notes = []
    fc_cls = converted.get('roi_head.bbox_head.fc_cls.weight')
    if fc_cls is not None:  # mmdet's fc_cls has one extra output: background
        notes.append(f'{fc_cls.shape[0] - 1} classes (set num_classes of bbox_head and '
                     'mask_head to match)')
    if meta.get('mmdet_version'):
        notes.append(f"written by mmdet {meta['mmdet_version']}")
    if meta.get('CLASSES'):
        classes = list(meta['CLASSES'])
        notes.append(f'class names from meta: {classes[:3]} ... ({len(classes)})')
    dropped = [k for k in ('optimizer', 'meta') if k in ckpt]
    if dropped:
        notes.append(f'dropped: {", ".join(dropped)} (training state, not needed to evaluate '
                     'or fine-tune)')
    return notes
