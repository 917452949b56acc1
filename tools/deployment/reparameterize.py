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

from rapidnet_mm.cli import add_cfg_options, add_input_size, check_output_path, run_tool
from rapidnet_mm.config import load_model_config
from rapidnet_mm.deploy.reparameterize import write_deploy_checkpoint


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='the training-form config the checkpoint belongs to')
    parser.add_argument('checkpoint', help='training-form checkpoint (mmengine format)')
    parser.add_argument('out', help='where to write the deploy checkpoint (.pth)')
    add_input_size(parser, (224, 224), 'input size H W of the equality check (224 224)')
    add_cfg_options(parser)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)

    def body() -> None:
        check_output_path(args.out, 'OUT')
        cfg = load_model_config(args.config, args.cfg_options)
        print(f'loading {args.checkpoint} into {cfg.model.type} ({args.config})')
        write_deploy_checkpoint(cfg, args.checkpoint, args.out, tuple(args.input_size))
    return run_tool(body)


if __name__ == '__main__':
    sys.exit(main())
