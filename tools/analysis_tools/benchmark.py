"""Latency (batch 1) and throughput (batch N) of RapidNet configs and their peers, training vs
deploy form.

Usage: python tools/analysis_tools/benchmark.py [CONFIG ...] [--peers NAME ...|none] [--device cpu|cuda]
       [--batch-size N] [--input-size H W] [--amp] [--channels-last]
       [--runtime eager|torchscript|inductor|onnxruntime|openvino|executorch ...] [--quantize]
       [--forms train deploy] [--warmup W] [--runs R] [--threads T] [--out table.md]
       [--plot chart.png [--plot-runtimes RUNTIME ...|all]]

Without CONFIGs the four configs/cls/rapidnet_*_in1k.py are timed. Weights are random (speed does
not depend on them); every form's outputs are compared with the eager training form's. Each
runtime runs in its own worker process and the workers take turns round by round (see
rapidnet_mm/analysis/benchmark.py); the table also gives the fraction of an fp32 GEMM's speed that
each entry reaches, the GEMM being timed in the same rounds.
"""
import argparse
import datetime
import sys

import torch

from rapidnet_mm.analysis.benchmark import Settings, measure
from rapidnet_mm.analysis.subjects import PEERS, fixed_input_size, peer_subject, subject_for_config
from rapidnet_mm.analysis.benchmark_report import (default_plot_runtime, format_table, machine,
                                                   plot_accuracy_latency, summary_lines)
from rapidnet_mm.cli import add_device_option, add_input_size, check_output_path, run_tool
from rapidnet_mm.config import ConfigError, config_file
from rapidnet_mm.deploy.runtime import RUNTIMES

VARIANTS = ('ti', 's', 'm', 'b')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0].replace('\n', ' '))
    parser.add_argument('configs', nargs='*', help='model configs (default: the four '
                        'configs/cls/rapidnet_*_in1k.py)')
    parser.add_argument('--peers', nargs='*', default=list(PEERS),
                        help=f'timm peers to time (default all: {" ".join(PEERS)}); "none" for '
                        'none')
    add_device_option(parser, 'cpu', 'where to time (default cpu)')
    parser.add_argument('--batch-size', type=int, default=None,
                        help='throughput batch (default 16 on CPU, 256 on CUDA; 0 skips it)')
    add_input_size(parser, (224, 224), 'input H W (default 224 224)')
    parser.add_argument('--amp', action='store_true',
                        help='autocast (bfloat16 on CPU, float16 on CUDA)')
    parser.add_argument('--channels-last', action='store_true')
    parser.add_argument('--runtime', nargs='+', default=['eager'], choices=RUNTIMES,
                        help='one or more runtimes to time every form under, each in its own '
                        'worker process (default eager): torchscript = traced, frozen and '
                        'optimize_for_inference; inductor = torch.compile with freezing; '
                        'onnxruntime and openvino (CPU, fp32) = the form exported to ONNX by '
                        'the exporter of tools/deployment/export.py --format onnx; executorch '
                        '(CPU, fp32) = the form lowered to XNNPACK as --format executorch does')
    parser.add_argument('--quantize', action='store_true',
                        help='also time the static int8 deploy form under each of onnxruntime, '
                        'openvino and executorch named in --runtime (calibrated on the '
                        'packaged photographs, as export.py --quantize int8 by default)')
    parser.add_argument('--warmup', type=int, default=10, help='untimed runs first (10)')
    parser.add_argument('--runs', type=int, default=50,
                        help='timed runs at batch 1 (50); a fifth of them (at least 5) for the '
                        'throughput batch')
    parser.add_argument('--threads', type=int, help='CPU threads of every runtime and the GEMM '
                        '(default: torch\'s default here)')
    parser.add_argument('--forms', nargs='+', default=['train', 'deploy'],
                        choices=['train', 'deploy'], help='forms to time (both by default)')
    parser.add_argument('--out', help='also write the table (markdown) to this file')
    parser.add_argument('--plot', help='write a chart (png) of published top-1 against the '
                        'measured batch-1 latency of the deploy form here: one panel per runtime '
                        'of --plot-runtimes, fp32 and (with --quantize) int8 markers, RapidNets '
                        'joined by a line; CPU latencies, not the paper\'s iPhone Neural Engine')
    parser.add_argument('--plot-runtimes', nargs='+', metavar='RUNTIME',
                        help='the runtimes of --runtime to draw a panel for, or "all" (default: '
                        'the runtime of the fastest exact entry of the first RapidNet)')
    return parser.parse_args(argv)


