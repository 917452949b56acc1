"""Reading weights, one name per step; call the one that does what you need:

1. :func:`~rapidnet_mm.checkpoints.hub.fetch_checkpoint`: a local path, a Hub location or an
   http(s) URL as a local file (downloaded and cached; nothing is read). Call it when the file
   itself is wanted, e.g. for mmengine's ``load_from``.
2. :func:`read_checkpoint`: the same sources, read safely (no code runs from the file; the
   authors' pickled arguments admitted) into the loaded dict, with one-line errors. Call it
   whenever the contents are wanted.
3. :func:`to_our_layout`: a loaded file of either layout as our state dict
   (:class:`CheckpointWeights`): the authors' converted in memory by
   :func:`~rapidnet_mm.checkpoints.convert_checkpoint` exactly as
   ``tools/model_converters/convert_official.py`` converts them, ours (an mmengine checkpoint,
   e.g. what that tool or ``tools/train.py`` wrote) as it is. Call it on what step 2 returned.
4. :func:`load_into_model`: those weights into a model, strictly.

Below them: :func:`~rapidnet_mm.checkpoints.safe_load.safe_torch_load`, the drop-in for
``torch.load`` (mmengine's loaders, a local file whose errors the caller words itself), and
:func:`~rapidnet_mm.checkpoints.convert_checkpoint`, for the authors' files only.

Used by the ``RapidNetPretrained`` weight initialiser, ``tools/test.py``, ``tools/infer.py``,
mmpretrain's model hub and timm's ``pretrained=True``.
"""
import os.path as osp
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch

from ..errors import InputError
from . import convert_checkpoint, format_modules
from .common import CheckpointLayoutError, Conversion, check_fits
from .hub import LOCAL_COPY, fetch_checkpoint
from .safe_load import AUTHORS_GLOBALS, safe_torch_load

AUTHORS_WEIGHT_SETS = ('ema', 'raw')


def read_checkpoint(path: str, instead: str = LOCAL_COPY) -> dict:
    """The contents of a local file or a URL, read without running code from it (tensors, plain
    containers, mmengine's checkpoint types and the ``argparse.Namespace`` of the authors'
    training arguments), with one-line errors. The file as it is: :func:`to_our_layout` gives
    our state dict.

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
        return safe_torch_load(local, 'cpu', extra=AUTHORS_GLOBALS)
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


def to_our_layout(ckpt: dict, weights: str = 'ema') -> CheckpointWeights:
    """Our state dict from a loaded file (:func:`read_checkpoint`) of either layout: the
    authors' converted in memory, ours as it is.

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


def load_into_model(model: torch.nn.Module, loaded: CheckpointWeights, path: str) -> None:
    """Load ``loaded`` (:func:`to_our_layout`) strictly into ``model``.

    Args:
        model: The model the file's state dict is for.
        loaded: Its weights in our names.
        path: The file's path or URL, for the messages.

    Raises:
        CheckpointLayoutError: a file that shares no key with the model (named as foreign, its
            keys listed), or weights that do not fit it (missing, unexpected or misshapen
            tensors listed).
    """
    own = model.state_dict()
    if not set(own) & set(loaded.state_dict):
        raise CheckpointLayoutError(
            f"{path} fits neither layout: not an authors' RapidNet checkpoint and none of its "
            f'tensors belongs to this config\'s {type(model).__name__}; its keys are',
            sorted(loaded.state_dict))
    check_fits(loaded.state_dict, {k: v.shape for k, v in own.items()},
               f"this config's {type(model).__name__} (from {loaded.source})")
    model.load_state_dict(loaded.state_dict, strict=True)
