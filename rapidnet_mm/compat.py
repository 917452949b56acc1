"""Narrow fixes for running OpenMMLab 2.x on PyTorch 2.1 to current, applied on import."""
import os
import os.path as osp
from urllib.parse import urlparse

import torch
from torch.torch_version import TorchVersion

from .checkpoints.safe_load import safe_torch_load, mmengine_checkpoint_globals

# HistoryBuffer registers these itself whenever it is created or unpickled.
_DEFAULT_STATISTICS = ('min', 'max', 'current', 'mean')


def _history_buffer_state(self) -> dict:
    """``HistoryBuffer.__getstate__`` without the built-in statistics functions.

    mmengine pickles its four default statistics methods as ``getattr(HistoryBuffer, 'min')``
    etc.; allowing ``builtins.getattr`` in torch's weights-only unpickler would let a checkpoint
    reach arbitrary attributes, so we keep those references out of new checkpoints instead
    (``__setstate__`` re-registers the defaults). Custom statistics are still saved.
    """
    state = dict(self.__dict__)
    state.pop('statistics_methods', None)
    custom = {k: v for k, v in self._statistics_methods.items() if k not in _DEFAULT_STATISTICS}
    if custom:
        state['statistics_methods'] = custom
    return state


def allow_mmengine_checkpoint_globals() -> None:
    """Let ``torch.load(weights_only=True)`` (the default since torch 2.6, used plainly by
    mmengine's ``load_checkpoint`` and resume) read mmengine's own checkpoints.

    mmengine pickles its message hub (``HistoryBuffer`` with numpy arrays and scalars) into the
    checkpoint. Exactly those types are allowed; everything else stays refused. Checkpoints
    written before this fix (by mmengine on its own) also hold ``getattr`` references and stay
    refused by torch's default; load those only if you trust them. torch < 2.4 has no allow-list:
    there :mod:`rapidnet_mm.checkpoints.safe_load` admits the same types itself.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    if hasattr(torch.serialization, 'add_safe_globals'):  # torch >= 2.4
        torch.serialization.add_safe_globals(mmengine_checkpoint_globals())
    HistoryBuffer.__getstate__ = _history_buffer_state


def _torch_loads_weights_only_by_default() -> bool:
    return TorchVersion(torch.__version__) >= '2.6'


def _no_weights_only_asked() -> bool:
    # torch >= 2.6 reads this to load everything (trusted files only); so do the loaders below.
    return os.getenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '0').lower() in ('1', 'y', 'yes', 'true')


def load_from_local_weights_only(filename: str, map_location=None):
    """mmengine's local-file loader, reading through :func:`safe_torch_load` (mmengine logs
    the name after ``load_from_`` as the backend)."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    if _no_weights_only_asked():
        return torch.load(filename, map_location=map_location, weights_only=False)
    return safe_torch_load(filename, map_location)


def load_from_http_weights_only(filename: str, map_location=None, model_dir=None,
                                progress: bool = os.isatty(0)):
    """mmengine's http(s) loader (download into torch's hub cache, local rank 0 first), reading
    the file through :func:`load_from_local_weights_only`."""
    from mmengine.dist import get_dist_info
    model_dir = model_dir or osp.join(torch.hub.get_dir(), 'checkpoints')
    cached = osp.join(model_dir, osp.basename(urlparse(filename).path))

    def download() -> None:
        if not osp.exists(cached):
            os.makedirs(model_dir, exist_ok=True)
            torch.hub.download_url_to_file(filename, cached, None, progress=progress)

    rank, world_size = get_dist_info()
    if rank == 0:
        download()
    if world_size > 1:
        torch.distributed.barrier()
        if rank > 0:
            download()
    return load_from_local_weights_only(cached, map_location)


def load_mmengine_checkpoints_weights_only() -> None:
    """On torch < 2.6, where ``torch.load`` unpickles anything unless told otherwise, make
    mmengine's loaders of local files and http(s) URLs (``load_from``, ``resume``,
    ``Pretrained`` initialisers, ``tools/test.py``'s checkpoint) read as torch >= 2.6 does by
    default: weights only, plus mmengine's own checkpoint types.
    ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` lifts it, as it lifts torch's default. Other mmengine
    schemes (``open-mmlab://``, ``torchvision://``, ``s3://``, ...) keep mmengine's own loader.
    """
    from mmengine.runner import CheckpointLoader
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local_weights_only, force=True)
    CheckpointLoader.register_scheme(prefixes=('http://', 'https://'),
                                     loader=load_from_http_weights_only, force=True)


allow_mmengine_checkpoint_globals()
if not _torch_loads_weights_only_by_default():
    load_mmengine_checkpoints_weights_only()
