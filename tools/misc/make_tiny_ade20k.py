"""Generate a tiny synthetic ADE20K-layout semantic segmentation dataset, deterministically.

Grey backgrounds with a red, a green and a blue rectangle, in the folder layout mmseg's
ADE20KDataset reads (ROOT/images/{training,validation}, ROOT/annotations/{training,validation}).

Usage: python tools/misc/make_tiny_ade20k.py [--out data/tiny_ade20k] [--num-train 6]
       [--num-val 3] [--min-size 65] [--max-size 128] [--seed 0]
"""
import argparse
import sys

from rapidnet_mm.cli import check_output_path, run_tool
from rapidnet_mm.datasets.tiny_ade20k import make_ade_layout


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', default='data/tiny_ade20k', help='output directory')
    parser.add_argument('--num-train', type=int, default=6, help='training images')
    parser.add_argument('--num-val', type=int, default=3, help='validation images')
    parser.add_argument('--min-size', type=int, default=65, help='smallest image side (px)')
    parser.add_argument('--max-size', type=int, default=128, help='largest image side (px, '
                        'exclusive)')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)

    def body() -> None:
        check_output_path(args.out, '--out', folder=True)
        make_ade_layout(args.out, args.seed, args.num_train, args.num_val, args.min_size,
                        args.max_size)
        print(f'{args.num_train} training and {args.num_val} validation images -> {args.out}')
    return run_tool(body)


if __name__ == '__main__':
    sys.exit(main())
