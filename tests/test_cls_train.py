"""End to end: the real RapidNet-Ti recipe (shrunk to 64 px, 4 classes, a tiny timm teacher)
trains through tools/train.py with distillation, then tools/test.py prints a top-1 that equals the
accuracy of its own dumped predictions; a missing teacher stops before training; 2 processes
train with gloo through torchrun."""
import os.path as osp
import pickle
import re

import pytest

from rapidnet_mm.checkpoints.safe_load import safe_torch_load
from cls_helpers import (NUM_CLASSES, PYTHON, free_port, make_imagenet, make_teacher_checkpoint,
                         run_tool, tiny_config)

pytestmark = pytest.mark.core

BASE = 'configs/cls/rapidnet_ti_in1k.py'


@pytest.fixture(scope='module')
def data_and_teacher(tmp_path_factory):
    root = tmp_path_factory.mktemp('cls')
    make_imagenet(str(root / 'imagenet'), {'train': 2, 'val': 2})
    make_teacher_checkpoint(str(root / 'teacher.pth'))
    return root


@pytest.mark.slow
def test_train_with_distillation_then_test_prints_real_top1(data_and_teacher, tmp_path):
    root = data_and_teacher
    cfg = tiny_config(BASE, str(tmp_path / 'cfg.py'), str(root / 'imagenet'),
                      str(root / 'teacher.pth'))
    work = tmp_path / 'work'
    train = run_tool([PYTHON, 'tools/train.py', cfg, '--work-dir', str(work), '--no-validate'])
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    # 8 images x 3 repeats on one rank -> RepeatAugSampler yields 8 -> 2 iterations of 4.
    losses = re.findall(r'Epoch\(train\) \[1\]\[(\d)/2\].*loss: ([\d.]+)\s+loss_distill: ([\d.]+)',
                        train.stdout + train.stderr)
    assert [it for it, _, _ in losses] == ['1', '2']
    assert all(float(distill) > 0 for _, _, distill in losses)

    ckpt_path = work / 'epoch_1.pth'
    ckpt = safe_torch_load(ckpt_path)  # weights only on every torch (no allow-list before 2.4)
    keys = list(ckpt['state_dict'])
    assert keys and all(k.startswith(('backbone.', 'head.', 'data_preprocessor.')) for k in keys)
    assert 'ema_state_dict' in ckpt  # EMAHook ran (the trained weights; state_dict is the EMA)

    out = tmp_path / 'preds.pkl'
    shown = tmp_path / 'shown'
    test = run_tool([PYTHON, 'tools/test.py', cfg, str(ckpt_path), '--work-dir',
                     str(tmp_path / 'test'), '--out', str(out), '--show-dir', str(shown)])
    assert test.returncode == 0, test.stdout[-3000:] + test.stderr[-3000:]
    assert 'Start testing on the original model.' in test.stdout + test.stderr  # not the EMA
    printed = re.findall(r'accuracy/top1: ([\d.]+)', test.stdout + test.stderr)
    assert len(printed) == 1
    with open(out, 'rb') as f:
        preds = pickle.load(f)
    assert len(preds) == 2 * NUM_CLASSES
    # --show-dir: mmpretrain's VisualizationHook drew every test image (labels and prediction)
    assert sorted(p.name for p in shown.iterdir()) == sorted(
        f'{osp.basename(p["img_path"])}_0.png' for p in preds)
    correct = sum(int(p['pred_label'][0] == p['gt_label'][0]) for p in preds)
    assert float(printed[0]) == pytest.approx(100 * correct / len(preds), abs=1e-4)


@pytest.mark.slow
def test_training_without_teacher_weights_stops_with_one_line(data_and_teacher, tmp_path):
    cfg = tiny_config(BASE, str(tmp_path / 'cfg.py'), str(data_and_teacher / 'imagenet'), None)
    work = tmp_path / 'work'
    result = run_tool([PYTHON, 'tools/train.py', cfg, '--work-dir', str(work)])
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith('error: distillation training needs the teacher')
    assert 'model.teacher.checkpoint' in last
    assert not osp.exists(work)  # stopped before the runner was built


@pytest.mark.slow
def test_two_processes_train_with_gloo(data_and_teacher, tmp_path):
    cfg = tiny_config(BASE, str(tmp_path / 'cfg.py'), str(data_and_teacher / 'imagenet'),
                      str(data_and_teacher / 'teacher.pth'), batch_size=2, backend='gloo')
    work = tmp_path / 'work'
    result = run_tool([PYTHON, '-m', 'torch.distributed.run', '--nproc_per_node=2',
                       f'--master_port={free_port()}', 'tools/train.py', cfg, '--launcher',
                       'pytorch', '--work-dir', str(work), '--no-validate',
                       '--cfg-options', 'log_level=DEBUG'])
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    # 8 images x 3 repeats over 2 ranks: RepeatAugSampler gives each rank 4 -> 2 iterations of 2.
    # With log_level DEBUG mmengine writes one log per rank; both must show both iterations.
    logs = sorted(work.glob('*/*.log'))
    assert [re.search(r'_rank(\d)\.log$', log.name).group(1) for log in logs] == ['0', '1']
    for log in logs:
        text = log.read_text()
        assert re.search(r'Epoch\(train\) \[1\]\[2/2\].*loss_distill', text), log
    assert sorted(p.name for p in work.glob('*.pth')) == ['epoch_1.pth']
