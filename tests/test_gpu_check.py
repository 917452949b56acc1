"""The GPU check (rapidnet_mm/analysis/gpu_check*.py, tools/analysis_tools/gpu_check.py): the clear
error without CUDA, the loss judgement, the stage table, and the CPU rehearsal of the whole check
(same code paths, tiny sizes, every substitution recorded)."""
import json
import os
import subprocess
import sys

import pytest
import torch
from tool_helpers import ROOT

from rapidnet_mm.analysis import gpu_check, gpu_check_plan, gpu_check_report, gpu_check_stages

TOOL = 'tools/analysis_tools/gpu_check.py'


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the machine without CUDA')
def test_without_cuda_a_plain_run_names_the_rehearsal(tmp_path):
    result = subprocess.run([sys.executable, TOOL, '--out', str(tmp_path / 'o')],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith('error: no CUDA device here') and '--rehearse-on-cpu' in lines[-1]
    assert 'docs/gpu.md' in lines[-1]
    assert not (tmp_path / 'o').exists()


def test_losses_must_fall_from_the_first_third_to_the_last():
    judged = gpu_check_stages.judge_losses([3.0, 2.0, 2.5, 1.0, 1.5, 0.5])
    assert judged == dict(finite=True, first_mean=2.5, last_mean=1.0, falling=True)
    assert gpu_check_stages.judge_losses([1.0, 1.2, 1.1])['falling'] is False
    assert gpu_check_stages.judge_losses([1.0, float('nan'), 0.5])['finite'] is False


def test_stages_run_in_order_and_the_table_says_what_each_did(tmp_path):
    report = gpu_check_plan.Report(rehearsal=True)
    ctx = gpu_check_plan.Context(True, gpu_check_plan.REHEARSAL, str(tmp_path), report)
    gpu_check.run_stages(ctx, ['env', 'ops', 'backbone'])
    assert {n: s['status'] for n, s in report.stages.items()} == {
        'env': 'passed', 'ops': 'skipped: no CUDA', 'backbone': 'skipped: no CUDA'}
    assert report.stages['env']['result']['device'] == 'cpu'
    assert report.passed
    text = gpu_check_report.markdown(report)
    assert '| stage | status | seconds | detail |' in text
    assert '| ops | skipped: no CUDA | 0.0 |  |' in text
    assert text.splitlines()[2].endswith('Result: passed.')
    report.stages['env'] = dict(status='failed', error='RuntimeError: boom', elapsed_s=1.0)
    assert not report.passed
    assert '| env | failed | 1.0 | RuntimeError: boom |' in gpu_check_report.markdown(report)


@pytest.mark.slow
def test_cpu_rehearsal_runs_every_stage_and_records_substitutions(tmp_path):
    out = tmp_path / 'out'
    result = subprocess.run(
        [sys.executable, TOOL, '--out', str(out), '--rehearse-on-cpu',
         '--work-dir', str(tmp_path / 'work')], cwd=ROOT, capture_output=True, text=True,
        timeout=900, env=dict(os.environ, OMP_WAIT_POLICY='PASSIVE'))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    data = json.loads((out / 'gpu_check.json').read_text())
    assert data['mode'] == 'cpu-rehearsal' and data['passed'] is True
    stages = data['stages']
    assert list(stages) == list(gpu_check.STAGES)
    assert stages['ops']['status'] == stages['backbone']['status'] == 'skipped: no CUDA'
    subs = '\n'.join(data['substitutions'])
    for text in ('distributed backend gloo instead of nccl',
                 'model.backbone.norm_cfg BN instead of SyncBN',
                 'model.decode_head.norm_cfg BN instead of SyncBN',
                 'OptimWrapper (fp32) instead of AmpOptimWrapper'):
        assert text in subs, text
    for stage, iters, batch, size in (('train_det', 2, 2, '128x128'),
                                      ('train_seg', 3, 2, '64x64'),
                                      ('train_cls', 4, 4, '64x64')):
        r = stages[stage]['result']
        assert stages[stage]['status'] == 'passed', stages[stage]
        assert (r['iterations'], r['batch'], r['input']) == (iters, batch, size)
        assert len(r['losses']) == iters and r['finite'] is True
        assert r['optim_wrapper'] == 'OptimWrapper' and r['norm'] == 'BN'
        assert r['images_per_s'] > 0 and r['peak_memory_mib'] is None
    assert stages['train_cls']['result']['losses'] != stages['train_seg']['result']['losses']
    rows = stages['infer']['result']['rows']
    assert [(r['model'], r['form']) for r in rows] == [
        ('RapidNet-Ti', 'train'), ('RapidNet-Ti', 'deploy'), ('MobileNetV2x1.4', 'train'),
        ('MobileNetV2x1.4', 'deploy')]
    assert all(r['images_per_s'] > 0 for r in rows)
    text = (out / 'gpu_check.md').read_text()
    assert text.startswith('# GPU check (cpu-rehearsal)')
    assert '| ops | skipped: no CUDA |' in text and '| train_cls | configs/cls/rapidnet_ti' in text
    assert '| RapidNet-Ti | deploy | 6.07 |' in text
    assert text in result.stdout  # the table is printed too


def test_the_cuda_comparisons_run_against_cpu_itself():
    """The ops and backbone comparisons' own code, with CPU standing in for CUDA: identical."""
    ops = gpu_check_stages.compare_ops('cpu')
    assert ops['roi_align_forward_max_abs_diff'] == ops['roi_align_grad_max_abs_diff'] == 0.0
    assert ops['nms_equal'] is True and 0 < ops['nms_kept_cpu'] == ops['nms_kept_device'] < 2000
    assert gpu_check_stages.compare_backbones('cpu', batch=1, archs=('ti', )) == {'ti': 0.0}
