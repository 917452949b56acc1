"""Export a RapidNet model to OpenVINO IR (.xml + .bin) and check it on the CPU.

Usage: python tools/export_openvino.py CONFIG [--checkpoint CKPT] --out DIR [--name NAME]
       [--task classifier|backbone] [--input-size H W] [--dilated-as-dense]

Writes DIR/NAME.xml and DIR/NAME.bin (NAME: the config's file name without .py), float32, from the
ONNX file tools/export_onnx.py would write. The IR takes ``image`` (float32 1x3xHxW pixel values
0-255, the channel order of the config's data preprocessor) and normalises it itself; outputs
``logits`` or ``feat_s4``... Needs ``pip install openvino`` (the deploy extra).
"""
import argparse
import os.path as osp
import sys

from rapidnet_mm.deploy.cli import add_export_args, export_input_size, load_for_export, run_tool
from rapidnet_mm.deploy.openvino_export import export_openvino, import_openvino


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_export_args(parser)
    parser.add_argument('--out', required=True, help='output directory (created if missing)')
    parser.add_argument('--name', help='file name stem (default: the config\'s)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)

    def body() -> None:
        import_openvino()  # before building anything: a missing package is one error line
        size = export_input_size(args)
        name = args.name or osp.splitext(osp.basename(args.config))[0]
        model, norm = load_for_export(args)
        export_openvino(model, args.task, size, norm, args.out, name, args.dilated_as_dense)
    return run_tool(body)


if __name__ == '__main__':
    sys.exit(main())
