"""Check on one GPU that the shipped recipes train, that CUDA equals CPU, and what they cost.

Stages, in order: env (versions, mmcv's ops built with torch's CUDA), ops (mmcv's RoIAlign and NMS
on CUDA against CPU), backbone (each RapidNet's CUDA outputs against CPU), train_det, train_seg,
train_cls (a few AMP/SyncBN iterations of each task's recipe on synthetic data through torchrun),
infer (images/s and peak memory at batch 256 against the timm peers). Writes gpu_check.json and
gpu_check.md to --out and prints the tables; exit status 1 when a check failed, 2 when it cannot
run here. The code is rapidnet_mm/analysis/gpu_check.py and the gpu_check_*.py beside it.

Usage: python tools/analysis_tools/gpu_check.py --out DIR [--rehearse-on-cpu]
       [--stages STAGE ...] [--work-dir DIR]
"""
import argparse
import sys

from rapidnet_mm.analysis.gpu_check import STAGES, run_check
from rapidnet_mm.cli import check_output_path, run_tool


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     epilog='Stages: ' + ', '.join(STAGES))
    parser.add_argument('--out', required=True,
                        help='folder for gpu_check.json and gpu_check.md')
    parser.add_argument('--rehearse-on-cpu', action='store_true',
                        help='run the same code paths on CPU with tiny sizes (gloo, BN, fp32); '
                        'the CUDA-vs-CPU comparisons are skipped')
    parser.add_argument('--stages', nargs='+', choices=STAGES, default=list(STAGES),
                        help='run only these stages (default: all, in order)')
    parser.add_argument('--work-dir', help='data, configs and training logs (default: a new '
                        'temporary folder, kept)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)

    def body() -> int:
        check_output_path(args.out, '--out', folder=True)
        if args.work_dir:
            check_output_path(args.work_dir, '--work-dir', folder=True)
        return 0 if run_check(args.out, args.rehearse_on_cpu, args.stages, args.work_dir) else 1
    return run_tool(body)


if __name__ == '__main__':
    sys.exit(main())
