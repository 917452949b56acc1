"""Configs and the models they describe: one place that loads a config of mmpretrain, mmdet or
mmseg (the ``default_scope`` picks the library), applies ``--cfg-options``, and builds its model
with a checkpoint. The training runner, the export command, the benchmark and inference all start
here."""
import copy
import os
import os.path as osp
from typing import Optional

import torch.nn as nn
from mmengine.config import Config

from .errors import RapidNetError
from .shipped import config_file, shipped_file  # noqa: F401  (callers import them from here too)

LIBRARIES = ('mmpretrain', 'mmdet', 'mmseg')


class ConfigError(RapidNetError):
    """A config or setting that cannot run here (a missing file, a scope of no library we serve,
    a setting this machine cannot run); the tools print it as one ``error:`` line."""


def load_model_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """Load ``path``, apply the overrides and check that its scope names a library we serve.

    Args:
        path: A config file.
        cfg_options: ``--cfg-options`` overrides (mmengine's ``key=value`` dict).

    Raises:
        ConfigError: no such file, or a ``default_scope`` of no library in LIBRARIES.
    """
    if not osp.isfile(path):
        raise ConfigError(f'config file not found: {path}')
    import rapidnet_mm  # noqa: F401  (registers our modules even without custom_imports)
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    scope = cfg.get('default_scope')
    if scope not in LIBRARIES:
        raise ConfigError(f'{path} has default_scope={scope!r}; these tools run configs of '
                          f'{", ".join(LIBRARIES)} (set default_scope in the config)')
    return cfg


def own_value_error(err: BaseException) -> Optional[ValueError]:
    """The ValueError raised by rapidnet_mm's own code in ``err``'s chain, if there is one.

    mmengine 0.10's ``build_from_cfg`` lets an error raised while building pass unchanged;
    mmcv 1.x's (and registries modelled on it) re-raised it as
    ``type(e)(f'{obj_cls.__name__}: {e}')`` inside the ``except``, once per nesting level, which
    keeps ours as ``__context__``. Both are found by following the chain to the exception whose
    innermost frame is a file of this package.
    """
    package_dir = osp.dirname(osp.abspath(__file__)) + os.sep
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        tb = err.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        if (isinstance(err, ValueError) and tb is not None
                and osp.abspath(tb.tb_frame.f_code.co_filename).startswith(package_dir)):
            return err
        err = err.__cause__ or err.__context__
    return None


def model_registry(scope: str):
    """The ``MODELS`` registry of the library ``scope`` names."""
    if scope == 'mmpretrain':
        from mmpretrain.registry import MODELS
    elif scope == 'mmdet':
        from mmdet.registry import MODELS
    elif scope == 'mmseg':
        from mmseg.registry import MODELS
    else:
        raise ConfigError(f'default_scope {scope!r} is not one of mmpretrain, mmdet, mmseg')
    return MODELS


def build_model(cfg: Config, checkpoint: Optional[str] = None) -> nn.Module:
    """Build ``cfg.model`` through its library's registry and load ``checkpoint`` strictly.

    Args:
        cfg: A config loaded with :func:`load_model_config`.
        checkpoint: An mmengine checkpoint (or a bare state dict); None keeps random weights.

    Returns:
        The model, on CPU, in eval mode.

    Raises:
        ConfigError: a setting our own code refuses while building (e.g. an unknown arch; the
            original ValueError chained), a missing checkpoint, or one that does not fit.
    """
    from mmengine.registry import DefaultScope
    from mmengine.runner import load_checkpoint
    # building can edit the config it is given (mmpretrain's batch augments do): use a copy
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        try:
            model = model_registry(cfg.default_scope).build(copy.deepcopy(cfg.model))
        except ValueError as err:  # our own clear message about a setting: an expected error
            own = own_value_error(err)
            if own is None:
                raise
            raise ConfigError(str(own)) from err
    if checkpoint is not None:
        if not osp.isfile(checkpoint):
            raise ConfigError(f'checkpoint not found: {checkpoint}')
        try:
            load_checkpoint(model, checkpoint, map_location='cpu', strict=True, logger='silent')
        except RuntimeError as err:
            deploy = getattr(getattr(model, 'backbone', None), 'deploy', None)
            hint = ('a deploy checkpoint (from tools/deployment/reparameterize.py) needs the deploy form: '
                    'use a configs/cls/deploy/ config or --cfg-options model.backbone.deploy=True'
                    if deploy is False else
                    'a training checkpoint needs the training form: drop backbone.deploy=True')
            first = str(err).strip().splitlines()
            raise ConfigError(f'{checkpoint} does not fit the model of the config ({hint}); '
                              f'{" ".join(first[:3])[:400]}') from None
    return model.eval()
