"""Fold a trained checkpoint into RapidNet's deploy (inference) form.

Usage: python tools/deployment/reparameterize.py CONFIG CHECKPOINT OUT [--input-size H W]
       [--cfg-options k=v ...]

Every RapidNet in the config's model (the backbone of a classifier, detector or segmentor) has its
BatchNorms, layer scales and positional-encoding identities folded into its convolutions. OUT loads
strictly into the deploy form: the config's configs/cls/deploy/ twin, or any config with
``--cfg-options model.backbone.deploy=True``. The tool checks that, and that the outputs are the
training form's, before it writes OUT.
"""
import argparse
import sys

from mmengine.config import DictAction

from rapidnet_mm.cli import run_tool
from rapidnet_mm.config import load_model_config
from rapidnet_mm.deploy.reparameterize import write_deploy_checkpoint


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='the training-form config the checkpoint belongs to')
    parser.add_argument('checkpoint', help='training-form checkpoint (mmengine format)')
    parser.add_argument('out', help='where to write the deploy checkpoint (.pth)')
    parser.add_argument('--input-size', type=int, nargs=2, default=(224, 224),
                        metavar=('H', 'W'), help='input size of the equality check (224 224)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)

    def body() -> None:
        cfg = load_model_config(args.config, args.cfg_options)
        print(f'loading {args.checkpoint} into {cfg.model.type} ({args.config})')
        write_deploy_checkpoint(cfg, args.checkpoint, args.out, tuple(args.input_size))
    return run_tool(body, ValueError)


if __name__ == '__main__':
    sys.exit(main())
