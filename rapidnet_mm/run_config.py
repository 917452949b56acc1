"""The config of a run: a model config (:mod:`rapidnet_mm.config`) with what mmengine's Runner
needs besides, the launcher and the work dir. ``tools/train.py``, ``tools/test.py``,
``tools/infer.py`` and ``tools/demo.py`` load their configs here."""
import os
import os.path as osp
from typing import Optional

from mmengine.config import Config

from .config import load_model_config


def load_config(path: str, cfg_options: Optional[dict], launcher: str,
                work_dir: Optional[str]) -> Config:
    """:func:`~rapidnet_mm.config.load_model_config`, then the launcher and the work dir
    (``./work_dirs/<config name>`` unless given or set by the config) of a Runner."""
    cfg = load_model_config(path, cfg_options)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = '0'
    cfg.launcher = launcher
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(path))[0])
    return cfg
