"""Evaluate a checkpoint with any rapidnet_mm (or mmpretrain/mmdet/mmseg) config; the config's
default_scope picks the library and its test_evaluator prints the metrics.

CHECKPOINT is a local file or a URL (a Hugging Face Hub file, e.g.
https://huggingface.co/SLDGroup/RapidNet/resolve/main/Detection/RapidNet_M_Detection.pth or
hf://SLDGroup/RapidNet/Detection/RapidNet_M_Detection.pth, downloaded into huggingface_hub's
cache), in rapidnet_mm names or the authors' layout as published (converted in memory).

Usage: python tools/test.py CONFIG CHECKPOINT [--weights ema|raw] [--work-dir DIR]
       [--out results.pkl] [--show-dir DIR [--show-score-thr T]] [--cfg-options k=v ...]
       [--launcher none|pytorch|slurm|mpi] [--debug]
"""
import argparse
import os
import sys

from rapidnet_mm.cli import add_common_args, add_weights_option, check_output_path, run_tool
from rapidnet_mm.config import ConfigError
from rapidnet_mm.config_errors import run_reporting_config_errors
from rapidnet_mm.eval_weights import load_test_weights, read_test_weights
from rapidnet_mm.preflight import (build_runner, check_data_roots, check_sync_bn,
                                   enable_test_visualization)
from rapidnet_mm.run_config import load_config


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Evaluate a checkpoint.')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help="checkpoint file or URL (ours or the authors' as "
                        'published, e.g. a huggingface.co/SLDGroup/RapidNet URL)')
    add_weights_option(parser)
    parser.add_argument('--out', help='also dump the raw predictions to this .pkl file')
    parser.add_argument('--show-dir', help="draw ground truth beside prediction for every test "
                        "image into this folder (the library's visualization hook; "
                        'segmentation: DIR/vis_data/vis_image/)')
    parser.add_argument('--show-score-thr', type=float, default=None,
                        help='detection: draw predictions scoring at least this (default 0.3)')
    add_common_args(parser)
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    return run_tool(lambda: test(args), args.debug)


def test(args: argparse.Namespace) -> None:
    cfg = load_config(args.config, args.cfg_options, args.launcher, args.work_dir)
    if args.out:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ConfigError('--out must end with .pkl')
        if os.environ.get('RANK', '0') == '0':  # the rank that writes it; no race on the probe
            check_output_path(args.out, '--out')
        evaluator = cfg.test_evaluator
        evaluator = list(evaluator) if isinstance(evaluator, (list, tuple)) else [evaluator]
        cfg.test_evaluator = evaluator + [dict(type='mmengine.DumpResults',
                                               out_file_path=args.out)]
    if args.show_dir:
        show_dir = enable_test_visualization(cfg, args.show_dir, args.show_score_thr)
        print(f'drawing ground truth | prediction for every test image into {show_dir}')
    elif args.show_score_thr is not None:
        raise ConfigError('--show-score-thr needs --show-dir')
    check_data_roots(cfg, ['test_dataloader'])
    check_sync_bn(cfg)  # before the weights are read (or downloaded)
    loaded = read_test_weights(cfg, args.checkpoint, args.weights)
    print(f'weights: {loaded.source}')

    def build_and_test():
        runner = build_runner(cfg)
        load_test_weights(runner, loaded, args.checkpoint)
        return runner.test()

    run_reporting_config_errors(build_and_test, cfg, args.cfg_options, args.debug)


if __name__ == '__main__':
    sys.exit(main())
