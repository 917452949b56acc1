"""Run a classification, detection or segmentation config on your own images.

For every image it writes NAME.png (the prediction drawn by the library's visualizer: top-5
classes with scores, boxes and masks with class names, or the class map over the image with
class labels) and NAME.json (the raw predictions) to --out-dir, and prints both paths.
CHECKPOINT is a file in rapidnet_mm names (tools/model_converters/convert_official.py, tools/train.py) or the
authors' original file, converted in memory: a local path or a URL (a Hugging Face Hub file such as
hf://SLDGroup/RapidNet/Detection/RapidNet_M_Detection.pth is downloaded into huggingface_hub's
cache). See docs/inference.md.

Usage: python tools/infer.py CONFIG CHECKPOINT IMAGE_OR_DIR... [--out-dir DIR] [--device cpu|cuda]
"""
import argparse
import sys

from rapidnet_mm.cli import (add_cfg_options, add_device_option, add_weights_option,
                             check_output_path, run_tool)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Draw and save the predictions of a classification, detection or '
        'segmentation config on your images (the config\'s default_scope picks the library).')
    parser.add_argument('config', help='config file, e.g. configs/det/maskrcnn_rapidnet_m_coco.py')
    parser.add_argument('checkpoint', help="weights: a rapidnet_mm/mmengine checkpoint or the "
                        "authors' original file (e.g. RapidNet_M_Detection.pth), a path or a URL "
                        '(e.g. hf://SLDGroup/RapidNet/Detection/RapidNet_M_Detection.pth)')
    parser.add_argument('images', nargs='+', metavar='IMAGE_OR_DIR',
                        help='image files and/or folders of images')
    parser.add_argument('--out-dir', default='infer_out',
                        help='where NAME.png and NAME.json go (default: %(default)s)')
    add_device_option(parser, None, 'default: cuda when available, else cpu')
    add_weights_option(parser)
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='detection: lowest score drawn; the JSON has all predictions '
                        '(default: %(default)s)')
    add_cfg_options(parser)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_tool(lambda: infer(args))


def infer(args: argparse.Namespace) -> None:
    from rapidnet_mm.inference import build_predictor, find_images, run_inference
    images = find_images(args.images)
    check_output_path(args.out_dir, '--out-dir', folder=True)
    predictor = build_predictor(args.config, args.checkpoint, device=args.device,
                                cfg_options=args.cfg_options, weights=args.weights,
                                score_thr=args.score_thr)
    for note in predictor.notes:
        print(note)
    print(f'{len(images)} image(s) -> {args.out_dir}')
    run_inference(predictor, images, args.out_dir)


if __name__ == '__main__':
    sys.exit(main())
