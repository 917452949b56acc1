"""Parameters and multiply-accumulates (MACs) of a config's model for one image.

What is counted: the multiply-accumulates of every convolution (``nn.Conv2d``: output elements x
input channels per group x kernel area; the deformable ablation's convolutions likewise, without
their bilinear sampling) and every ``nn.Linear`` (output elements x input features). Norm layers,
activations, pooling, additions and the layer scales are not counted; that is how the paper's
figures are computed (Ti: 617,469,312 = 0.617 GMACs at 224x224, both classifiers included, as the
authors' 1x1-conv classifiers are convolutions). Parameters: all, including ``dist_head``.

Detectors need annotations to run their heads; for them (or to count any backbone alone) use
``--backbone-only``.

Usage: python tools/analysis_tools/get_flops.py CONFIG [--input-size H W] [--backbone-only] [--cfg-options k=v ...]
(``--shape H W``, the old spelling of ``--input-size``, still works.)
"""
import argparse
import sys

from rapidnet_mm.analysis.flops import count_macs, count_params
from rapidnet_mm.cli import add_cfg_options, add_input_size, run_tool
from rapidnet_mm.config import ConfigError, build_model, load_model_config


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Print the parameters and MACs (convolutions and linear layers) of a '
        "config's model for one image.")
    parser.add_argument('config', help='config file')
    add_input_size(parser, (224, 224), 'input height and width (default: 224 224)',
                   deprecated=('--shape',))
    parser.add_argument('--backbone-only', action='store_true',
                        help="count only the model's backbone (e.g. for detectors)")
    add_cfg_options(parser)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_tool(lambda: report(args))


def report(args: argparse.Namespace) -> None:
    h, w = args.input_size
    if min(h, w) < 32:
        raise ConfigError(f'--input-size {h} {w} is too small; RapidNet downsamples by 32, give '
                          'at least 32 32')
    model = build_model(load_model_config(args.config, args.cfg_options))
    if args.backbone_only:
        if not hasattr(model, 'backbone'):
            raise ConfigError(f'the model of {args.config} has no backbone attribute')
        model = model.backbone
    try:
        macs = count_macs(model, (h, w))
    except (TypeError, AttributeError, KeyError) as err:
        raise ConfigError(f'{type(model).__name__} does not run on an image alone ({err}); '
                          'count its backbone with --backbone-only') from err
    params = count_params(model)
    print(f'config: {args.config}' + (' (backbone only)' if args.backbone_only else ''))
    print(f'input: 1x3x{h}x{w}')
    print(f'params: {params:,} ({params / 1e6:.2f} M)')
    print(f"MACs: {macs['total']:,} ({macs['total'] / 1e9:.3f} G) = convolutions "
          f"{macs['conv']:,} + linear {macs['linear']:,}")


if __name__ == '__main__':
    sys.exit(main())
