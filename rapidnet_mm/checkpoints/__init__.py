"""The authors' checkpoint layouts (classification, mmdet 2.x, mmseg 0.x) -> rapidnet_mm's.

:func:`convert_checkpoint` finds the format module (``classification``, ``detection``,
``segmentation``, tried in that order) whose ``matches`` accepts a loaded file and returns its
``convert``.
"""
import importlib
import inspect
from types import ModuleType
from typing import List

from ..errors import InputError
from .backbone import convert_original_state, map_backbone_key, map_head_key
from .common import CheckpointLayoutError, Conversion, detect_arch
from .hub import CheckpointDownloadError, fetch_checkpoint

FORMAT_MODULES = ('classification', 'detection', 'segmentation')


def format_modules() -> List[ModuleType]:
    """The format modules that exist, in the order they are tried."""
    modules = []
    for name in FORMAT_MODULES:
        try:
            modules.append(importlib.import_module(f'{__name__}.{name}'))
        except ModuleNotFoundError as err:
            if err.name != f'{__name__}.{name}':  # a module that exists but fails to import
                raise
    return modules


def convert_checkpoint(ckpt: dict, **options) -> Conversion:
    """Convert a loaded authors' checkpoint with the first format module that matches it.

    For the authors' files only (``tools/model_converters/convert_official.py``); for a file of
    either layout call :func:`rapidnet_mm.checkpoints.loading.to_our_layout`.

    Args:
        ckpt: The loaded file.
        **options: Passed to the module's ``convert`` (e.g. ``weights='raw'`` for
            classification); an option that module does not take raises InputError.

    Raises:
        CheckpointLayoutError: no format matches, or the matching one cannot map the file.
        InputError: an option the matching format does not take.
    """
    if not isinstance(ckpt, dict):
        raise CheckpointLayoutError(f'expected a checkpoint dict, got {type(ckpt).__name__}')
    modules = format_modules()
    for module in modules:
        if not module.matches(ckpt):
            continue
        kind = module.__name__.rsplit('.', 1)[-1]
        params = inspect.signature(module.convert).parameters
        takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
        unsupported = [k for k in options if k not in params and not takes_any]
        if unsupported:
            raise InputError(f'option(s) {unsupported} do not apply to a {kind} checkpoint')
        return module.convert(ckpt, **options)
    tried = ', '.join(m.__name__.rsplit('.', 1)[-1] for m in modules)
    raise CheckpointLayoutError(f'not an authors\' RapidNet checkpoint of any known layout '
                                f'(tried: {tried}); its top-level keys are', sorted(map(str, ckpt)))


__all__ = ['CheckpointDownloadError', 'CheckpointLayoutError', 'Conversion', 'FORMAT_MODULES',
           'convert_checkpoint', 'convert_original_state', 'detect_arch', 'fetch_checkpoint',
           'format_modules', 'map_backbone_key', 'map_head_key']
