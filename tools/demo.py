"""The main job: Mask R-CNN with a RapidNet-S backbone learns instance segmentation on CPU.

1. generates the tiny synthetic COCO dataset (tools/misc/make_tiny_coco.py) unless it is there;
2. trains configs/demo/maskrcnn_rapidnet_s_tiny_coco.py from scratch through the same Runner
   path as tools/train.py, with a progress bar;
3. evaluates the validation split with mmdet's CocoMetric (bbox and segm) and prints the table;
4. draws what the model sees: a grid of validation images, ground truth beside prediction
   (mmdet's DetLocalVisualizer), and the training-loss curve, into the work dir.

It exits with status 1 when the trained model's bbox or segm mAP is zero, and with status 2 and
one error line when it cannot run (e.g. --iters 0).

Usage: python tools/demo.py [--iters N] [--data-root DIR] [--work-dir DIR]
       [--pictures-from CKPT] [--verbose]
"""
import argparse
import os
import sys

# Idle OpenMP threads sleep instead of spinning: on a CPU shared with other work, spinning
# threads made each training step several times slower. Set before torch loads its OpenMP
# runtime; an explicit setting is respected.
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='\n\n'.join(__doc__.split('\n\n')[1:3]))
    parser.add_argument('--iters', type=int, default=None,
                        help='training iterations (default: the config, 120)')
    parser.add_argument('--data-root', default='data/tiny_coco',
                        help='where the tiny dataset is, or is generated')
    parser.add_argument('--work-dir', default='work_dirs/demo',
                        help='logs, config and checkpoint')
    parser.add_argument('--pictures-from', metavar='CKPT',
                        help='only draw the pictures (step 4) of CKPT, a checkpoint of the demo '
                        'config trained earlier (e.g. by tools/train.py), into the work dir')
    parser.add_argument('--verbose', action='store_true',
                        help="show mmengine's full INFO log instead of the progress bar only")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from rapidnet_mm.cli import check_output_path, run_tool
    from rapidnet_mm.demo import DemoFailed, run_demo

    def demo() -> int:
        check_output_path(args.work_dir, '--work-dir', folder=True)
        try:
            run_demo(args.iters, args.data_root, args.work_dir, args.pictures_from, args.verbose)
        except DemoFailed as err:  # it ran and did not learn: a failed result, not a bad input
            print(f'error: {err}', file=sys.stderr)
            return 1
        return 0
    return run_tool(demo)


if __name__ == '__main__':
    sys.exit(main())
