"""The launch scripts (tools/dist_*.sh, tools/slurm_*.sh) and the clear errors for what needs a
GPU: usage lines, the torchrun and srun command lines they build, the SyncBN-on-CPU and
AMP-without-GPU messages, and 2-process gloo training of the tiny detection and segmentation
configs through tools/dist_train.sh."""
import os
import re
import subprocess

import pytest
import torch

from cls_helpers import PYTHON, free_port, run_tool
from det_helpers import load_cfg
from rapidnet_mm.config import ConfigError
from rapidnet_mm.datasets.tiny_ade20k import make_ade_layout
from rapidnet_mm.datasets.tiny_coco import make_dataset
from rapidnet_mm.preflight import check_training_devices
from seg_helpers import overrides
from tool_helpers import ROOT, load_tool

DEMO_DET = 'configs/demo/maskrcnn_rapidnet_s_tiny_coco.py'
SEG = 'configs/seg/fpn_rapidnet_ti_ade20k.py'
needs_cpu_only = pytest.mark.skipif(torch.cuda.is_available(), reason='checks the no-GPU path')


def fake_command(folder, name: str) -> str:
    """An executable ``folder/name`` that prints its arguments one per line."""
    path = os.path.join(folder, name)
    with open(path, 'w') as f:
        f.write('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    os.chmod(path, 0o755)
    return path


@pytest.mark.parametrize('script, usage', [
    ('dist_train.sh', 'CONFIG GPUS [tools/train.py arguments...]'),
    ('dist_test.sh', 'CONFIG CHECKPOINT GPUS [tools/test.py arguments...]'),
    ('slurm_train.sh', 'PARTITION JOB_NAME CONFIG WORK_DIR [tools/train.py arguments...]'),
    ('slurm_test.sh', 'PARTITION JOB_NAME CONFIG CHECKPOINT [tools/test.py arguments...]'),
])
def test_scripts_print_usage_on_missing_arguments(script, usage):
    result = run_tool([f'tools/{script}', 'only_one'])
    assert result.returncode == 2
    assert result.stderr == f'usage: tools/{script} {usage}\n'
    assert result.stdout == ''


def test_dist_scripts_run_torchrun_with_the_environment(tmp_path):
    python = fake_command(tmp_path, 'python')
    env = dict(PYTHON=python, NNODES='2', NODE_RANK='1', MASTER_ADDR='10.0.0.5', PORT='29600')
    train = run_tool(['tools/dist_train.sh', 'a.py', '4', '--amp'], env=env)
    assert train.returncode == 0, train.stderr
    assert train.stdout.splitlines() == [
        '-m', 'torch.distributed.run', '--nnodes=2', '--node_rank=1', '--master_addr=10.0.0.5',
        '--master_port=29600', '--nproc_per_node=4', f'{ROOT}/tools/train.py', 'a.py',
        '--amp', '--launcher', 'pytorch']
    test = run_tool(['tools/dist_test.sh', 'a.py', 'c.pth', '1'], env=dict(PYTHON=python))
    assert test.stdout.splitlines() == [
        '-m', 'torch.distributed.run', '--nnodes=1', '--node_rank=0', '--master_addr=127.0.0.1',
        '--master_port=29500', '--nproc_per_node=1', f'{ROOT}/tools/test.py', 'a.py', 'c.pth',
        '--launcher', 'pytorch']
    bad = run_tool(['tools/dist_train.sh', 'a.py', 'two'], env=dict(PYTHON=python))
    assert bad.returncode == 2
    assert bad.stderr == "error: GPUS must be a positive integer, got 'two'\n"


def test_dist_scripts_default_to_the_setup_venv(tmp_path):
    """Without PYTHON the venv of tools/setup/setup_env.sh runs the tools (it need not be active)."""
    (tmp_path / 'bin').mkdir()
    fake_command(tmp_path / 'bin', 'python')
    env = {k: v for k, v in os.environ.items() if k != 'PYTHON'}
    env['RAPIDNET_MM_VENV'] = str(tmp_path)
    result = subprocess.run(['tools/dist_train.sh', 'a.py', '1'], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:2] == ['-m', 'torch.distributed.run']


def test_slurm_scripts_run_srun_with_the_environment(tmp_path):
    fake_command(tmp_path, 'srun')
    env = dict(PATH=f'{tmp_path}:{os.environ["PATH"]}', PYTHON='py', GPUS='16',
               GPUS_PER_NODE='8', CPUS_PER_TASK='4', SRUN_ARGS='--time=10 --qos=low')
    train = run_tool(['tools/slurm_train.sh', 'gpu', 'job1', 'a.py', 'wd', '--amp'], env=env)
    assert train.returncode == 0, train.stderr
    srun_options = ['-p', 'gpu', '--job-name=job1', '--gres=gpu:8', '--ntasks=16',
                    '--ntasks-per-node=8', '--cpus-per-task=4', '--kill-on-bad-exit=1',
                    '--time=10', '--qos=low', 'py', '-u']
    assert train.stdout.splitlines() == srun_options + [
        f'{ROOT}/tools/train.py', 'a.py', '--work-dir', 'wd', '--amp', '--launcher', 'slurm']
    test = run_tool(['tools/slurm_test.sh', 'gpu', 'job1', 'a.py', 'c.pth'], env=env)
    assert test.stdout.splitlines() == srun_options + [
        f'{ROOT}/tools/test.py', 'a.py', 'c.pth', '--launcher', 'slurm']


SYNC_BN_SETTINGS = {
    'configs/det/maskrcnn_rapidnet_s_coco.py': ['model.backbone.norm_cfg'],
    SEG: ['model.backbone.norm_cfg', 'model.decode_head.norm_cfg'],
}
AMP_ERROR = ('error: AmpOptimWrapper (mixed precision) needs a GPU and this machine has none; '
             'train in fp32 with --no-amp')


def sync_bn_error(settings: list, extra: str = '') -> str:
    return (f'error: SyncBN ({", ".join(settings)}) needs CUDA and this machine has none; to '
            'run distributed on CPU use plain BN: --cfg-options '
            + ' '.join(f'{s}.type=BN' for s in settings) + extra)


@needs_cpu_only
@pytest.mark.parametrize('config', sorted(SYNC_BN_SETTINGS))
def test_sync_bn_check_names_every_setting(config):
    cfg = load_cfg(os.path.join(ROOT, config))
    check_training_devices(cfg)  # not distributed: mmengine reverts SyncBN to BN itself
    cfg.launcher = 'pytorch'
    with pytest.raises(ConfigError) as error:
        check_training_devices(cfg)
    assert f'error: {error.value}' == sync_bn_error(SYNC_BN_SETTINGS[config])
    # the Runner's own BN -> SyncBN conversion is named too
    cfg.merge_from_dict({f'{s}.type': 'BN' for s in SYNC_BN_SETTINGS[config]})
    check_training_devices(cfg)
    cfg.sync_bn = 'torch'
    with pytest.raises(ConfigError) as error:
        check_training_devices(cfg)
    assert str(error.value) == 'SyncBN (sync_bn) needs CUDA and this machine has none; to run ' \
        'distributed on CPU use plain BN: --cfg-options sync_bn=None'


@needs_cpu_only
def test_test_tool_stops_on_sync_bn_distributed_on_cpu(tmp_path, monkeypatch, capsys):
    """Testing too: DDP refuses SyncBN modules on CPU, so tools/test.py stops the same way."""
    checkpoint = tmp_path / 'c.pth'
    checkpoint.write_bytes(b'')
    monkeypatch.setattr('sys.argv', [
        'test.py', SEG, str(checkpoint), '--launcher', 'pytorch', '--work-dir', str(tmp_path),
        '--cfg-options', f'test_dataloader.dataset.data_root={tmp_path}'])
    assert load_tool('test').main() == 2
    assert capsys.readouterr().err.strip() == sync_bn_error(SYNC_BN_SETTINGS[SEG])


@needs_cpu_only
def test_amp_check():
    cfg = load_cfg(os.path.join(ROOT, 'configs/cls/rapidnet_ti_in1k.py'))
    with pytest.raises(ConfigError) as error:
        check_training_devices(cfg)
    assert f'error: {error.value}' == AMP_ERROR
    cfg.optim_wrapper.type = 'OptimWrapper'
    check_training_devices(cfg)


@needs_cpu_only
@pytest.mark.parametrize('args, expected', [
    (['configs/cls/rapidnet_ti_in1k.py'], AMP_ERROR),
    ([SEG, '--amp'], AMP_ERROR),
    # --no-amp gets past the AMP check, to the missing data set
    (['configs/cls/rapidnet_ti_in1k.py', '--no-amp'],
     "error: dataset root 'data/imagenet' (train_dataloader.dataset.data_root) does not exist; "
     'put the data there or point the config at it, e.g. --cfg-options '
     'train_dataloader.dataset.data_root=/path/to/data'),
])
def test_train_tool_amp_flags(args, expected, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr('sys.argv', ['train.py'] + args + ['--work-dir', str(tmp_path / 'w')])
    assert load_tool('train').main() == 2
    assert capsys.readouterr().err.strip() == expected
    assert not (tmp_path / 'w').exists()


@needs_cpu_only
@pytest.mark.slow
def test_train_tool_exits_with_the_sync_bn_line(tmp_path):
    """As a user sees it: exit status 2 and the one line last, before the runner is built."""
    work = tmp_path / 'work'
    result = run_tool([PYTHON, 'tools/train.py', SEG, '--launcher', 'pytorch', '--work-dir',
                       str(work)])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == sync_bn_error(SYNC_BN_SETTINGS[SEG])
    assert not work.exists()


def dist_train(config: str, cwd, options: list) -> tuple:
    """Train ``config`` on 2 CPU processes through tools/dist_train.sh; return (work dir, log)."""
    work = os.path.join(cwd, 'work')
    result = run_tool([os.path.join(ROOT, 'tools/dist_train.sh'), config, '2', '--work-dir',
                       work, '--no-validate', '--cfg-options'] + options
                      + ['log_level=DEBUG', 'default_hooks.logger.interval=1'],
                      env=dict(PYTHON=PYTHON, PORT=str(free_port())), cwd=str(cwd))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    return work, output


def assert_two_ranks_trained(work: str, iters: int) -> None:
    """Both ranks logged every iteration (DEBUG: one log per rank) and rank 0 saved one
    checkpoint."""
    logs = sorted(p for p in os.listdir(work) if os.path.isdir(os.path.join(work, p)))
    assert len(logs) == 1
    rank_logs = sorted(f for f in os.listdir(os.path.join(work, logs[0])) if f.endswith('.log'))
    assert [re.search(r'_rank(\d)\.log$', f).group(1) for f in rank_logs] == ['0', '1']
    for name in rank_logs:
        with open(os.path.join(work, logs[0], name)) as f:
            assert f'Iter(train) [{iters}/{iters}]' in f.read(), name
    assert sorted(f for f in os.listdir(work) if f.endswith('.pth')) == [f'iter_{iters}.pth']


@pytest.mark.slow
def test_dist_train_two_processes_detection(tmp_path):
    make_dataset(str(tmp_path / 'data' / 'tiny_coco'), 4, 1, 128, verbose=False)
    work, _ = dist_train(os.path.join(ROOT, DEMO_DET), tmp_path, [
        'model.backbone.norm_cfg.type=BN', 'train_cfg.max_iters=1',
        'default_hooks.checkpoint.interval=1', 'train_dataloader.batch_size=1'])
    assert_two_ranks_trained(work, 1)


@pytest.mark.slow
def test_dist_train_two_processes_segmentation(tmp_path):
    data_root = str(tmp_path / 'ADEChallengeData2016')
    make_ade_layout(data_root)
    work, _ = dist_train(os.path.join(ROOT, SEG), tmp_path, overrides(data_root) + [
        'model.backbone.norm_cfg.type=BN', 'model.decode_head.norm_cfg.type=BN',
        'train_cfg.max_iters=1', 'default_hooks.checkpoint.interval=1',
        'param_scheduler.0.end=1', 'train_dataloader.batch_size=1'])
    assert_two_ranks_trained(work, 1)
