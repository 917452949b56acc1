"""The main job: Mask R-CNN with a RapidNet-S backbone learns instance segmentation on CPU.

1. generates the tiny synthetic COCO dataset (tools/make_tiny_coco.py) unless it is there;
2. trains configs/demo/maskrcnn_rapidnet_s_tiny_coco.py from scratch through the same Runner
   path as tools/train.py, with a progress bar;
3. evaluates the validation split with mmdet's CocoMetric (bbox and segm) and prints the table.

It exits with status 1 when the trained model's bbox or segm mAP is zero. Logs, the config and
the checkpoint go to the work dir; `tools/test.py CONFIG WORK_DIR/iter_N.pth` evaluates it again.

Usage: python tools/demo.py [--iters N] [--data-root DIR] [--work-dir DIR] [--verbose]
"""
import os

# Idle OpenMP threads sleep instead of spinning: on a CPU shared with other work, spinning
# threads made each training step several times slower (measured 6.5 s vs 28-49 s per step).
# Must be set before torch loads its OpenMP runtime; an explicit setting is respected.
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

import argparse  # noqa: E402
import os.path as osp  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Dict, Optional  # noqa: E402

TOOLS_DIR = osp.dirname(osp.abspath(__file__))
REPO_ROOT = osp.dirname(TOOLS_DIR)
DEMO_CONFIG = osp.join(REPO_ROOT, 'configs', 'demo', 'maskrcnn_rapidnet_s_tiny_coco.py')
METRIC_COLUMNS = (('AP', 'mAP'), ('AP50', 'mAP_50'), ('AP75', 'mAP_75'), ('APs', 'mAP_s'),
                  ('APm', 'mAP_m'), ('APl', 'mAP_l'))


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f'{minutes}:{seconds:02d}'


def make_progress_hook():
    """A :class:`DemoProgressHook` (defined here so that ``--help`` does not load torch)."""
    from mmengine.hooks import Hook

    class DemoProgressHook(Hook):
        """A one-line training progress bar (iteration, loss, speed, ETA); keeps the metrics.

        On a terminal the bar redraws in place; otherwise it prints a line every tenth of the run.

        Args:
            width: Characters of the bar.
        """
        priority = 'VERY_LOW'

        def __init__(self, width: int = 30) -> None:
            self.width = width
            self.metrics: Optional[Dict[str, float]] = None
            self.tty = sys.stdout.isatty()
            self.start = 0.0

        def before_train(self, runner) -> None:
            self.start = time.perf_counter()
            self.total = runner.max_iters
            self.every = max(1, self.total // 10)

        def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                             outputs=None) -> None:
            done = runner.iter + 1  # the loop advances its counter after this hook
            elapsed = time.perf_counter() - self.start
            per_iter = elapsed / done
            eta = per_iter * (self.total - done)
            loss = (float(outputs['loss'].detach()) if outputs and 'loss' in outputs
                    else float('nan'))
            filled = self.width * done // self.total
            bar = '#' * filled + '.' * (self.width - filled)
            line = (f'train [{bar}] {done}/{self.total}  loss {loss:.3f}  {per_iter:.1f} s/it  '
                    f'elapsed {_clock(elapsed)}  eta {_clock(eta)}')
            if self.tty:
                print('\r' + line, end='\n' if done == self.total else '', flush=True)
            elif done % self.every == 0 or done in (1, self.total):
                print(line, flush=True)

        def before_val(self, runner) -> None:
            self.val_start = time.perf_counter()
            print(f'evaluating {len(runner.val_dataloader.dataset)} validation images ...',
                  flush=True)

        def after_val_epoch(self, runner, metrics: Optional[Dict[str, float]] = None) -> None:
            self.metrics = dict(metrics or {})
            self.val_seconds = time.perf_counter() - self.val_start

    return DemoProgressHook()


