"""The tiny synthetic COCO dataset, the demo config on it, and a short train + test run through
tools/train.py and tools/test.py (the main job of tools/demo.py, in a few iterations)."""
import hashlib
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from det_helpers import DEMO_CONFIG, load_cfg
from tool_helpers import ROOT

import rapidnet_mm.demo as demo
from rapidnet_mm.datasets.tiny_coco import CATEGORIES, annotation_file, make_dataset

pytestmark = pytest.mark.core

# Idle OpenMP threads sleep rather than spin (a large slowdown on a shared CPU otherwise).
ENV = dict(os.environ, OMP_WAIT_POLICY='PASSIVE')
METRIC_LINE = re.compile(r'coco/(bbox|segm)_mAP: (-?\d+\.\d+)')


def tree_digest(root: str) -> str:
    digest = hashlib.sha256()
    for folder, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            path = os.path.join(folder, name)
            digest.update(os.path.relpath(path, root).encode())
            with open(path, 'rb') as f:
                digest.update(f.read())
    return digest.hexdigest()


def test_dataset_is_deterministic_and_valid(tmp_path):
    first = make_dataset(str(tmp_path / 'a'), 6, 3, 96, seed=5, verbose=False)
    make_dataset(str(tmp_path / 'b'), 6, 3, 96, seed=5, verbose=False)
    assert tree_digest(str(tmp_path / 'a')) == tree_digest(str(tmp_path / 'b'))
    make_dataset(str(tmp_path / 'c'), 6, 3, 96, seed=6, verbose=False)
    assert tree_digest(str(tmp_path / 'a')) != tree_digest(str(tmp_path / 'c'))

    coco = COCO(annotation_file(str(tmp_path / 'a'), 'train'))
    assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == list(CATEGORIES)
    assert len(coco.getImgIds()) == 6 and len(first['val']['images']) == 3
    for image_id in coco.getImgIds():
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
        assert 1 <= len(anns) <= 4
        union = np.zeros((96, 96), dtype=int)
        for ann in anns:
            mask = coco.annToMask(ann)
            ys, xs = np.nonzero(mask)
            x, y, w, h = ann['bbox']
            # the box encloses the mask, the mask fills a good part of it, areas agree
            assert x - 1 <= xs.min() and xs.max() <= x + w + 1
            assert y - 1 <= ys.min() and ys.max() <= y + h + 1
            assert ann['area'] == mask.sum() > 0.3 * w * h
            union += mask
        assert union.max() == 1  # instances never overlap


