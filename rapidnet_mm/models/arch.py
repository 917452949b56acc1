"""RapidNet's variants: the table ``ARCH_SETTINGS`` of the paper's four sizes, and
:func:`resolve_arch` for a name or a custom dict of the same keys."""
from collections.abc import Mapping
from typing import Dict, Sequence, Union

ARCH_KEYS = ('ir_blocks', 'mldc_blocks', 'channels', 'head_width')
# What a custom arch dict may leave out.
ARCH_DEFAULTS = dict(head_width=512)
# The table's keys before they said what they hold (refused in a custom arch dict, with the
# new keys: _renamed_keys_message)
OLD_ARCH_KEYS = ('blocks', 'embed_dims')


class ArchSettings(Mapping):
    """One variant, read as a dict: per stage, its inverted-residual block count
    (``ir_blocks``), its MLDC block count (``mldc_blocks``, after the inverted-residual ones) and
    its width (``channels``); ``head_width``: the width of the classification head's embedding
    (1x1 conv after pooling).
    """

    def __init__(self, ir_blocks: Sequence[int], mldc_blocks: Sequence[int],
                 channels: Sequence[int], head_width: int = ARCH_DEFAULTS['head_width']) -> None:
        self._fields = dict(ir_blocks=tuple(ir_blocks), mldc_blocks=tuple(mldc_blocks),
                            channels=tuple(channels), head_width=head_width)

    def __getitem__(self, key: str):
        return self._fields[key]

    def __iter__(self):
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        return f'ArchSettings({", ".join(f"{k}={v}" for k, v in self._fields.items())})'


# The variant table: the paper's four sizes.
ARCH_SETTINGS: Dict[str, ArchSettings] = {
    'ti': ArchSettings(ir_blocks=(2, 2, 6, 2), mldc_blocks=(0, 0, 2, 2),
                       channels=(32, 64, 112, 224), head_width=512),
    's': ArchSettings(ir_blocks=(3, 3, 9, 3), mldc_blocks=(0, 0, 3, 3),
                      channels=(32, 64, 112, 224), head_width=512),
    'm': ArchSettings(ir_blocks=(3, 3, 9, 3), mldc_blocks=(0, 0, 3, 3),
                      channels=(32, 64, 160, 320), head_width=512),
    'b': ArchSettings(ir_blocks=(3, 3, 9, 3), mldc_blocks=(0, 0, 3, 3),
                      channels=(64, 128, 224, 416), head_width=768),
}


def _renamed_keys_message(arch: dict) -> str:
    """The one line for a custom arch dict with the table's old keys: the new ones, with the
    values they take where ``arch`` gives them."""
    parts = []
    if 'blocks' in arch:
        try:
            ir, mldc = zip(*arch['blocks'])
            parts.append(f"'blocks' is now ir_blocks={tuple(ir)}, mldc_blocks={tuple(mldc)}")
        except (TypeError, ValueError):
            parts.append("'blocks' (per stage: inverted-residual, MLDC blocks) is now two keys, "
                         'ir_blocks and mldc_blocks')
    if 'embed_dims' in arch:
        parts.append(f"'embed_dims' is now head_width={arch['embed_dims']}")
    return 'RapidNet arch keys were renamed: ' + '; '.join(parts)


def resolve_arch(arch: Union[str, dict]) -> ArchSettings:
    """Return the variant settings for a name in ARCH_SETTINGS or a dict with the same keys.

    Args:
        arch: 'ti', 's', 'm', 'b' (any case) or a dict with ``ir_blocks``, ``mldc_blocks``,
            ``channels`` (one value per stage each) and optionally ``head_width`` (512).

    Raises:
        ValueError/TypeError: an unknown name or a malformed dict, naming what is valid (for
            the old keys ``blocks`` and ``embed_dims``, the new keys with their values).
    """
    if isinstance(arch, str):
        key = arch.lower()
        if key not in ARCH_SETTINGS:
            raise ValueError(f'unknown RapidNet arch {arch!r}; choose one of '
                             f'{sorted(ARCH_SETTINGS)} or pass a dict with keys '
                             + ', '.join(f"'{k}'" for k in ARCH_KEYS[:-1])
                             + f" and '{ARCH_KEYS[-1]}'")
        return ARCH_SETTINGS[key]
    if isinstance(arch, ArchSettings):
        return arch
    if not isinstance(arch, dict):
        raise TypeError(f'arch must be a str or a dict, got {type(arch).__name__}')
    if set(arch) & set(OLD_ARCH_KEYS):
        raise ValueError(_renamed_keys_message(arch))
    missing = set(ARCH_KEYS) - set(ARCH_DEFAULTS) - set(arch)
    unknown = set(arch) - set(ARCH_KEYS)
    if missing or unknown:
        raise ValueError(f'a custom RapidNet arch dict needs keys ir_blocks, mldc_blocks and '
                         f'channels (and optionally head_width); missing {sorted(missing)}, '
                         f'unknown {sorted(unknown)}')
    ir_blocks, mldc_blocks = tuple(arch['ir_blocks']), tuple(arch['mldc_blocks'])
    channels = tuple(arch['channels'])
    if not len(ir_blocks) == len(mldc_blocks) == len(channels) or not channels:
        raise ValueError(f'arch ir_blocks ({len(ir_blocks)} stages), mldc_blocks '
                         f'({len(mldc_blocks)}) and channels ({len(channels)}) must have the '
                         'same, non-zero length')
    for i, (n_ir, n_mldc) in enumerate(zip(ir_blocks, mldc_blocks)):
        if not all(isinstance(n, int) for n in (n_ir, n_mldc)) or min(n_ir, n_mldc) < 0 or \
                n_ir + n_mldc == 0:
            raise ValueError(f'arch stage {i}: ir_blocks={n_ir}, mldc_blocks={n_mldc}; each '
                             'stage needs non-negative counts, not both zero')
    if any(c <= 0 or c % 2 for c in channels[:1]) or min(channels) <= 0:
        raise ValueError(f'arch channels {channels} must be positive, the first one even')
    return ArchSettings(ir_blocks, mldc_blocks, channels,
                        arch.get('head_width', ARCH_DEFAULTS['head_width']))
