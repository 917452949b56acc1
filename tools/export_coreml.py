"""Export a RapidNet model to Core ML (ML program) for the Neural Engine, and report on it.

Usage: python tools/export_coreml.py CONFIG [--checkpoint CKPT] --out PATH.mlpackage
       [--task classifier|backbone] [--input-size H W] [--precision fp16|fp32]
       [--min-target iOS16|iOS17|...] [--dilated-as-dense] [--benchmark N]
       [--compress int8|palette6|palette4 [--min-psnr DB]]

The model is built from CONFIG (mmpretrain, mmdet or mmseg), put in eval mode, reparameterised,
traced and checked against PyTorch, then converted (and with --compress, its weights compressed
and the result's PSNR checked on photographs); the report works on any OS.
"""
import argparse
import sys

from rapidnet_mm.deploy.cli import add_export_args, export_input_size, load_for_export, run_tool
from rapidnet_mm.deploy.coreml import (MIN_TARGETS, PRECISIONS, NeedsMacOS, benchmark_coreml,
                                       check_benchmark_platform, check_min_psnr, check_options,
                                       export_coreml)
from rapidnet_mm.deploy.coreml_compress import (COMPRESSION_MIN_TARGET, COMPRESSIONS,
                                                check_compression)
from rapidnet_mm.deploy.export_module import ExportError


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_export_args(parser)
    parser.add_argument('--out', required=True, help='output .mlpackage')
    parser.add_argument('--precision', default='fp16', choices=PRECISIONS,
                        help='compute and weight precision (default fp16)')
    parser.add_argument('--min-target', default='iOS16', choices=MIN_TARGETS,
                        help='minimum deployment target (default iOS16)')
    parser.add_argument('--compress', choices=tuple(COMPRESSIONS),
                        help='compress the FP16 weights: int8 (linear, per channel), palette6 or '
                        'palette4 (k-means look-up table); needs --min-target '
                        f'{COMPRESSION_MIN_TARGET} or newer')
    parser.add_argument('--min-psnr', type=float, metavar='DB',
                        help='fail when the compressed package is below DB dB PSNR against the '
                        'FP32 model (default: ' + ', '.join(
                            f'{c.name} {c.min_psnr:g}' for c in COMPRESSIONS.values()) + ')')
    parser.add_argument('--benchmark', type=int, metavar='N',
                        help='macOS only: median latency over N predictions per compute unit')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)

    def body() -> None:
        check_options(args.out, args.precision, args.min_target)
        check_compression(args.compress, args.precision, args.min_target, MIN_TARGETS)
        check_min_psnr(args.compress, args.min_psnr)
        if args.benchmark is not None:
            if args.benchmark < 1:
                raise ExportError('--benchmark N needs N >= 1')
            check_benchmark_platform()
        size = export_input_size(args)
        model, norm = load_for_export(args)
        result = export_coreml(model, args.task, size, norm, args.out, args.precision,
                               args.min_target, args.dilated_as_dense,
                               metadata=dict(config=args.config,
                                             checkpoint=args.checkpoint or 'none (random)'),
                               compress=args.compress, min_psnr=args.min_psnr)
        print(result.report.format())
        if args.benchmark:
            print(f'benchmark: {args.benchmark} predictions per compute unit')
            benchmark_coreml(args.out, args.benchmark)
    return run_tool(body, NeedsMacOS)


if __name__ == '__main__':
    sys.exit(main())
