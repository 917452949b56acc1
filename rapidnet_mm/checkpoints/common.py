"""What every checkpoint format module shares: the result type, the error, variant detection.

A format module (``classification.py``, ``detection.py``, ``segmentation.py``) provides
``matches(ckpt: dict) -> bool`` (is this file in my layout?) and
``convert(ckpt: dict, **options) -> Conversion``; ``tools/model_converters/convert_official.py`` tries them in turn.
"""
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from ..errors import RapidNetError
from ..models.arch import ARCH_SETTINGS


class CheckpointLayoutError(RapidNetError, ValueError):
    """A checkpoint that does not fit the layout it claims; the message lists the keys."""

    def __init__(self, message: str, keys: Optional[List[str]] = None, limit: int = 40) -> None:
        if keys:
            shown = '\n  '.join(keys[:limit])
            more = f'\n  ... and {len(keys) - limit} more' if len(keys) > limit else ''
            message = f'{message} ({len(keys)} keys):\n  {shown}{more}'
        super().__init__(message)
        self.keys = list(keys or [])


def match_rules(rules: Sequence[Tuple[str, str]], key: str) -> Optional[str]:
    """The template of the first ``(pattern, template)`` rule whose pattern matches all of
    ``key``, expanded with its groups; None when no rule fits."""
    for pattern, template in rules:
        m = re.fullmatch(pattern, key)
        if m:
            return m.expand(template)
    return None


def check_fits(state: Dict[str, torch.Tensor], expected: Dict[str, torch.Size],
               target: str) -> None:
    """Raise CheckpointLayoutError unless ``state`` has exactly the keys and shapes expected.

    Args:
        state: The tensors to load.
        expected: Key -> shape of the module they are for.
        target: What that module is, for the message (e.g. ``'RapidNet-s'``).
    """
    missing = sorted(set(expected) - set(state))
    if missing:
        raise CheckpointLayoutError(f'the checkpoint lacks tensors of {target}', missing)
    unexpected = sorted(set(state) - set(expected))
    if unexpected:
        raise CheckpointLayoutError(f'tensors {target} does not have', unexpected)
    wrong = [f'{k}: {tuple(v.shape)} != {tuple(expected[k])}' for k, v in state.items()
             if v.shape != expected[k]]
    if wrong:
        raise CheckpointLayoutError(f'tensor shapes that do not fit {target}', wrong)


def check_complete(state: Dict[str, torch.Tensor], expected: Dict[str, torch.Size],
                   arch: str) -> None:
    """Raise CheckpointLayoutError unless ``state`` fills the RapidNet-``arch`` model exactly."""
    check_fits(state, expected, f'RapidNet-{arch}')


@dataclass
class Conversion:
    """A converted checkpoint: ``state_dict`` in our names for the model of ``kind``/``arch``."""
    kind: str  # 'classification', 'detection' or 'segmentation'
    arch: str  # 'ti', 's', 'm' or 'b'
    state_dict: Dict[str, torch.Tensor]
    notes: List[str] = field(default_factory=list)  # what was chosen or dropped, for the user


def detect_arch(state: Dict[str, torch.Tensor], prefix: str = '') -> str:
    """The RapidNet variant of an authors'-layout state dict, from its shapes.

    Stem width and last-stage width tell B/M apart from S/Ti; the number of inverted-residual
    blocks in stage 1 tells S (3) from Ti (2).
    """
    try:
        c0 = state[f'{prefix}stem.stem.3.weight'].shape[0]
    except KeyError:
        raise CheckpointLayoutError(f"no RapidNet stem ('{prefix}stem.stem.3.weight') in the "
                                    'checkpoint; is it an authors\' RapidNet file?',
                                    sorted(state)[:10]) from None
    stages = {}
    for key, value in state.items():
        parts = key[len(prefix):].split('.') if key.startswith(prefix) else []
        if len(parts) > 3 and parts[0] == 'backbone' and parts[1].isdigit():
            stages.setdefault(int(parts[1]), set()).add(int(parts[2]))
    if len(stages) != 4:
        raise CheckpointLayoutError(f'expected 4 stages under {prefix}backbone., found '
                                    f'{sorted(stages)}')
    channels = [c0] + [state[f'{prefix}backbone.{i}.0.conv.0.weight'].shape[0]
                       for i in (1, 2, 3)]
    blocks_stage1 = len(stages[0])
    for arch, settings in ARCH_SETTINGS.items():
        n_ir_first = settings['ir_blocks'][0]
        if tuple(channels) == settings['channels'] and blocks_stage1 == n_ir_first:
            return arch
    raise CheckpointLayoutError(f'no RapidNet variant has channels {channels} with '
                                f'{blocks_stage1} blocks in stage 1; known: '
                                + ', '.join(f"{a}: {s['channels']}"
                                            for a, s in ARCH_SETTINGS.items()))
