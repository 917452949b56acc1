"""Export a RapidNet model to TorchScript (frozen, reparameterised) and check it.

Usage: python tools/export_torchscript.py CONFIG [--checkpoint CKPT] --out PATH.pt
       [--task classifier|backbone] [--input-size H W] [--dilated-as-dense]

The module takes ``image`` (float32 Nx3xHxW pixel values 0-255, the channel order of the config's
data preprocessor) and normalises it itself; it returns the logits or the tuple of ``feat_s4``...
Load it with ``rapidnet_mm.deploy.runtime.load_torchscript`` (``torch.jit.load`` followed by
``torch.jit.optimize_for_inference``, which prepacks the weights for oneDNN on CPU).
"""
import argparse
import sys

from rapidnet_mm.deploy.cli import add_export_args, export_input_size, load_for_export, run_tool
from rapidnet_mm.deploy.export_module import ExportError
from rapidnet_mm.deploy.torchscript_export import export_torchscript


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_export_args(parser)
    parser.add_argument('--out', required=True, help='output .pt file')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)

    def body() -> None:
        if not args.out.endswith('.pt'):
            raise ExportError(f'--out {args.out!r}: name the TorchScript file *.pt')
        size = export_input_size(args)
        model, norm = load_for_export(args)
        export_torchscript(model, args.task, size, norm, args.out, args.dilated_as_dense)
    return run_tool(body)


if __name__ == '__main__':
    sys.exit(main())
