"""Export a model to Core ML, ExecuTorch, ONNX, OpenVINO or TorchScript and check the file
against PyTorch.

Usage: python tools/deployment/export.py CONFIG [--checkpoint CKPT]
       --format coreml|executorch|onnx|openvino|torchscript --out PATH
       [--task classifier|backbone|segmentor] [--input-size H W] [--dilated-as-dense]
       [--cfg-options k=v ...]
       Core ML only:    [--precision fp16|fp32] [--min-target iOS16|...] [--benchmark N]
                        [--compress int8|palette6|palette4 [--min-psnr DB]]
       ExecuTorch only: [--delegate xnnpack|coreml]
       ONNX only:       [--opset N]
       ExecuTorch, ONNX, OpenVINO: [--quantize int8 [--calib DIR] [--min-psnr DB]
                                   [--min-pixel-agreement F] [--min-top1-agreement F]]

The model is built from CONFIG (mmpretrain, mmdet or mmseg) with CKPT (training or deploy form;
random weights without it), reparameterised, and exported with the input normalisation built in:
the file takes 8-bit pixel values. Every format is checked against the PyTorch model before the
file is put in place; a failed check leaves nothing at PATH. --out names the file: .mlpackage,
.pte, .onnx, .xml (OpenVINO writes the .bin beside it) or .pt.
"""
import argparse
import sys

from rapidnet_mm.cli import (add_cfg_options, add_input_size, check_output_path,
                             input_size_or_default, run_tool)
from rapidnet_mm.deploy.coreml import MIN_TARGETS, PRECISIONS
from rapidnet_mm.deploy.coreml_compress import COMPRESSION_MIN_TARGET, COMPRESSIONS
from rapidnet_mm.deploy.executorch_export import DELEGATES
from rapidnet_mm.deploy.export_module import TASKS, check_input_size
from rapidnet_mm.deploy.formats import FORMATS, check_request, export_model
from rapidnet_mm.deploy.int8 import (DEFAULT_MIN_PIXEL_AGREEMENT, DEFAULT_MIN_PSNR,
                                     DEFAULT_MIN_TOP1_AGREEMENT, QUANTIZE)
from rapidnet_mm.deploy.onnx_export import DEFAULT_OPSET, GELU_OPSET


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='model config (mmpretrain, mmdet or mmseg)')
    parser.add_argument('--checkpoint', help='weights, training or deploy form (default: random '
                        'weights, for trying the export)')
    parser.add_argument('--format', required=True, choices=tuple(FORMATS), help='what to write')
    parser.add_argument('--out', required=True, help='the file to write: ' + ', '.join(
        f'{name} *{spec.suffix}' for name, spec in FORMATS.items()))
    parser.add_argument('--task', default='classifier', choices=TASKS,
                        help='classifier: image -> logits; backbone: image -> feat_s4..feat_s32; '
                        'segmentor (mmseg configs): image -> seg_logits (N, C, H, W)')
    add_input_size(parser, None, 'fixed input H W (multiples of 32); default 224 224 for the '
                   'classifier, required otherwise (e.g. 512 512)')
    parser.add_argument('--dilated-as-dense', action='store_true',
                        help='rewrite each dilated 3x3 conv as the equal dense (2d+1)x(2d+1) one')
    add_cfg_options(parser)
    coreml = parser.add_argument_group('Core ML only')
    coreml.add_argument('--precision', choices=PRECISIONS,
                        help='compute and weight precision (default fp16)')
    coreml.add_argument('--min-target', choices=MIN_TARGETS,
                        help='minimum deployment target (default iOS16)')
    coreml.add_argument('--compress', choices=tuple(COMPRESSIONS),
                        help='compress the FP16 weights: int8 (linear, per channel), palette6 or '
                        'palette4 (k-means look-up table); needs --min-target '
                        f'{COMPRESSION_MIN_TARGET} or newer')
    coreml.add_argument('--min-psnr', type=float, metavar='DB',
                        help='fail when the compressed package (or, with --quantize, the int8 '
                        'file\'s lowest output) is below DB dB PSNR against the FP32 model '
                        '(default: ' + ', '.join(
                            f'{c.name} {c.min_psnr:g}' for c in COMPRESSIONS.values())
                        + f', --quantize int8 {DEFAULT_MIN_PSNR:g})')
    coreml.add_argument('--benchmark', type=int, metavar='N',
                        help='macOS only: median latency over N predictions per compute unit')
    executorch = parser.add_argument_group('ExecuTorch only')
    executorch.add_argument('--delegate', choices=DELEGATES,
                            help='xnnpack (default: CPU kernels of Android and iOS, run and '
                            'checked here) or coreml (Apple devices only; not run here)')
    onnx = parser.add_argument_group('ONNX only')
    onnx.add_argument('--opset', type=int, help=f'ONNX opset (default {DEFAULT_OPSET}; with '
                      f'--quantize int8 {GELU_OPSET}, GELU as one op, where torch writes it)')
    quant = parser.add_argument_group('ExecuTorch, ONNX and OpenVINO: static int8')
    quant.add_argument('--quantize', choices=QUANTIZE,
                       help='int8 weights (per channel) and activations, calibrated on --calib; '
                       'reports size, latency and agreement against fp32')
    quant.add_argument('--calib', metavar='DIR', help='folder of calibration images, subfolders '
                       'included, at most 100 used (default: views of the photographs '
                       'scikit-learn and matplotlib ship)')
    quant.add_argument('--min-pixel-agreement', type=float, metavar='F',
                       help='--task segmentor: fail when under this share of pixels keeps its '
                       f'class (default {DEFAULT_MIN_PIXEL_AGREEMENT:g})')
    quant.add_argument('--min-top1-agreement', type=float, metavar='F',
                       help='--task classifier: fail when under this share of images keeps its '
                       f'top-1 class (default {DEFAULT_MIN_TOP1_AGREEMENT:g})')
    return parser.parse_args(argv)


def format_options(args: argparse.Namespace) -> dict:
    """The format-specific options as keywords (None: not given), for FORMATS' checks."""
    names = {name for spec in FORMATS.values() for name in spec.all_options} - {'metadata'}
    return {name: getattr(args, name) for name in sorted(names)}


def main(argv=None) -> int:
    args = parse_args(argv)

    def body() -> None:
        options = format_options(args)
        check_request(args.format, args.out, options)
        check_output_path(args.out, '--out')
        size = check_input_size(input_size_or_default(
            args.input_size, (224, 224) if args.task == 'classifier' else None,
            f'--task {args.task}'))
        from rapidnet_mm.config import build_model, load_model_config
        from rapidnet_mm.deploy.normalization import input_normalization
        cfg = load_model_config(args.config, args.cfg_options)
        norm = input_normalization(cfg)
        print(f'building {cfg.model.type} from {args.config}'
              + (f' with {args.checkpoint}' if args.checkpoint else ' (random weights)'))
        model = build_model(cfg, args.checkpoint)
        if args.format == 'coreml':
            options['metadata'] = dict(config=args.config,
                                       checkpoint=args.checkpoint or 'none (random)')
        result = export_model(model, args.format, args.task, size, norm, args.out,
                              args.dilated_as_dense, **options)
        if args.format == 'coreml':
            print(result.format())
    return run_tool(body)


if __name__ == '__main__':
    sys.exit(main())
