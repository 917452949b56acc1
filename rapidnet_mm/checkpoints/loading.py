"""Reading a weights file whatever its layout: the authors' (converted in memory by the format
modules, exactly as ``tools/model_converters/convert_official.py`` converts it) or ours (an mmengine checkpoint,
e.g. what ``tools/model_converters/convert_official.py`` or ``tools/train.py`` wrote), from a local
path or a URL (downloaded by :mod:`.hub`).

Used by the ``RapidNetPretrained`` weight initialiser, ``tools/test.py``, ``tools/infer.py`` and
timm's ``pretrained=True``.
"""
import os.path as osp
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch

from ..errors import InputError
from . import convert_checkpoint, format_modules
from .common import CheckpointLayoutError, Conversion, check_fits
from .hub import LOCAL_COPY, fetch_checkpoint
from .safe_load import AUTHORS_GLOBALS, load_weights_only

AUTHORS_WEIGHT_SETS = ('ema', 'raw')


def load_checkpoint_file(path: str) -> dict:
    """``torch.load(weights_only=True)`` that also allows exactly ``argparse.Namespace``.

    The authors' training files pickle their arguments as a Namespace; mmengine's own checkpoint
    types are allowed too (:mod:`.safe_load`, on every torch). Anything else stays refused
    (``pickle.UnpicklingError``).
    """
    return load_weights_only(path, 'cpu', extra=AUTHORS_GLOBALS)


def read_checkpoint_file(path: str, instead: str = LOCAL_COPY) -> dict:
    """:func:`load_checkpoint_file` of a local file or a URL, with one-line errors.

    Args:
        path: A local path, a Hugging Face Hub location or another http(s) URL (see
            :func:`~rapidnet_mm.checkpoints.hub.fetch_checkpoint`).
        instead: How to give a local copy instead of a URL, for the error messages.

    Raises:
        FileNotFoundError: no file at a local ``path``.
        CheckpointDownloadError: a URL that cannot be downloaded.
        CheckpointLayoutError: the file cannot be read as a (safe) PyTorch checkpoint.
    """
    local = fetch_checkpoint(path, instead)
    try:
        return load_checkpoint_file(local)
    except Exception as err:  # noqa: BLE001  (any unpickling failure is one clear message)
        text = str(err).strip()
        first = text.splitlines()[0] if text else type(err).__name__
        if local == path:
            raise CheckpointLayoutError(f'cannot read {path} as a PyTorch checkpoint: {first}') \
                from err
        raise CheckpointLayoutError(
            f'cannot read {path} as a PyTorch checkpoint ({first}): the download, '
            f'{osp.realpath(local)}, is truncated or not a checkpoint; delete that file to '
            f'download it again, or {instead}') from err


@dataclass
class CheckpointWeights:
    """The tensors of a weights file in our names, and where they came from."""
    state_dict: Dict[str, torch.Tensor]
    source: str  # one line for the user
    meta: dict = field(default_factory=dict)  # the file's 'meta' (mmengine's, or mmdet 2.x's)
    conversion: Optional[Conversion] = None  # set when the file was in the authors' layout


def file_keys(ckpt) -> List[str]:
    """The keys worth listing when a file is refused: its state dict's, else its own."""
    if not isinstance(ckpt, dict):
        return []
    state = ckpt.get('state_dict')
    return sorted(map(str, state if isinstance(state, dict) else ckpt))


def _meta(ckpt: dict) -> dict:
    meta = ckpt.get('meta')
    return meta if isinstance(meta, dict) else {}


def read_weights(ckpt: dict, weights: str = 'ema') -> CheckpointWeights:
    """Our state dict from a loaded file of either layout.

    Args:
        ckpt: The loaded file.
        weights: For the authors' ImageNet files: 'ema' (``state_dict_ema``, what the authors'
            downstream code loads) or 'raw' (``state_dict``). Other files hold one set of
            weights; asking them for 'raw' raises InputError rather than being ignored.

    Raises:
        CheckpointLayoutError: an authors' file that cannot be mapped, or a file with no state
            dict (its keys listed).
        InputError: ``weights`` that is not 'ema'/'raw' or does not apply to the file.
    """
    if weights not in AUTHORS_WEIGHT_SETS:
        raise InputError(f'weights must be one of {AUTHORS_WEIGHT_SETS}, got {weights!r}')
    if not isinstance(ckpt, dict):
        raise CheckpointLayoutError(f'expected a checkpoint dict, got {type(ckpt).__name__}')
    kind = next((m.__name__.rsplit('.', 1)[-1] for m in format_modules() if m.matches(ckpt)),
                None)
    if kind is not None:
        if kind != 'classification' and weights != 'ema':
            raise InputError(f"weights={weights!r} applies to the authors' ImageNet files; this "
                             f'is an authors\' {kind} checkpoint with a single set of weights')
        options = dict(weights=weights) if kind == 'classification' else {}
        conversion = convert_checkpoint(ckpt, **options)
        return CheckpointWeights(
            state_dict=conversion.state_dict, conversion=conversion, meta=_meta(ckpt),
            source=(f"the authors' {conversion.kind} checkpoint of RapidNet-{conversion.arch}, "
                    'converted in memory' + ''.join(f'; {n}' for n in conversion.notes
                                                    if n.startswith('converted the'))))
    state = ckpt.get('state_dict', ckpt)
    if not isinstance(state, dict) or not state or not all(
            isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointLayoutError(
            "neither an authors' RapidNet checkpoint nor an mmengine one (no 'state_dict' of "
            'tensors); its keys are', file_keys(ckpt))
    if weights != 'ema':
        raise InputError(f"weights={weights!r} applies to the authors' ImageNet files; this "
                         'mmengine checkpoint holds a single set of weights')
    return CheckpointWeights(state_dict=dict(state), meta=_meta(ckpt),
                             source='an mmengine checkpoint in rapidnet_mm names')


def load_into(model: torch.nn.Module, loaded: CheckpointWeights, path: str) -> None:
    """Load ``loaded`` strictly into ``model``; a file that shares no key with the model is
    named as foreign, with its keys."""
    own = model.state_dict()
    if not set(own) & set(loaded.state_dict):
        raise CheckpointLayoutError(
            f"{path} fits neither layout: not an authors' RapidNet checkpoint and none of its "
            f'tensors belongs to this config\'s {type(model).__name__}; its keys are',
            sorted(loaded.state_dict))
    check_fits(loaded.state_dict, {k: v.shape for k, v in own.items()},
               f"this config's {type(model).__name__} (from {loaded.source})")
    model.load_state_dict(loaded.state_dict, strict=True)
