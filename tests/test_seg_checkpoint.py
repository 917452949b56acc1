"""The authors' mmseg 0.30 Semantic FPN checkpoints convert to mmseg 1.x: synthesised files in that
layout load with strict=True into the configs' models and reproduce the original backbone."""
import os.path as osp
import subprocess
import sys

import pytest
import torch

from numeric_helpers import assert_close_to_scale
from rapidnet_mm.checkpoints import CheckpointLayoutError, convert_checkpoint
from rapidnet_mm.checkpoints import segmentation
from seg_helpers import build_segmentor, synthesise
from tool_helpers import ROOT

pytestmark = pytest.mark.core


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
            assert_close_to_scale(ours, theirs)
        logits = model.decode_head(model.neck(features))
        expected_logits = reference.decode_head(reference.neck(expected))
    assert logits.shape == (1, 150, 16, 24)
    assert_close_to_scale(logits, expected_logits)


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
        assert_close_to_scale(model.backbone(x)[-1], backbone.eval()(x)[-1])


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
