"""End to end: a tiny synthetic ADE20K-layout dataset trains RapidNet-Ti Semantic FPN for a few
iterations through tools/train.py and is evaluated through tools/test.py, which prints mIoU."""
import os
import os.path as osp
import re
import subprocess
import sys

import cv2
import pytest
from seg_helpers import MAX_ITERS, overrides
from tool_helpers import ROOT

pytestmark = pytest.mark.core

CONFIG = osp.join(ROOT, 'configs/seg/fpn_rapidnet_ti_ade20k.py')


# 6 training and 3 validation images of 65-127 px (tools/misc/make_tiny_ade20k.py's defaults)
from rapidnet_mm.datasets.tiny_ade20k import make_ade_layout  # noqa: E402


def run_tool(args: list) -> str:
    result = subprocess.run([sys.executable] + args, capture_output=True, text=True, cwd=ROOT)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    return output


def parse_miou(output: str) -> float:
    values = re.findall(r'mIoU: (\d+\.\d+)', output)
    assert values, output[-3000:]
    return float(values[-1])


@pytest.mark.slow
def test_train_then_test_prints_miou(tmp_path):
    data_root = str(tmp_path / 'ADEChallengeData2016')
    make_ade_layout(data_root)
    work_dir = str(tmp_path / 'work')
    options = overrides(data_root)
    train_log = run_tool([osp.join(ROOT, 'tools/train.py'), CONFIG, '--work-dir', work_dir,
                          '--cfg-options'] + options)
    assert f'Iter(train) [{MAX_ITERS}/{MAX_ITERS}]' in train_log
    # logged at iterations 3 (end of the 6-image pass), 4, 8 and 12: the loss falls
    losses = [float(v) for v in re.findall(r'Iter\(train\).*? loss: (\d+\.\d+)', train_log)]
    assert len(losses) >= 3 and losses[-1] < 0.8 * losses[0], losses
    val_miou = parse_miou(train_log)
    checkpoint = osp.join(work_dir, f'iter_{MAX_ITERS}.pth')
    assert osp.isfile(checkpoint)
    show_dir = tmp_path / 'shown'
    test_log = run_tool([osp.join(ROOT, 'tools/test.py'), CONFIG, checkpoint, '--work-dir',
                         work_dir, '--show-dir', str(show_dir), '--cfg-options'] + options)
    test_miou = parse_miou(test_log)
    # --show-dir: SegVisualizationHook drew each validation image (ground truth beside
    # prediction, twice as wide) through the visualizer's LocalVisBackend
    vis_image = show_dir / 'vis_data' / 'vis_image'
    drawn = sorted(os.listdir(vis_image))
    assert drawn == [f'test_ADE_valid_{i:08d}.jpg_0.png' for i in range(3)]
    for name in drawn:
        image = cv2.imread(str(vis_image / name))
        source = cv2.imread(osp.join(data_root, 'images', 'validation', name[5:-6]))
        assert image.shape == (source.shape[0], 2 * source.shape[1], 3)
    # the same weights on the same validation images: test repeats the in-training evaluation
    assert test_miou == val_miou
    # 4 classes present (labels 1-4 -> 0-3 after reduce_zero_label, border 0 -> ignored): the
    # per-class table has an IoU for each of them; a class absent from the ground truth has
    # nan, or 0 where the model predicted it anyway; mIoU is the mean of the numbers
    rows = re.findall(r'^\|\s*([^|]+?)\s*\|\s*(\d+\.\d+|nan)\s*\|', test_log, re.MULTILINE)
    assert len(rows) == 150, test_log[-3000:]
    ious = {name: float(iou) for name, iou in rows if iou != 'nan'}
    present = ['wall', 'building', 'sky', 'floor']
    assert [name for name, _ in rows[:4]] == present and set(present) <= set(ious)
    assert all(iou == 0.0 for name, iou in ious.items() if name not in present)
    assert test_miou == pytest.approx(sum(ious.values()) / len(ious), abs=0.011)
