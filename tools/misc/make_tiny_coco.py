"""Generate the tiny synthetic COCO instance-segmentation dataset of the demo, deterministically.

Coloured circles, triangles and squares with polygon masks on textured backgrounds; the category is
the shape. Writes ROOT/{train,val}/*.png and ROOT/annotations/instances_{train,val}.json.

Usage: python tools/misc/make_tiny_coco.py [--out data/tiny_coco] [--num-train 96] [--num-val 24]
       [--image-size 128] [--seed 0]
"""
import argparse
import sys

from rapidnet_mm.cli import check_output_path, run_tool
from rapidnet_mm.datasets.tiny_coco import MIN_IMAGE_SIZE, make_dataset


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', default='data/tiny_coco', help='output directory')
    parser.add_argument('--num-train', type=int, default=96, help='training images')
    parser.add_argument('--num-val', type=int, default=24, help='validation images')
    parser.add_argument('--image-size', type=int, default=128,
                        help=f'side of the square images in pixels (>= {MIN_IMAGE_SIZE})')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)

    def body() -> None:
        check_output_path(args.out, '--out', folder=True)
        make_dataset(args.out, args.num_train, args.num_val, args.image_size, args.seed)
    return run_tool(body)


if __name__ == '__main__':
    sys.exit(main())
