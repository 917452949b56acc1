"""The demo (``tools/demo.py``): Mask R-CNN with a RapidNet-S backbone learns instance
segmentation on CPU.

1. generates the tiny synthetic COCO dataset (tools/misc/make_tiny_coco.py) unless it is there;
2. trains configs/demo/maskrcnn_rapidnet_s_tiny_coco.py from scratch through the same Runner
   path as tools/train.py, with a progress bar;
3. evaluates the validation split with mmdet's CocoMetric (bbox and segm) and prints the table;
4. draws what the model sees: a grid of validation images, ground truth beside prediction
   (mmdet's DetLocalVisualizer), and the training-loss curve (matplotlib), into the work dir.

:func:`run_demo` raises DemoFailed when the trained model's bbox or segm mAP is zero. Logs, the
config and the checkpoint go to the work dir; ``tools/test.py CONFIG WORK_DIR/iter_N.pth``
evaluates it again.
"""
import os
import os.path as osp
import sys
import time
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple

from .config import ConfigError, config_file

if TYPE_CHECKING:
    import numpy as np

DEMO_CONFIG = ('demo', 'maskrcnn_rapidnet_s_tiny_coco.py')
SCORE_THR = 0.3  # predictions drawn: DetVisualizationHook's default
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


def loss_history(message_hub) -> Dict[str, Sequence[float]]:
    """Every training iteration's losses (``train/loss*``) as the run's message hub kept them."""
    return {key[len('train/'):]: buffer.data[0] for key, buffer in message_hub.log_scalars.items()
            if key.startswith('train/loss')}


def plot_loss_curve(history: Dict[str, Sequence[float]], out_file: str) -> str:
    """The total training loss (bold) and its terms against the iteration, as a PNG."""
    import matplotlib
    matplotlib.use('Agg')  # files only, no display
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4), dpi=100)
    for name, values in sorted(history.items(), key=lambda item: item[0] != 'loss'):
        steps = range(1, len(values) + 1)
        ax.plot(steps, values, label=name, linewidth=2.2 if name == 'loss' else 1,
                color='black' if name == 'loss' else None)
    ax.set_xlabel('iteration')
    ax.set_ylabel('training loss')
    ax.set_title('Mask R-CNN + RapidNet-S on tiny COCO: training loss')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_file)
    plt.close(fig)
    return out_file


def draw_validation_images(runner, out_dir: str, num_images: int,
                           score_thr: float = SCORE_THR) -> List[Tuple[str, 'np.ndarray']]:
    """Predict the first ``num_images`` validation images with ``runner.model``; mmdet's
    DetLocalVisualizer (the config's ``visualizer``) draws each as ground truth | prediction
    into ``out_dir``. Returns the (image name, drawn RGB image) pairs."""
    import mmcv
    import torch
    os.makedirs(out_dir, exist_ok=True)
    model, visualizer = runner.model, runner.visualizer
    visualizer.dataset_meta = runner.val_dataloader.dataset.metainfo
    model.eval()
    drawn = []
    with torch.no_grad():
        for batch in runner.val_dataloader:
            for sample in model.val_step(batch):
                name = osp.splitext(osp.basename(sample.img_path))[0]
                image = mmcv.imread(sample.img_path, channel_order='rgb')
                visualizer.add_datasample(name, image, sample, draw_gt=True, draw_pred=True,
                                          pred_score_thr=score_thr,
                                          out_file=osp.join(out_dir, f'{name}.png'))
                drawn.append((name, visualizer.get_image()))
                if len(drawn) == num_images:
                    return drawn
    return drawn


