"""Write scikit-learn's handwritten digits (1,797 real scans) as an ImageNet-style folder.

Usage: python tools/misc/make_digits.py [--out data/digits] [--size 32] [--val-fraction 0.2]
       [--seed 0]

Layout: OUT/train/<digit>/<index>.png and OUT/val/<digit>/<index>.png (RGB PNGs, SIZExSIZE),
a stratified split; what configs/demo/rapidnet_ti_digits.py trains and validates on.
"""
import argparse
import sys

from rapidnet_mm.cli import check_output_path, run_tool
from rapidnet_mm.datasets.digits import make_digits_folder


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', default='data/digits', help='output folder (data/digits)')
    parser.add_argument('--size', type=int, default=32, help='image side in pixels (32)')
    parser.add_argument('--val-fraction', type=float, default=0.2,
                        help='share of each digit held out in val/ (0.2)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the split (0)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)

    def body() -> None:
        check_output_path(args.out, '--out', folder=True)
        counts = make_digits_folder(args.out, args.size, args.val_fraction, args.seed)
        print(f'wrote {counts["train"]} training and {counts["val"]} held-out images of '
              f'{args.size}x{args.size} to {args.out}/train and {args.out}/val')
    return run_tool(body)


if __name__ == '__main__':
    sys.exit(main())
