"""The distillation teacher as the authors' script gets it: the ImageNet configs default to DeiT's
RegNetY-16GF weights (timm's Hub copy), downloaded through the package's download path when
training starts and never to build or evaluate; a local file still works; offline with an empty
cache is one line. The Hub is the stand-in of tests/hub_standin.py, serving a tiny timm model in
place of RegNetY-16GF."""
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from cls_helpers import (NUM_CLASSES, PYTHON, ROOT, TINY_TEACHER, make_imagenet,
                         make_teacher_checkpoint, run_tool, tiny_config)
from hub_standin import hub  # noqa: F401  (the fixture)
from rapidnet_mm.model_hub import TEACHER_PREFIX
from rapidnet_mm.models.distillation import load_teacher
from rapidnet_mm.teacher_weights import prepare_teacher

pytestmark = pytest.mark.core

TEACHER_REPO, TEACHER_FILE = 'timm/regnety_160.deit_in1k', 'model.safetensors'
TEACHER_URL = f'https://huggingface.co/{TEACHER_REPO}/resolve/main/{TEACHER_FILE}'
BASE = 'configs/cls/rapidnet_ti_in1k.py'
DISTILLING = ['rapidnet_ti_in1k', 'rapidnet_s_in1k', 'rapidnet_m_in1k', 'rapidnet_b_in1k'] + [
    f'ablation/rapidnet_ti_{a}_in1k' for a in ('pointwise', 'conv3x3', 'sldc', 'sldc_cpe',
                                               'sldc_cpe_lkffn', 'deformable', 'dilation34',
                                               'kernel5x5')]


def serve_tiny_teacher(hub, tmp_path) -> dict:
    """Serve a tiny timm model's weights as the Hub copy of RegNetY-16GF; its state dict."""
    from safetensors.torch import save_file
    state = make_teacher_checkpoint(str(tmp_path / 'unused.pth')).state_dict()
    save_file(state, str(tmp_path / TEACHER_FILE))
    hub.add(TEACHER_REPO, TEACHER_FILE, (tmp_path / TEACHER_FILE).read_bytes())
    return state


@pytest.mark.parametrize('config', DISTILLING + ['ablation/rapidnet_ti_no_kd_in1k'])
def test_imagenet_configs_default_to_deits_regnety_160(config):
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'cls', config + '.py'))
    distilling = config in DISTILLING
    assert cfg.model.head.distillation == distilling
    assert cfg.model.teacher.arch == 'regnety_160'
    assert cfg.model.teacher.checkpoint == (TEACHER_URL if distilling else None)


def test_building_and_evaluating_fetch_no_teacher(hub):
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(osp.join(ROOT, BASE))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64), mode='tensor').shape == (1, 1000)
    assert model.teacher is None and hub.requests == []


def test_prepare_teacher_downloads_a_url_and_keeps_a_local_file(hub, tmp_path, capsys):
    state = serve_tiny_teacher(hub, tmp_path)
    cfg = Config.fromfile(osp.join(ROOT, BASE))
    prepare_teacher(cfg)
    local = cfg.model.teacher.checkpoint
    assert osp.isfile(local) and local.startswith(str(tmp_path / 'hf_home'))
    assert f"the teacher's weights (model.teacher.checkpoint): {TEACHER_URL} -> {local}" in \
        capsys.readouterr().out
    # a plain Runner's step: mmengine's loader, taught the package's Hub download (the cache)
    assert TEACHER_URL.startswith(TEACHER_PREFIX)
    teacher = load_teacher(TINY_TEACHER, TEACHER_URL, NUM_CLASSES)
    assert all(torch.equal(teacher.state_dict()[k], v) for k, v in state.items())
    assert hub.downloads(TEACHER_FILE) == 1
    # --cfg-options model.teacher.checkpoint=PATH: the local file, nothing fetched
    cfg.model.teacher.checkpoint = str(tmp_path / 'teacher.pth')
    make_teacher_checkpoint(cfg.model.teacher.checkpoint)
    prepare_teacher(cfg)
    assert cfg.model.teacher.checkpoint == str(tmp_path / 'teacher.pth')
    assert hub.downloads(TEACHER_FILE) == 1


def test_offline_with_an_empty_cache_refuses_in_one_line(hub, tmp_path):
    make_imagenet(str(tmp_path / 'imagenet'), {'train': 1})
    cfg = tiny_config(BASE, str(tmp_path / 'cfg.py'), str(tmp_path / 'imagenet'), None,
                      keep_teacher_checkpoint=True)
    hub.env.set(HF_HUB_OFFLINE='1')
    work = tmp_path / 'work'
    result = run_tool([PYTHON, 'tools/train.py', cfg, '--work-dir', str(work), '--no-validate'])
    assert result.returncode == 2, result.stdout[-3000:] + result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: the teacher's weights (model.teacher.checkpoint): "
                           f'{TEACHER_URL} is not in the Hugging Face cache')
    assert 'HF_HUB_OFFLINE=1' in last and '--cfg-options model.teacher.checkpoint=' in last
    assert not osp.exists(work) and hub.requests == []


@pytest.mark.slow
def test_train_starts_with_the_default_teacher_from_the_hub(hub, tmp_path):
    """tools/train.py configs/cls/rapidnet_ti_in1k.py (shrunk, the teacher's arch a tiny one)
    with no teacher option: the config's URL is downloaded once and distillation trains."""
    serve_tiny_teacher(hub, tmp_path)
    make_imagenet(str(tmp_path / 'imagenet'), {'train': 2})
    cfg = tiny_config(BASE, str(tmp_path / 'cfg.py'), str(tmp_path / 'imagenet'), None,
                      keep_teacher_checkpoint=True)
    assert Config.fromfile(cfg).model.teacher.checkpoint == TEACHER_URL
    result = run_tool([PYTHON, 'tools/train.py', cfg, '--work-dir', str(tmp_path / 'work'),
                       '--no-validate'])
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert f"the teacher's weights (model.teacher.checkpoint): {TEACHER_URL} -> " in output
    losses = re.findall(r'Epoch\(train\) \[1\]\[(\d)/2\].*loss_distill: ([\d.]+)', output)
    assert [it for it, _ in losses] == ['1', '2'] and all(float(d) > 0 for _, d in losses)
    assert hub.downloads(TEACHER_FILE) == 1