def tile_pictures(drawn: List[Tuple[str, 'np.ndarray']], out_file: str, columns: int = 3,
                  score_thr: float = SCORE_THR, colors: Optional[int] = None) -> str:
    """Tile drawn images (each at twice its size, titled) into one PNG with matplotlib;
    ``colors`` makes it a palette PNG of that many colours (small enough for docs/)."""
    import matplotlib
    matplotlib.use('Agg')  # files only, no display
    import matplotlib.pyplot as plt
    rows = -(-len(drawn) // columns)
    height, width = drawn[0][1].shape[:2]
    inches = 2 / 100  # per pixel at 100 dpi
    fig, axes = plt.subplots(rows, columns, figsize=(columns * width * inches,
                                                     rows * (height + 14) * inches),
                             dpi=100, squeeze=False)
    for ax in axes.flat:
        ax.axis('off')
    for ax, (name, image) in zip(axes.flat, drawn):
        ax.imshow(image)
        ax.set_title(f'{name}: ground truth | prediction (score >= {score_thr})', fontsize=8)
    fig.tight_layout(pad=0.3)
    fig.savefig(out_file)
    plt.close(fig)
    if colors is not None:
        from PIL import Image
        with Image.open(out_file) as picture:
            small = picture.convert('RGB').quantize(colors, method=Image.Quantize.MEDIANCUT)
        small.save(out_file, optimize=True)
    return out_file


def save_pictures(runner, work_dir: str) -> Tuple[str, str, str]:
    """What a trained ``runner`` sees, into ``work_dir``: the grid of 12 validation images, its
    small copy of 6 (the picture in docs/ and the README) and the training-loss curve."""
    drawn = draw_validation_images(runner, osp.join(work_dir, 'val_pictures'), 12)
    grid = tile_pictures(drawn, osp.join(work_dir, 'val_grid.png'))
    small = tile_pictures(drawn[:6], osp.join(work_dir, 'val_grid_small.png'), colors=64)
    curve = plot_loss_curve(loss_history(runner.message_hub),
                            osp.join(work_dir, 'loss_curve.png'))
    return grid, small, curve


def pictures_of_checkpoint(cfg, checkpoint: str, work_dir: str) -> Tuple[str, str, str]:
    """:func:`save_pictures` for a checkpoint of ``cfg`` saved by mmengine (its weights and the
    message hub with the training losses)."""
    from .preflight import build_runner
    if not osp.isfile(checkpoint):
        raise ConfigError(f'checkpoint not found: {checkpoint}')
    runner = build_runner(cfg)
    state = runner.load_checkpoint(checkpoint)
    if 'message_hub' not in state:
        raise ConfigError(f'{checkpoint} has no message_hub (no training losses); give a '
                          'checkpoint that mmengine saved during training')
    runner.message_hub.load_state_dict(state['message_hub'])
    return save_pictures(runner, work_dir)


def print_pictures(grid: str, small: str, curve: str) -> None:
    print(f'pictures: {grid} (validation images, ground truth | prediction; small copy '
          f'{small}; each image in {osp.join(osp.dirname(grid), "val_pictures")})')
    print(f'          {curve} (training loss)')


class DemoFailed(RuntimeError):
    """The demo ran, but the model did not learn (a zero mAP)."""


def run_demo(iters: Optional[int] = None, data_root: str = 'data/tiny_coco',
             work_dir: str = 'work_dirs/demo', pictures_from: Optional[str] = None,
             verbose: bool = False) -> Dict[str, float]:
    """Generate the data if needed, train, evaluate, print the table and draw the pictures.

    Args:
        iters: Training iterations (None: the config's 120).
        data_root: Where the tiny dataset is, or is generated.
        work_dir: Logs, config, checkpoint and pictures.
        pictures_from: Only draw the pictures of this checkpoint of the demo config.
        verbose: mmengine's full INFO log instead of the progress bar only.

    Returns:
        CocoMetric's metrics (empty with ``pictures_from``).

    Raises:
        ConfigError: bad arguments or a missing checkpoint.
        DemoFailed: bbox or segm mAP is zero after training.
    """
    from .datasets.tiny_coco import annotation_file, make_dataset
    from .run_config import load_config
    from .preflight import build_runner, check_data_roots
    if iters is not None and iters < 1:
        raise ConfigError(f'--iters must be at least 1, got {iters}')
    started = time.perf_counter()
    if all(osp.isfile(annotation_file(data_root, s)) for s in ('train', 'val')):
        print(f'[1/3] dataset: using {data_root}', flush=True)
    else:
        print(f'[1/3] dataset: generating {data_root}', flush=True)
        make_dataset(data_root)

    cfg = load_config(config_file(*DEMO_CONFIG), None, 'none', work_dir)
    point_at_data(cfg, data_root)
    if iters is not None:
        set_iterations(cfg, iters)
    if not verbose:
        cfg.log_level = 'WARNING'
    check_data_roots(cfg, ['train_dataloader', 'val_dataloader'])
    if pictures_from:
        print_pictures(*pictures_of_checkpoint(cfg, pictures_from, work_dir))
        return {}
    batch = cfg.train_dataloader.batch_size
    print(f'[2/3] training Mask R-CNN + RapidNet-S from scratch: {cfg.train_cfg.max_iters} '
          f'iterations x {batch} images of 128x128 on CPU (work dir {work_dir})', flush=True)
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
          f'checkpoint: {osp.join(work_dir, f"iter_{cfg.train_cfg.max_iters}.pth")}')
    print_pictures(*save_pictures(runner, work_dir))
    bbox, segm = metrics.get('coco/bbox_mAP', 0.0), metrics.get('coco/segm_mAP', 0.0)
    if bbox <= 0 or segm <= 0:
        raise DemoFailed(f'the model did not learn (bbox mAP {bbox}, segm mAP {segm})')
    print(f'the model learned: bbox mAP {bbox:.3f}, segm mAP {segm:.3f}')
    return metrics