def metrics_table(metrics: Dict[str, float]) -> str:
    """CocoMetric's ``coco/{bbox,segm}_mAP*`` values as a text table (-1, no such objects: -)."""
    lines = [f'{"":<6}' + ''.join(f'{name:>8}' for name, _ in METRIC_COLUMNS)]
    for kind in ('bbox', 'segm'):
        cells = []
        for _, suffix in METRIC_COLUMNS:
            value = metrics.get(f'coco/{kind}_{suffix}')
            cells.append('-' if value is None or value < 0 else f'{value:.3f}')
        lines.append(f'{kind:<6}' + ''.join(f'{c:>8}' for c in cells))
    return '\n'.join(lines)


def point_at_data(cfg, data_root: str) -> None:
    """Point every dataset and evaluator of the demo config at ``data_root``."""
    root = data_root.rstrip('/') + '/'
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = root
    for evaluator in ('val_evaluator', 'test_evaluator'):
        cfg[evaluator].ann_file = root + 'annotations/instances_val.json'


def set_iterations(cfg, iters: int) -> None:
    """Train for ``iters`` iterations, scaling the lr steps, evaluating and saving at the end."""
    old = cfg.train_cfg.max_iters
    cfg.train_cfg.max_iters = cfg.train_cfg.val_interval = iters
    cfg.default_hooks.checkpoint.interval = iters
    for scheduler in cfg.param_scheduler:
        if 'milestones' in scheduler:
            scheduler.milestones = [max(1, round(m * iters / old)) for m in scheduler.milestones]
            scheduler.end = iters


def parse_args() -> argparse.Namespace:
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
    parser.add_argument('--verbose', action='store_true',
                        help="show mmengine's full INFO log instead of the progress bar only")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.iters is not None and args.iters < 1:
        sys.exit(f'error: --iters must be at least 1, got {args.iters}')
    sys.path.insert(0, TOOLS_DIR)
    from make_tiny_coco import annotation_file, make_dataset
    from rapidnet_mm.runner import build_runner, check_data_roots, load_config

    started = time.perf_counter()
    if all(osp.isfile(annotation_file(args.data_root, s)) for s in ('train', 'val')):
        print(f'[1/3] dataset: using {args.data_root}', flush=True)
    else:
        print(f'[1/3] dataset: generating {args.data_root}', flush=True)
        make_dataset(args.data_root)

    cfg = load_config(DEMO_CONFIG, None, 'none', args.work_dir)
    point_at_data(cfg, args.data_root)
    if args.iters is not None:
        set_iterations(cfg, args.iters)
    if not args.verbose:
        cfg.log_level = 'WARNING'
    check_data_roots(cfg, ['train_dataloader', 'val_dataloader'])
    batch = cfg.train_dataloader.batch_size
    print(f'[2/3] training Mask R-CNN + RapidNet-S from scratch: {cfg.train_cfg.max_iters} '
          f'iterations x {batch} images of 128x128 on CPU (work dir {args.work_dir})',
          flush=True)
    runner = build_runner(cfg)
    progress = make_progress_hook()
    runner.register_hook(progress)
    train_start = time.perf_counter()
    runner.train()  # evaluates the validation split once, at the end
    train_seconds = time.perf_counter() - train_start - progress.val_seconds

    metrics = progress.metrics or {}
    print(f'[3/3] COCO evaluation of the validation split (mmdet CocoMetric), '
          f'{_clock(progress.val_seconds)}:')
    print(metrics_table(metrics))
    print(f'training {_clock(train_seconds)}, total {_clock(time.perf_counter() - started)}; '
          f'checkpoint: {osp.join(args.work_dir, f"iter_{cfg.train_cfg.max_iters}.pth")}')
    bbox, segm = metrics.get('coco/bbox_mAP', 0.0), metrics.get('coco/segm_mAP', 0.0)
    if bbox <= 0 or segm <= 0:
        sys.exit(f'error: the model did not learn (bbox mAP {bbox}, segm mAP {segm})')
    print(f'the model learned: bbox mAP {bbox:.3f}, segm mAP {segm:.3f}')


if __name__ == '__main__':
    main()
