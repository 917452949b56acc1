"""Convert an authors' RapidNet checkpoint (as published) to an mmengine checkpoint.

Classification files (``RapidNet_{Ti,S,M,B}.pth``) load with ``strict=True`` into the model of
``configs/cls/rapidnet_{ti,s,m,b}_in1k.py``; EMA weights are taken by default (``--weights raw``
for the trained ones). The variant is detected from the tensor shapes. Detection and segmentation
files go through their own format modules when those are installed (``rapidnet_mm.checkpoints``).

The authors' training files pickle an ``argparse.Namespace`` (``args``), which
``torch.load(weights_only=True)`` refuses; exactly that one type is allowed, after saying so.

Converting is optional: ``tools/test.py``, ``tools/infer.py`` and the ``RapidNetPretrained``
initialiser of the detection and segmentation configs read the authors' files as they are, through
the same code.

SRC is a local file or a URL: a Hugging Face Hub file (e.g.
https://huggingface.co/SLDGroup/RapidNet/resolve/main/RapidNet_S.pth or
hf://SLDGroup/RapidNet/RapidNet_S.pth) is downloaded into huggingface_hub's cache.

Usage: python tools/model_converters/convert_official.py SRC DST [--weights ema|raw]
"""
import argparse
import os
import os.path as osp
import sys

import torch

from rapidnet_mm.cli import add_weights_option, check_output_path, run_tool
from rapidnet_mm.errors import InputError


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Convert an authors' RapidNet checkpoint to an mmengine checkpoint.")
    parser.add_argument('src', help="the authors' checkpoint (e.g. RapidNet_Ti.pth), a path or "
                        'a URL (e.g. hf://SLDGroup/RapidNet/RapidNet_Ti.pth)')
    parser.add_argument('dst', help='where to write the converted checkpoint (.pth)')
    add_weights_option(parser, default=None)
    return parser.parse_args(argv)


def load_official(path: str) -> dict:
    """``torch.load`` with ``weights_only=True``, allowing exactly ``argparse.Namespace``."""
    from rapidnet_mm.checkpoints.safe_load import AUTHORS_GLOBALS, safe_torch_load
    print(f'loading {path} with weights_only=True, allowing exactly one extra type: '
          'argparse.Namespace (the training arguments the authors pickled)')
    return safe_torch_load(path, 'cpu', extra=AUTHORS_GLOBALS)


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_tool(lambda: convert(args))


def convert(args: argparse.Namespace) -> None:
    from rapidnet_mm import __version__
    from rapidnet_mm.checkpoints import (CheckpointLayoutError, convert_checkpoint,
                                         fetch_checkpoint)
    check_output_path(args.dst, 'DST')
    src = fetch_checkpoint(args.src)  # a URL is downloaded (huggingface_hub's cache)
    if osp.abspath(src) == osp.abspath(args.dst):
        raise InputError('DST must differ from SRC (the original would be overwritten)')
    try:
        ckpt = load_official(src)
    except Exception as err:  # noqa: BLE001  (any unpickling failure is one line for the user)
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointLayoutError(f'cannot load {args.src} safely: {first}') from err
    options = {} if args.weights is None else dict(weights=args.weights)
    try:
        conversion = convert_checkpoint(ckpt, **options)
    except CheckpointLayoutError as err:
        raise CheckpointLayoutError(f'{args.src}: {err}') from None
    print(f'{conversion.kind} checkpoint, RapidNet-{conversion.arch}: '
          f'{len(conversion.state_dict)} tensors')
    for note in conversion.notes:
        print(f'  {note}')
    meta = dict(source=osp.basename(args.src), kind=conversion.kind, arch=conversion.arch,
                notes=list(conversion.notes), converted_by=f'rapidnet_mm {__version__}')
    if conversion.kind == 'classification':
        meta['config'] = f'configs/cls/rapidnet_{conversion.arch}_in1k.py'
    elif conversion.kind == 'segmentation':
        meta['config'] = f'configs/seg/fpn_rapidnet_{conversion.arch}_ade20k.py'
    elif conversion.kind == 'detection':
        meta['config'] = f'configs/det/maskrcnn_rapidnet_{conversion.arch}_coco.py'
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    torch.save({'state_dict': conversion.state_dict, 'meta': meta}, args.dst)
    print(f'saved {args.dst}' + (f" (for {meta['config']})" if 'config' in meta else ''))


if __name__ == '__main__':
    sys.exit(main())
