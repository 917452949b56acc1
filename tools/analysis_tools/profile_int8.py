"""Where the time of a model's static int8 file goes, against its fp32 file: per-operator
profiles in ONNX Runtime (its profiler), OpenVINO (its performance counters) and ExecuTorch (its
event tracer).

Usage: python tools/analysis_tools/profile_int8.py [CONFIG | --peer TIMM_NAME]
       [--runtime onnxruntime openvino executorch] [--input-size H W] [--runs R] [--threads T]
       [--out FILE.md]

The files are the benchmark's ``--quantize`` entries (random weights; the calibration images of
``export.py --quantize int8``), the fp32 and int8 file of a runtime run in turns. In ONNX Runtime
and OpenVINO convolutions are grouped by what they are (depthwise, pointwise, dense or dilated
kxk, the image's first convolution), other operators by the runtime's name; in ExecuTorch every
row is an XNNPACK operator. Each row gives its summed kernel time per run in fp32 and int8 and
the int8 speed-up.
"""
import argparse
import datetime
import sys

import torch

from rapidnet_mm.analysis.op_profile import RUNTIMES, format_pair, profile_model
from rapidnet_mm.analysis.subjects import PEERS, peer_subject, subject_for_config
from rapidnet_mm.cli import add_input_size, check_output_path, run_tool
from rapidnet_mm.config import ConfigError, config_file
from rapidnet_mm.deploy.cpu_features import cpu_features


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0].replace('\n', ' '))
    parser.add_argument('config', nargs='?', help='a classification config (default: '
                        'configs/cls/rapidnet_ti_in1k.py)')
    parser.add_argument('--peer', choices=sorted(PEERS),
                        help='profile this timm peer of the benchmark instead of a config')
    parser.add_argument('--runtime', nargs='+', choices=RUNTIMES, default=list(RUNTIMES),
                        help='runtimes to profile (default all three)')
    add_input_size(parser, (224, 224), 'input height and width (default: 224 224)')
    parser.add_argument('--runs', type=int, default=20, help='profiled runs (20)')
    parser.add_argument('--threads', type=int, default=None,
                        help="threads of each runtime (default: torch's default here)")
    parser.add_argument('--out', help='also write the tables (markdown) to this file')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_tool(lambda: report(args))


def report(args: argparse.Namespace) -> None:
    if args.config and args.peer:
        raise ConfigError('give a config or --peer, not both')
    if args.runs < 1:
        raise ConfigError(f'--runs {args.runs}: give at least 1')
    if args.out:
        check_output_path(args.out, '--out')
    if args.peer:
        subject = peer_subject(args.peer)
    else:
        subject = subject_for_config(args.config or config_file('cls', 'rapidnet_ti_in1k.py'))
    if subject.what != 'classifier':
        raise ConfigError(f'{args.config} is not a classification config; profile_int8 times '
                          'classifiers (configs/cls/)')
    # each runtime gets the threads explicitly; torch's own pool (export, calibration) is left
    threads = args.threads or torch.get_num_threads()
    h, w = args.input_size
    lines = [f'{subject.name}, deploy form, 1x3x{h}x{w}, {threads} threads, {args.runs} runs, '
             f'{cpu_features().describe()}, {datetime.date.today().isoformat()}']
    for fp32, int8 in profile_model(subject.forms['deploy'], args.runtime, (h, w), args.runs,
                                    threads):
        lines += [''] + format_pair(fp32, int8)
    text = '\n'.join(lines)
    print(text)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(text + '\n')


if __name__ == '__main__':
    sys.exit(main())
