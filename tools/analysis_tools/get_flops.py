"""Parameters and multiply-accumulates (MACs) of a config's model for one image.

What is counted: the multiply-accumulates of every convolution (``nn.Conv2d``: output elements x
input channels per group x kernel area; the deformable ablation's convolutions likewise, without
their bilinear sampling) and every ``nn.Linear`` (output elements x input features). Norm layers,
activations, pooling, additions and the layer scales are not counted; that is how the paper's
figures are computed (Ti: 617,469,312 = 0.617 GMACs at 224x224, both classifiers included, as the
authors' 1x1-conv classifiers are convolutions). Parameters: all, including ``dist_head``.

Detectors need annotations to run their heads; for them (or to count any backbone alone) use
``--backbone-only``.

Usage: python tools/analysis_tools/get_flops.py CONFIG [--shape H W] [--backbone-only] [--cfg-options k=v ...]
"""
import argparse
import sys

from rapidnet_mm.analysis.flops import count_macs, count_params
from rapidnet_mm.config import ConfigError, build_model, load_model_config


def parse_args() -> argparse.Namespace:
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='Print the parameters and MACs (convolutions and linear layers) of a '
        "config's model for one image.")
    parser.add_argument('config', help='config file')
    parser.add_argument('--shape', type=int, nargs=2, default=[224, 224], metavar=('H', 'W'),
                        help='input height and width (default: 224 224)')
    parser.add_argument('--backbone-only', action='store_true',
                        help="count only the model's backbone (e.g. for detectors)")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value (mmengine syntax)')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if min(args.shape) < 32:
        raise ConfigError(f'--shape {args.shape[0]} {args.shape[1]} is too small; RapidNet '
                          'downsamples by 32, give at least 32 32')
    model = build_model(load_model_config(args.config, args.cfg_options))
    if args.backbone_only:
        if not hasattr(model, 'backbone'):
            sys.exit(f'error: the model of {args.config} has no backbone attribute')
        model = model.backbone
    try:
        macs = count_macs(model, tuple(args.shape))
    except (TypeError, AttributeError, KeyError) as err:
        sys.exit(f'error: {type(model).__name__} does not run on an image alone ({err}); '
                 'count its backbone with --backbone-only')
    params = count_params(model)
    h, w = args.shape
    print(f'config: {args.config}' + (' (backbone only)' if args.backbone_only else ''))
    print(f'input: 1x3x{h}x{w}')
    print(f'params: {params:,} ({params / 1e6:.2f} M)')
    print(f"MACs: {macs['total']:,} ({macs['total'] / 1e9:.3f} G) = convolutions "
          f"{macs['conv']:,} + linear {macs['linear']:,}")


if __name__ == '__main__':
    main()
