"""Export a RapidNet model to ONNX and check it with onnxruntime.

Usage: python tools/export_onnx.py CONFIG [--checkpoint CKPT] --out PATH.onnx
       [--task classifier|backbone] [--input-size H W] [--dilated-as-dense] [--opset N]

The ONNX model takes ``image`` (float32 1x3xHxW pixel values 0-255, the channel order of the
config's data preprocessor) and normalises it itself; outputs ``logits`` or ``feat_s4``...
"""
import argparse
import sys

from rapidnet_mm.deploy.cli import add_export_args, export_input_size, load_for_export, run_tool
from rapidnet_mm.deploy.export_module import ExportError
from rapidnet_mm.deploy.onnx_export import DEFAULT_OPSET, export_onnx


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_export_args(parser)
    parser.add_argument('--out', required=True, help='output .onnx file')
    parser.add_argument('--opset', type=int, default=DEFAULT_OPSET,
                        help=f'ONNX opset (default {DEFAULT_OPSET})')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)

    def body() -> None:
        if not args.out.endswith('.onnx'):
            raise ExportError(f'--out {args.out!r}: name the ONNX file *.onnx')
        size = export_input_size(args)
        model, norm = load_for_export(args)
        export_onnx(model, args.task, size, norm, args.out, args.dilated_as_dense, args.opset)
    return run_tool(body)


if __name__ == '__main__':
    sys.exit(main())