def check_args(args) -> None:
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        raise ConfigError(f'--device {args.device}: CUDA is not available here; use --device cpu')
    if args.runs < 1 or args.warmup < 0:
        raise ConfigError('--runs must be >= 1 and --warmup >= 0')
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f'--threads {args.threads}: give at least 1')
    if args.peers == ['none']:
        args.peers = []
    unknown = [p for p in args.peers if p not in PEERS]
    if unknown:
        raise ConfigError(f'unknown peers {unknown}; choose from {list(PEERS)} or "none"')
    fixed = {p: fixed_input_size(p) for p in args.peers}
    wrong = [p for p, size in fixed.items() if size and size != tuple(args.input_size)]
    if wrong:
        raise ConfigError(f'peers {wrong} run only at their fixed input size '
                          f'({", ".join(f"{p}: {fixed[p][0]}x{fixed[p][1]}" for p in wrong)}), '
                          f'not {args.input_size[0]}x{args.input_size[1]}: use that --input-size '
                          'or leave them out of --peers')
    if not args.configs:
        args.configs = [config_file('cls', f'rapidnet_{a}_in1k.py') for a in VARIANTS]
    if args.batch_size is None:
        args.batch_size = 256 if args.device.startswith('cuda') else 16
    if args.batch_size < 0:
        raise ConfigError('--batch-size must be >= 0')
    if args.plot and not args.plot.endswith('.png'):
        raise ConfigError('--plot writes a png: name it *.png')
    if args.plot and 'deploy' not in args.forms:
        raise ConfigError('--plot draws the deploy form: add deploy to --forms')
    if args.plot_runtimes and not args.plot:
        raise ConfigError('--plot-runtimes chooses the panels of --plot: add --plot FILE.png')
    if args.plot_runtimes == ['all']:
        args.plot_runtimes = list(args.runtime)
    unrun = [r for r in args.plot_runtimes or [] if r not in args.runtime]
    if unrun:
        raise ConfigError(f'--plot-runtimes {unrun} were not timed: choose from --runtime '
                          f'{list(args.runtime)} or "all"')
    for option, path in (('--out', args.out), ('--plot', args.plot)):
        if path:
            check_output_path(path, option)


def main(argv=None) -> int:
    args = parse_args(argv)

    def body() -> None:
        check_args(args)
        if args.threads:
            torch.set_num_threads(args.threads)
        settings = Settings(args.device, args.amp, args.channels_last, tuple(args.runtime),
                            args.warmup, args.runs, args.threads or torch.get_num_threads(),
                            args.quantize)
        settings.check()
        batches = [1] + ([args.batch_size] if args.batch_size else [])
        subjects = [subject_for_config(c) for c in args.configs]
        subjects += [peer_subject(p) for p in args.peers]
        print(f'timing {len(subjects)} models ({", ".join(s.name for s in subjects)}), forms '
              f'{list(args.forms)}, runtimes {list(args.runtime)}, batches {batches}', flush=True)
        gemm = measure(subjects, list(args.forms), batches, args.input_size, settings,
                       log=lambda m: print(m, flush=True))
        text = format_table(subjects, args.batch_size, settings, list(args.forms), gemm[1])
        summary = summary_lines(subjects, settings)
        print('\n'.join([text, ''] + summary))
        if args.out:
            with open(args.out, 'w') as f:
                f.write('\n'.join([text, ''] + summary) + '\n')
            print(f'wrote {args.out}')
        if args.plot:
            runtimes = args.plot_runtimes or [default_plot_runtime(subjects)]
            fig = plot_accuracy_latency(subjects, args.plot, runtimes, settings,
                                        args.input_size, machine(settings),
                                        datetime.date.today().isoformat())
            import matplotlib.pyplot as plt
            plt.close(fig)
            print(f'wrote {args.plot} (panels: {", ".join(runtimes)})')
    return run_tool(body)


if __name__ == '__main__':
    sys.exit(main())
