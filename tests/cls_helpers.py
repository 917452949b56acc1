"""Synthetic data, teachers, authors'-layout checkpoints and tiny configs for the classification
tests (made on the fly in a tmp dir; nothing is downloaded)."""
import argparse
import os
import os.path as osp
import socket
import subprocess
import sys
from typing import List, Optional

import torch
from tool_helpers import ROOT

# the tiny dataset, teacher and pipeline resizing live in the package (the GPU check uses them)
from rapidnet_mm.datasets.tiny_imagenet import (NUM_CLASSES, TINY_TEACHER,  # noqa: F401
                                                make_imagenet, make_teacher_checkpoint,
                                                scale_sizes)

PYTHON = sys.executable


def tiny_config(base: str, out_path: str, data_root: str, teacher_ckpt: Optional[str],
                batch_size: int = 4, epochs: int = 1, backend: Optional[str] = None,
                keep_teacher_checkpoint: bool = False) -> str:
    """A copy of ``base`` (a configs/cls file) shrunk to a CPU smoke run: 4 classes, 64 px crops,
    the tiny teacher, plain fp32 optimiser wrapper; everything else (pipeline, sampler, mixup,
    EMA, schedule) as in the real config. ``keep_teacher_checkpoint``: the config's own teacher
    checkpoint (its default URL) instead of ``teacher_ckpt``."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(ROOT, base))
    cfg.data_preprocessor.num_classes = NUM_CLASSES
    cfg.model.head.num_classes = NUM_CLASSES
    cfg.model.head.topk = (1, )
    if keep_teacher_checkpoint:
        teacher_ckpt = cfg.model.teacher.checkpoint
    cfg.model.teacher = dict(arch=TINY_TEACHER, checkpoint=teacher_ckpt)
    for loader, split in (('train_dataloader', 'train'), ('val_dataloader', 'val'),
                          ('test_dataloader', 'val')):
        cfg[loader].batch_size = batch_size
        cfg[loader].num_workers = 0
        cfg[loader].persistent_workers = False
        cfg[loader].dataset.data_root = data_root
        cfg[loader].dataset.split = split
        scale_sizes(cfg[loader].dataset.pipeline, {224: 64, 248: 72})
    cfg.val_evaluator = cfg.test_evaluator = dict(type='Accuracy', topk=(1, ))
    cfg.optim_wrapper.type = 'OptimWrapper'  # AMP needs a GPU
    cfg.optim_wrapper.pop('loss_scale')
    cfg.train_cfg.max_epochs = epochs
    cfg.default_hooks.logger.interval = 1
    cfg.randomness = dict(seed=0)
    if backend:
        cfg.env_cfg.dist_cfg.backend = backend
    cfg.dump(out_path)
    return out_path


def free_port() -> int:
    """A TCP port free on this machine now (for torchrun's rendezvous)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run_tool(args: List[str], timeout: int = 600, env: Optional[dict] = None,
             cwd: str = ROOT) -> subprocess.CompletedProcess:
    """Run a command line tool of this repository with the test's interpreter."""
    full_env = dict(os.environ, PYTHONWARNINGS='ignore', OMP_NUM_THREADS='1', **(env or {}))
    return subprocess.run(args, cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=timeout)


def authors_checkpoint(model: torch.nn.Module, ema: torch.nn.Module) -> dict:
    """The dict the authors' training script saves (rapidnet_mm/checkpoints/classification.py)."""
    return {
        'state_dict': model.state_dict(),
        'state_dict_ema': ema.state_dict(),
        'optimizer': {'state': {}, 'param_groups': [{'lr': 1e-5, 'params': [0, 1]}]},
        'lr_scheduler': {'base_lrs': [4e-3], 'last_epoch': 299},
        'epoch': 299,
        'scaler': {'scale': 65536.0, 'growth_factor': 2.0},
        'args': argparse.Namespace(model='RapidNet_Ti', lr=2e-3, batch_size=128),
    }
