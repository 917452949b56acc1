"""The authors' ImageNet checkpoints (``RapidNet_{Ti,S,M,B}.pth``) -> ours.

The training script saves a dict with ``state_dict`` (trained weights), ``state_dict_ema`` (EMA
weights), ``optimizer``, ``lr_scheduler``, ``epoch``, ``scaler`` and ``args``. The converted
weights load with ``strict=True`` into the model of ``configs/cls/rapidnet_{arch}_in1k.py``
(``backbone.*`` and ``head.*`` of an mmpretrain classifier).
"""
from typing import Dict, List, Optional, Tuple

import torch

from ..errors import InputError
from .backbone import convert_original_state
from .common import CheckpointLayoutError, Conversion, check_complete, detect_arch

WEIGHTS = {'ema': 'state_dict_ema', 'raw': 'state_dict'}
# Other entries of the authors' training file that carry no weights.
TRAINING_STATE = ('optimizer', 'lr_scheduler', 'epoch', 'scaler', 'args', 'max_accuracy')
STEM_KEY = 'stem.stem.3.weight'  # at the root of a classification state (no 'backbone.' prefix)


def _weight_sets(ckpt: dict) -> Dict[str, dict]:
    """The state dicts a file holds: any of ``state_dict``, ``state_dict_ema`` and ``model`` (a
    single set), or the file itself when it is a bare state dict."""
    sets = {key: ckpt[key] for key in ('state_dict', 'state_dict_ema', 'model')
            if isinstance(ckpt.get(key), dict)}
    if not sets and any(isinstance(v, torch.Tensor) for v in ckpt.values()):
        sets['<file>'] = ckpt
    return sets


def matches(ckpt: dict) -> bool:
    """Whether ``ckpt`` holds an authors' classification RapidNet (network keys at the root of
    its state dicts, not under a detector's or segmentor's ``backbone.``)."""
    if not isinstance(ckpt, dict):
        return False
    return any(STEM_KEY in state for state in _weight_sets(ckpt).values())


def select_weights(ckpt: dict, weights: str = 'ema') -> Tuple[dict, str]:
    """Pick the state dict to convert and say which.

    Args:
        ckpt: The loaded file.
        weights: 'ema' (``state_dict_ema``, what the authors' downstream code uses) or 'raw'
            (``state_dict``). A file with a single set of weights (``model`` or a bare state
            dict) has no such choice; its weights are used whatever ``weights`` says, and the
            returned note says so.

    Returns:
        ``(state, note)``.
    """
    if weights not in WEIGHTS:
        raise InputError(f'weights must be one of {sorted(WEIGHTS)}, got {weights!r}')
    sets = _weight_sets(ckpt)
    if 'state_dict' in sets or 'state_dict_ema' in sets:
        key = WEIGHTS[weights]
        if key not in sets:
            other = 'raw' if weights == 'ema' else 'ema'
            raise CheckpointLayoutError(f'the checkpoint has no {key!r} ({weights} weights); '
                                        f'choose the weights it has with --weights {other}',
                                        sorted(ckpt))
        return sets[key], f'{weights} weights ({key!r})'
    if 'model' in sets:
        return sets['model'], "the file's only weights ('model'); --weights does not apply"
    if '<file>' in sets:
        return sets['<file>'], ("the file's only weights (a bare state dict); --weights does "
                                'not apply')
    raise CheckpointLayoutError('no state dict in the checkpoint', sorted(ckpt))


def expected_state(arch: str, num_classes: int, distillation: bool) -> Dict[str, torch.Size]:
    """Key -> shape of the classifier that ``configs/cls/rapidnet_{arch}_in1k.py`` builds."""
    from mmengine.registry import DefaultScope
    from mmpretrain.models import ImageClassifier
    # mmpretrain's registry, whatever scope is current (e.g. 'mmdet' in a detection process)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = ImageClassifier(
            backbone=dict(type='RapidNet', arch=arch),
            head=dict(type='RapidNetClsHead', arch=arch, num_classes=num_classes,
                      distillation=distillation))
    return {k: v.shape for k, v in model.state_dict().items()}


def convert(ckpt: dict, weights: str = 'ema') -> Conversion:
    """Convert an authors' classification checkpoint.

    Args:
        ckpt: The loaded file (see module docstring).
        weights: 'ema' (default) or 'raw'; see :func:`select_weights`.

    Raises:
        CheckpointLayoutError: keys that map to nothing of ours (listed), or a state that does
            not fill the detected variant's model.
    """
    state, chosen = select_weights(ckpt, weights)
    arch = detect_arch(state)
    converted, unmapped = convert_original_state(state, backbone_prefix='backbone.',
                                                 head_prefix='head.')
    if unmapped:
        raise CheckpointLayoutError(f'keys of the RapidNet-{arch} checkpoint that map to nothing '
                                    'in rapidnet_mm', unmapped)
    notes: List[str] = [f'variant: RapidNet-{arch} (detected from the tensor shapes)',
                        f'converted the {chosen}']
    head_weight: Optional[torch.Tensor] = converted.get('head.head.weight')
    if head_weight is None:
        raise CheckpointLayoutError('the checkpoint has no classifier (head.weight)', sorted(state))
    num_classes = head_weight.shape[0]
    distillation = 'head.dist_head.weight' in converted
    check_complete(converted, expected_state(arch, num_classes, distillation), arch)
    if num_classes != 1000:
        notes.append(f'{num_classes} classes: set model.head.num_classes={num_classes}')
    if not distillation:
        notes.append('no dist_head (trained without distillation): set '
                     'model.head.distillation=False')
    if any('cpe.reparam_conv' in key for key in state):
        notes.append('positional encodings were folded (reparam_conv); unfolded to the '
                     'training form')
    dropped = [key for key in ('state_dict', 'state_dict_ema') + TRAINING_STATE
               if key in ckpt and ckpt[key] is not state]
    if dropped:
        notes.append('not converted (training state): ' + ', '.join(dropped))
    return Conversion(kind='classification', arch=arch, state_dict=converted, notes=notes)
