"""Train any rapidnet_mm (or mmpretrain/mmdet/mmseg) config; the config's default_scope picks the
library. Multi-GPU / multi-node: ``torchrun --nproc_per_node=N tools/train.py CONFIG --launcher
pytorch`` (or slurm), through mmengine's launchers; tools/dist_train.sh and tools/slurm_train.sh
wrap these.

Usage: python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp | --no-amp]
       [--auto-scale-lr] [--no-validate] [--cfg-options k=v ...] [--launcher none|pytorch|slurm|mpi]
"""
import argparse
import sys

from rapidnet_mm.cli import add_common_args, run_tool
from rapidnet_mm.config import ConfigError
from rapidnet_mm.config_errors import run_reporting_config_errors
from rapidnet_mm.preflight import (build_runner, check_data_roots, check_pretrained_checkpoints,
                                   check_training_devices)
from rapidnet_mm.run_config import load_config
from rapidnet_mm.teacher_weights import prepare_teacher


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a model from a config.')
    parser.add_argument('config', help='config file')
    parser.add_argument('--resume', nargs='?', const='auto', default=None,
                        help='resume from CKPT, or without a value from the latest checkpoint '
                        'in the work dir')
    amp = parser.add_mutually_exclusive_group()
    amp.add_argument('--amp', action='store_true', help='automatic mixed precision')
    amp.add_argument('--no-amp', action='store_true',
                     help='train in fp32 even if the config uses AmpOptimWrapper (CPU)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help="scale the lr by the actual total batch (config's auto_scale_lr)")
    parser.add_argument('--no-validate', action='store_true',
                        help='do not evaluate checkpoints during training')
    add_common_args(parser)
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    return run_tool(lambda: train(args), args.debug)


def train(args: argparse.Namespace) -> None:
    cfg = load_config(args.config, args.cfg_options, args.launcher, args.work_dir)
    if args.amp:
        if cfg.optim_wrapper.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
            print('note: the config already trains with AmpOptimWrapper')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.no_amp:
        cfg.optim_wrapper.type = 'OptimWrapper'
        for key in ('loss_scale', 'dtype'):  # AmpOptimWrapper's own arguments
            cfg.optim_wrapper.pop(key, None)
    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise ConfigError('--auto-scale-lr needs auto_scale_lr.base_batch_size in the config')
        cfg.auto_scale_lr.enable = True
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    check_training_devices(cfg)
    check_data_roots(cfg, ['train_dataloader'] + ([] if args.no_validate else ['val_dataloader']))
    check_pretrained_checkpoints(cfg)
    prepare_teacher(cfg)  # before the runner: no step is taken against a missing teacher
    run_reporting_config_errors(lambda: build_runner(cfg).train(), cfg, args.cfg_options,
                                args.debug)


if __name__ == '__main__':
    sys.exit(main())