def test_generator_cli(tmp_path):
    tool = os.path.join(ROOT, 'tools', 'misc', 'make_tiny_coco.py')
    out = subprocess.run([sys.executable, tool, '--out', str(tmp_path / 'd'), '--num-train', '2',
                          '--num-val', '1', '--image-size', '64'], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0
    assert out.stdout.splitlines()[0].startswith('train: 2 images, ')
    assert sorted(os.listdir(tmp_path / 'd' / 'val')) == ['000000.png']
    out = subprocess.run([sys.executable, tool, '--out', str(tmp_path / 'e'), '--image-size', '32'],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert out.stderr.strip() == 'error: image_size must be at least 64 pixels, got 32'
    assert not (tmp_path / 'e').exists()


def test_demo_config_fits_the_dataset():
    cfg = load_cfg(DEMO_CONFIG)
    assert cfg.metainfo['classes'] == CATEGORIES
    assert cfg.model.roi_head.bbox_head.num_classes == len(CATEGORIES)
    assert cfg.model.roi_head.mask_head.num_classes == len(CATEGORIES)
    assert cfg.model.backbone.arch == 's' and cfg.model.backbone.init_cfg is None
    assert cfg.train_dataloader.dataset.ann_file == 'annotations/instances_train.json'
    assert cfg.val_evaluator.ann_file == cfg.data_root + 'annotations/instances_val.json'


def test_demo_help_and_bad_input():
    demo = os.path.join(ROOT, 'tools', 'demo.py')
    out = subprocess.run([sys.executable, demo, '--help'], capture_output=True, text=True,
                         env=ENV, timeout=300)
    assert out.returncode == 0 and '--iters' in out.stdout and 'CocoMetric' in out.stdout
    out = subprocess.run([sys.executable, demo, '--iters', '0'], capture_output=True, text=True,
                         env=ENV, timeout=300)
    assert out.returncode != 0
    assert out.stderr.strip().splitlines()[-1] == 'error: --iters must be at least 1, got 0'


def test_metrics_table():
    metrics = {'coco/bbox_mAP': 0.5123, 'coco/bbox_mAP_50': 0.9, 'coco/bbox_mAP_75': 0.5,
               'coco/bbox_mAP_s': 0.25, 'coco/bbox_mAP_m': 0.6, 'coco/bbox_mAP_l': -1.0,
               'coco/segm_mAP': 0.4, 'coco/segm_mAP_50': 0.8, 'coco/segm_mAP_75': 0.45,
               'coco/segm_mAP_s': 0.2, 'coco/segm_mAP_m': 0.5, 'coco/segm_mAP_l': -1.0}
    lines = demo.metrics_table(metrics).splitlines()
    assert lines[0].split() == ['AP', 'AP50', 'AP75', 'APs', 'APm', 'APl']
    assert lines[1].split() == ['bbox', '0.512', '0.900', '0.500', '0.250', '0.600', '-']
    assert lines[2].split() == ['segm', '0.400', '0.800', '0.450', '0.200', '0.500', '-']


def test_demo_iterations_and_data_root_overrides():
    cfg = load_cfg(DEMO_CONFIG)
    assert cfg.train_cfg.max_iters == 120 and cfg.param_scheduler[1].milestones == [96]
    demo.set_iterations(cfg, 10)
    assert (cfg.train_cfg.max_iters, cfg.train_cfg.val_interval) == (10, 10)
    assert cfg.default_hooks.checkpoint.interval == 10
    assert (cfg.param_scheduler[1].milestones, cfg.param_scheduler[1].end) == ([8], 10)
    demo.point_at_data(cfg, '/tmp/elsewhere')
    assert {cfg[k].dataset.data_root for k in ('train_dataloader', 'val_dataloader',
                                                'test_dataloader')} == {'/tmp/elsewhere/'}
    assert cfg.val_evaluator.ann_file == cfg.test_evaluator.ann_file == (
        '/tmp/elsewhere/annotations/instances_val.json')


def run_tool(args, cwd) -> str:
    out = subprocess.run([sys.executable] + args, cwd=cwd, capture_output=True, text=True,
                         env=ENV, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout + out.stderr


@pytest.mark.slow
def test_train_then_test_through_the_tools(tmp_path):
    """Two iterations of the demo config through tools/train.py (evaluating at the end), then
    tools/test.py on the saved checkpoint: CocoMetric reports bbox and segm mAP, and the
    re-loaded checkpoint gives exactly the metrics of the end of training."""
    make_dataset(str(tmp_path / 'data' / 'tiny_coco'), 4, 3, 128, verbose=False)
    options = ['--cfg-options', 'max_iters=2', 'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
               'default_hooks.checkpoint.interval=2', 'train_dataloader.batch_size=2']
    log = run_tool([os.path.join(ROOT, 'tools', 'train.py'), DEMO_CONFIG, '--work-dir', 'wd']
                   + options, cwd=tmp_path)
    assert 'Iter(train) [2/2]' in log
    train_metrics = dict(METRIC_LINE.findall(log))
    assert set(train_metrics) == {'bbox', 'segm'}
    checkpoint = tmp_path / 'wd' / 'iter_2.pth'
    assert checkpoint.is_file()
    # SyncBN of the config ran as plain BN (the run is not distributed)
    assert 'SyncBatchNorm (SyncBN) layers in the model will be automatically reverted' in log

    log = run_tool([os.path.join(ROOT, 'tools', 'test.py'), DEMO_CONFIG, str(checkpoint),
                    '--work-dir', 'wd_test', '--show-dir', 'shown', '--show-score-thr', '0.05'],
                   cwd=tmp_path)
    test_metrics = dict(METRIC_LINE.findall(log))
    assert test_metrics == train_metrics
    for kind in ('bbox', 'segm'):
        assert 0.0 <= float(test_metrics[kind]) <= 1.0
    with open(annotation_file(str(tmp_path / 'data' / 'tiny_coco'), 'val')) as f:
        val_images = sorted(image['file_name'] for image in json.load(f)['images'])
    assert len(val_images) == 3

    # --show-dir: DetVisualizationHook drew every test image, ground truth beside prediction
    assert f'into {tmp_path / "shown"}' in log
    assert sorted(os.listdir(tmp_path / 'shown')) == val_images
    for name in val_images:
        assert Image.open(tmp_path / 'shown' / name).size == (2 * 128, 128)

    # tools/demo.py's pictures of the same checkpoint: each validation image drawn, the grid
    # (3 images, each at twice its size), its palette copy, and the loss curve
    log = run_tool([os.path.join(ROOT, 'tools', 'demo.py'), '--pictures-from', str(checkpoint),
                    '--work-dir', 'wd'], cwd=tmp_path)
    assert 'pictures: wd/val_grid.png' in log and 'wd/loss_curve.png (training loss)' in log
    assert sorted(os.listdir(tmp_path / 'wd' / 'val_pictures')) == val_images
    with Image.open(tmp_path / 'wd' / 'val_grid.png') as grid:
        assert grid.size == (3 * 2 * 256, 2 * (128 + 14))
    with Image.open(tmp_path / 'wd' / 'val_grid_small.png') as small:
        assert small.mode == 'P' and small.size == grid.size
    with Image.open(tmp_path / 'wd' / 'loss_curve.png') as curve:
        assert curve.size == (640, 400)


def test_demo_loss_history_keeps_every_training_loss():
    from mmengine.logging import MessageHub
    hub = MessageHub('loss_history_test')
    for loss, loss_cls in ((3.0, 1.0), (2.0, 0.5)):
        hub.update_scalars({'train/loss': loss, 'train/loss_cls': loss_cls, 'train/lr': 0.1,
                            'val/loss': 9.0})
    history = demo.loss_history(hub)
    assert {name: list(values) for name, values in history.items()} == {
        'loss': [3.0, 2.0], 'loss_cls': [1.0, 0.5]}
