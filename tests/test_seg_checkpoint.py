"""The authors' mmseg 0.30 Semantic FPN checkpoints convert to mmseg 1.x: synthesised files in that
layout load with strict=True into the configs' models and reproduce the original backbone."""
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmseg.registry import MODELS

from rapidnet_mm.checkpoints import CheckpointLayoutError, convert_checkpoint
from rapidnet_mm.checkpoints import segmentation
from original_layout import OriginalDownstreamBackbone, randomize_

pytestmark = pytest.mark.core

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def build_segmentor(arch: str, norm: str = 'SyncBN'):
    cfg = Config.fromfile(osp.join(ROOT, f'configs/seg/fpn_rapidnet_{arch}_ade20k.py'))
    cfg.model.backbone.init_cfg = None
    cfg.model.backbone.norm_cfg = cfg.model.decode_head.norm_cfg = dict(type=norm)
    return MODELS.build(cfg.model)


def mmseg030_neck_head_names() -> list:
    """Parameter and buffer names of mmseg 0.30's FPN(4 inputs, 4 outputs) + FPNHead, written out
    from mmseg 0.30's module structure: scale head i has max(1, i) ConvModules (conv + bn),
    each followed by an Upsample when i > 0, so the ConvModules sit at indices 0, 2, 4."""
    names = []
    for i in range(4):
        for kind in ('lateral_convs', 'fpn_convs'):
            names += [f'neck.{kind}.{i}.conv.weight', f'neck.{kind}.{i}.conv.bias']
    for i in range(4):
        for j in range(0, 2 * max(1, i), 2):
            prefix = f'decode_head.scale_heads.{i}.{j}'
            names.append(f'{prefix}.conv.weight')
            names += [f'{prefix}.bn.{b}' for b in
                      ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')]
    return names + ['decode_head.conv_seg.weight', 'decode_head.conv_seg.bias']


def assert_close_scaled(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Equal to float precision. Randomised weights make features grow to ~1e5 through the
    stages, so the absolute tolerance follows the largest magnitude."""
    torch.testing.assert_close(actual, expected, rtol=1e-4,
                               atol=1e-5 * float(expected.abs().max()))


def fold_positional_encodings(state: dict) -> dict:
    """The state of the same network with ``cpe.pe`` folded into ``cpe.reparam_conv``."""
    folded = {}
    for key, value in state.items():
        if '.cpe.pe.' in key:
            if key.endswith('weight'):
                value = value.clone()
                value[:, 0, 3, 3] += 1
            key = key.replace('.cpe.pe.', '.cpe.reparam_conv.')
        folded[key] = value
    return folded


def synthesise(arch: str, seed: int, folded: bool = False):
    """An authors'-layout mmseg 0.30 checkpoint, the original backbone and a reference neck/head
    holding the same tensors."""
    backbone = randomize_(OriginalDownstreamBackbone(arch), seed=seed).eval()
    reference = build_segmentor(arch, norm='BN').eval()
    randomize_(reference.neck, seed=seed + 1)
    randomize_(reference.decode_head, seed=seed + 2)
    neck_head = {k: v for k, v in reference.state_dict().items()
                 if k.startswith(('neck.', 'decode_head.'))}
    # the names the authors' file has are mmseg 0.30's; they are the installed 1.x names too
    assert sorted(neck_head) == sorted(mmseg030_neck_head_names())
    state = {f'backbone.{k}': v for k, v in backbone.state_dict().items()}
    if folded:
        state = fold_positional_encodings(state)
    state.update(neck_head)
    ckpt = dict(
        state_dict=state,
        meta=dict(mmseg_version='0.30.0', mmcv_version='1.7.1', seed=0, iter=40000, epoch=1,
                  exp_name=f'fpn_rapidnet_{arch}_ade20k_40k.py', config='# mmseg 0.30 config',
                  env_info='sys.platform: linux', time='Mon Jan  1 00:00:00 2024',
                  CLASSES=('wall', 'building'), PALETTE=[[120, 120, 120], [180, 120, 120]],
                  hook_msgs=dict(last_ckpt='work_dirs/iter_40000.pth')),
        optimizer=dict(state={}, param_groups=[dict(lr=0.0, weight_decay=1e-4, params=[0])]))
    return ckpt, backbone, reference


@pytest.mark.parametrize('arch,folded', [('m', False), ('b', True)])
def test_round_trip_reproduces_the_original(arch, folded):
    ckpt, backbone, reference = synthesise(arch, seed=5, folded=folded)
    assert segmentation.matches(ckpt)
    conversion = convert_checkpoint(ckpt)  # through the dispatcher
    assert (conversion.kind, conversion.arch) == ('segmentation', arch)
    assert any('not converted' in n and 'meta' in n and 'optimizer' in n
               for n in conversion.notes)
    assert any('folded' in n for n in conversion.notes) == folded
    # the config's model (SyncBN everywhere) takes every tensor, strictly
    model = build_segmentor(arch).eval()
    model.load_state_dict(conversion.state_dict, strict=True)
    assert len(conversion.state_dict) == len(ckpt['state_dict'])
    x = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        features = model.backbone(x)
        expected = backbone(x)
        for ours, theirs in zip(features, expected):
            assert_close_scaled(ours, theirs)
        logits = model.decode_head(model.neck(features))
        expected_logits = reference.decode_head(reference.neck(expected))
    assert logits.shape == (1, 150, 16, 24)
    assert_close_scaled(logits, expected_logits)


def test_convert_official_tool(tmp_path):
    ckpt, backbone, _ = synthesise('m', seed=9)
    src, dst = tmp_path / 'RapidNet_M_Sem_Seg.pth', tmp_path / 'converted' / 'fpn_m.pth'
    torch.save(ckpt, src)
    result = subprocess.run([sys.executable, osp.join(ROOT, 'tools/model_converters/convert_official.py'),
                             str(src), str(dst)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'segmentation checkpoint, RapidNet-m' in result.stdout
    assert '(for configs/seg/fpn_rapidnet_m_ade20k.py)' in result.stdout
    # the converted file is an ordinary mmengine checkpoint: weights_only loading works
    saved = torch.load(dst, map_location='cpu', weights_only=True)
    assert saved['meta']['config'] == 'configs/seg/fpn_rapidnet_m_ade20k.py'
    model = build_segmentor('m').eval()
    model.load_state_dict(saved['state_dict'], strict=True)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert_close_scaled(model.backbone(x)[-1], backbone.eval()(x)[-1])


@pytest.fixture(scope='module')
def ti_checkpoint():
    return synthesise('ti', seed=3)[0]


def test_unknown_keys_are_listed(ti_checkpoint):
    state = dict(ti_checkpoint['state_dict'])
    state['auxiliary_head.conv_seg.weight'] = torch.zeros(150, 64, 1, 1)
    state['neck.extra_convs.0.conv.weight'] = torch.zeros(1)
    with pytest.raises(CheckpointLayoutError, match='map to nothing') as err:
        segmentation.convert(dict(ti_checkpoint, state_dict=state))
    assert err.value.keys == ['auxiliary_head.conv_seg.weight', 'neck.extra_convs.0.conv.weight']


def test_missing_and_misshapen_tensors_are_listed(ti_checkpoint):
    state = dict(ti_checkpoint['state_dict'])
    del state['decode_head.scale_heads.3.4.bn.running_var']
    with pytest.raises(CheckpointLayoutError, match='lacks tensors') as err:
        segmentation.convert(dict(ti_checkpoint, state_dict=state))
    assert err.value.keys == ['decode_head.scale_heads.3.4.bn.running_var']
    state = dict(ti_checkpoint['state_dict'])
    state['neck.fpn_convs.2.conv.bias'] = torch.zeros(128)
    with pytest.raises(CheckpointLayoutError, match='shapes') as err:
        segmentation.convert(dict(ti_checkpoint, state_dict=state))
    assert err.value.keys == ['neck.fpn_convs.2.conv.bias: (128,) != (256,)']


def test_other_class_counts_are_noted(ti_checkpoint):
    state = dict(ti_checkpoint['state_dict'])
    state['decode_head.conv_seg.weight'] = torch.zeros(19, 128, 1, 1)
    state['decode_head.conv_seg.bias'] = torch.zeros(19)
    conversion = segmentation.convert(dict(state_dict=state))
    assert conversion.arch == 'ti'
    assert any('19 classes' in n for n in conversion.notes)


def test_matches_only_segmentors(ti_checkpoint):
    state = ti_checkpoint['state_dict']
    classification = {k[len('backbone.'):]: v for k, v in state.items()
                      if k.startswith('backbone.')}
    detection = {k: v for k, v in state.items() if not k.startswith('decode_head.')}
    detection['roi_head.bbox_head.fc_cls.weight'] = torch.zeros(81, 1024)
    assert segmentation.matches(ti_checkpoint)
    assert not segmentation.matches(dict(state_dict=classification))
    assert not segmentation.matches(dict(state_dict=detection))
    assert not segmentation.matches(dict(model=state))
    assert not segmentation.matches([state])


def test_options_are_refused(ti_checkpoint):
    with pytest.raises(ValueError, match="segmentation checkpoint: \\['weights'\\]"):
        convert_checkpoint(ti_checkpoint, weights='raw')


def test_expected_state_builds_in_mmseg_whatever_the_current_scope():
    """A Runner of another library (here mmengine's own scope) may be the process default."""
    from mmengine.registry import DefaultScope

    from rapidnet_mm.checkpoints.segmentation import expected_state
    with DefaultScope.overwrite_default_scope('mmengine'):
        shapes = expected_state('ti', 256, 128, 150)
    assert shapes['decode_head.conv_seg.weight'] == (150, 128, 1, 1)
    assert shapes['backbone.stem.conv1.conv.weight'] == (16, 3, 3, 3)
