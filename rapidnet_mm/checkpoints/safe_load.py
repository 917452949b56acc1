"""Reading checkpoints without running code from them, on every torch rapidnet_mm supports.

torch's ``weights_only=True`` unpickler admits tensors and plain containers; the authors' files
also hold an ``argparse.Namespace`` and mmengine's hold its message hub (numpy arrays in a
``HistoryBuffer``). From torch 2.5 ``torch.serialization.safe_globals`` admits exactly those for
one load. Older torch has no such scoped allow-list (torch 2.1-2.3 have no allow-list at all), so
there :class:`RestrictedUnpickler` reads the file: Python's unpickler whose ``find_class`` (the
only way a pickle reaches a class or function) admits torch's own weights-only globals and the
ones named here, and refuses everything else with ``pickle.UnpicklingError``.
"""
import _compat_pickle
import argparse
import codecs
import collections
import contextlib
import os
import pickle
from typing import Any, Dict, List, Sequence

import torch

# the training arguments the authors' files pickle
AUTHORS_GLOBALS = (argparse.Namespace, )

# What torch >= 2.4's weights-only unpickler admits besides torch's own types and torch 2.1's
# does not: torch.save's pickle protocol 2 writes bytes (numpy arrays' data) as
# _codecs.encode(str, 'latin1') and sets, bytearrays, complex numbers and Counters through their
# constructors. mmdet's checkpoints hold a Counter.
PLAIN_GLOBALS = (codecs.encode, bytearray, set, complex, collections.Counter,
                 collections.OrderedDict)

# torch >= 2.5: a scoped allow-list for torch.load(weights_only=True)
TORCH_HAS_SAFE_GLOBALS = hasattr(torch.serialization, 'safe_globals')


def mmengine_checkpoint_globals() -> List[Any]:
    """The types mmengine pickles into its own checkpoints (the message hub's ``HistoryBuffer``
    and the numpy arrays, dtypes and scalars it holds), and nothing else."""
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer
    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 1.26 has no numpy._core
        from numpy.core.multiarray import _reconstruct, scalar
    allowed = [HistoryBuffer, _reconstruct, scalar, np.ndarray, np.dtype]
    # numpy >= 1.25 pickles dtypes as instances of their per-type classes (numpy.dtypes.*).
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        allowed += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith('DType')]
    return allowed


def _global_names(obj: Any) -> List[str]:
    """The names a pickle may use for ``obj``: ``module.name``; numpy 2 writes ``numpy._core``
    where numpy 1 writes ``numpy.core`` (numpy 1.26 reads both), so a numpy function gets both."""
    name = f'{obj.__module__}.{obj.__name__}'
    for old, new in (('numpy.core.', 'numpy._core.'), ('numpy._core.', 'numpy.core.')):
        if name.startswith(old):
            return [name, new + name[len(old):]]
    return [name]


def admitted_globals(extra: Sequence[Any] = ()) -> Dict[str, Any]:
    """What :class:`RestrictedUnpickler` admits, by the name a pickle uses: torch's own
    weights-only globals (tensors, storages, dtypes), :data:`PLAIN_GLOBALS`, mmengine's
    checkpoint types and ``extra``."""
    from torch._weights_only_unpickler import _get_allowed_globals  # in every torch 1.13-2.x
    admitted = dict(_get_allowed_globals())
    for obj in [*PLAIN_GLOBALS, *mmengine_checkpoint_globals(), *extra]:
        admitted.update((name, obj) for name in _global_names(obj))
    return admitted


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only the globals in ``admitted`` (see
    :func:`admitted_globals`); any other one raises ``pickle.UnpicklingError`` before its module
    is even imported."""
    admitted: Dict[str, Any] = {}
    described = 'tensors'  # what ``admitted`` holds, for the refusal

    def find_class(self, module: str, name: str) -> Any:
        # Python 2 names that protocol 2 writes (__builtin__.set), mapped as pickle's own
        # find_class maps them, which this one replaces.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        key = f'{module}.{name}'
        if key in self.admitted:
            return self.admitted[key]
        raise pickle.UnpicklingError(
            f'refused to unpickle {key}: this load admits only {self.described} (torch '
            f'{torch.__version__} has no scoped weights_only allow-list, so rapidnet_mm '
            'restricts unpickling itself); load this file only if you trust it')


def restricted_pickle_module(extra: Sequence[Any] = ()) -> Any:
    """A module-like object for ``torch.load(pickle_module=...)``: its ``Unpickler`` is a
    :class:`RestrictedUnpickler` admitting :func:`admitted_globals` ``(extra)``."""
    described = ', '.join(['tensors', 'plain containers', 'numpy arrays',
                           "mmengine's checkpoint types",
                           *(_global_names(obj)[0] for obj in extra)])
    unpickler = type('RestrictedUnpickler', (RestrictedUnpickler, ),
                     dict(admitted=admitted_globals(extra), described=described))

    def load(file, **kwargs) -> Any:  # the legacy (pre-zip) format's header records
        return unpickler(file, **kwargs).load()

    return type('restricted_pickle', (), dict(
        __name__='restricted_pickle', Unpickler=unpickler, load=staticmethod(load)))


def _torch_forces_weights_only() -> bool:
    # torch's own switch (TORCH_FORCE_WEIGHTS_ONLY_LOAD) makes every load use its unpickler,
    # which refuses a custom pickle_module: then torch's stricter unpickler decides.
    return os.getenv('TORCH_FORCE_WEIGHTS_ONLY_LOAD', '0').lower() in ('1', 'y', 'yes', 'true')


def safe_torch_load(file: Any, map_location: Any = 'cpu', extra: Sequence[Any] = ()) -> Any:
    """``torch.load`` that runs no code from the file, on every torch, admitting tensors, plain
    containers, mmengine's checkpoint types and exactly ``extra`` besides.

    The drop-in for ``torch.load`` (mmengine's loaders, a local file whose errors the caller
    words itself); to read weights from a path or URL with one-line errors call
    :func:`rapidnet_mm.checkpoints.loading.read_checkpoint`.

    Args:
        file: A path or file object, as for ``torch.load``.
        map_location: As for ``torch.load``.
        extra: Further classes or functions to admit (e.g. :data:`AUTHORS_GLOBALS`).

    Raises:
        pickle.UnpicklingError: the file holds anything else (the refused name in the message).
    """
    if TORCH_HAS_SAFE_GLOBALS or _torch_forces_weights_only():
        # mmengine's types are admitted globally by rapidnet_mm.compat where torch can.
        with (torch.serialization.safe_globals(list(extra)) if TORCH_HAS_SAFE_GLOBALS else
              contextlib.nullcontext()):
            return torch.load(file, map_location=map_location, weights_only=True)
    return torch.load(file, map_location=map_location, weights_only=False,
                      pickle_module=restricted_pickle_module(extra))

