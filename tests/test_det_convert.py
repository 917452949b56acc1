"""The authors' mmdet 2.28 Mask R-CNN checkpoints -> our mmdet 3.x model, on checkpoints
synthesised in that layout, and backbone initialisation from a converted classification file."""
import pytest
import torch

from det_helpers import DET_CONFIGS, build_detector, load_cfg, synthesise_mmdet2_checkpoint
from numeric_helpers import assert_close_to_scale
from original_layout import OriginalRapidNet, randomize_
from rapidnet_mm.checkpoints import CheckpointLayoutError, classification, detection
from rapidnet_mm.checkpoints import convert_checkpoint
from tool_helpers import load_tool

pytestmark = pytest.mark.core

# The neck and head parameters of an mmdet 2.28 Mask R-CNN (FPN on 4 inputs, 5 outputs via
# max-pooling; single-conv RPNHead; Shared2FCBBoxHead; 4-conv FCNMaskHead with a deconv), named
# as mmdet 2.28 saves them.
MMDET2_NECK_AND_HEADS = (
    [f'neck.{kind}.{i}.conv.{p}' for kind in ('lateral_convs', 'fpn_convs') for i in range(4)
     for p in ('weight', 'bias')]
    + [f'rpn_head.{m}.{p}' for m in ('rpn_conv', 'rpn_cls', 'rpn_reg') for p in ('weight', 'bias')]
    + [f'roi_head.bbox_head.{m}.{p}' for m in ('shared_fcs.0', 'shared_fcs.1', 'fc_cls', 'fc_reg')
       for p in ('weight', 'bias')]
    + [f'roi_head.mask_head.{m}.{p}' for m in ('convs.0.conv', 'convs.1.conv', 'convs.2.conv',
                                               'convs.3.conv', 'upsample', 'conv_logits')
       for p in ('weight', 'bias')])


@pytest.fixture(scope='module')
def model_m():
    """Our RapidNet-M Mask R-CNN (eval mode) with distinct values in every neck/head tensor."""
    torch.manual_seed(0)
    model = build_detector(load_cfg(DET_CONFIGS['m'])).eval()
    return model


def test_mmdet3_names_are_the_mmdet2_names(model_m):
    """Every non-backbone parameter of mmdet 3.3.0's Mask R-CNN has its mmdet 2.28 name: the
    converter's rules are identities, and each 2.28 name has a rule."""
    ours = {k for k in model_m.state_dict() if not k.startswith('backbone.')}
    assert ours == set(MMDET2_NECK_AND_HEADS)
    assert all(detection.map_neck_or_head_key(k) == k for k in MMDET2_NECK_AND_HEADS)


def test_round_trip_strict_load_and_equal_backbone_outputs(model_m):
    ckpt, original = synthesise_mmdet2_checkpoint(model_m)
    assert detection.matches(ckpt)
    conversion = detection.convert(ckpt)
    assert (conversion.kind, conversion.arch) == ('detection', 'm')
    assert '80 classes (set num_classes of bbox_head and mask_head to match)' in conversion.notes
    assert any('dropped: optimizer, meta' in n for n in conversion.notes)

    result = model_m.load_state_dict(conversion.state_dict, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    for key in MMDET2_NECK_AND_HEADS:
        assert torch.equal(model_m.state_dict()[key], ckpt['state_dict'][key])
    x = torch.randn(1, 3, 96, 128, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = original(x)
        got = model_m.backbone(x)
    assert len(got) == 4
    for e, g in zip(expected, got):
        assert_close_to_scale(g, e)

    # the dispatcher of tools/model_converters/convert_official.py picks this module for the same file
    via_dispatcher = convert_checkpoint(ckpt)
    assert via_dispatcher.kind == 'detection'
    assert via_dispatcher.state_dict.keys() == conversion.state_dict.keys()


def test_convert_official_tool_writes_a_loadable_file(model_m, tmp_path, capsys):
    ckpt, _ = synthesise_mmdet2_checkpoint(model_m, seed=2)
    ckpt['meta'] = {'mmdet_version': '2.28.2'}  # what weights_only=True can read back
    src, dst = tmp_path / 'RapidNet_M_Detection.pth', tmp_path / 'out' / 'maskrcnn_m.pth'
    torch.save(ckpt, src)
    assert load_tool('model_converters/convert_official').main([str(src), str(dst)]) == 0
    out = capsys.readouterr().out
    assert 'detection checkpoint, RapidNet-m' in out
    assert '(for configs/det/maskrcnn_rapidnet_m_coco.py)' in out
    saved = torch.load(dst, map_location='cpu', weights_only=True)
    assert saved['meta']['config'] == 'configs/det/maskrcnn_rapidnet_m_coco.py'
    model_m.load_state_dict(saved['state_dict'], strict=True)
    key = 'roi_head.mask_head.conv_logits.weight'
    assert torch.equal(model_m.state_dict()[key], ckpt['state_dict'][key])


def test_unmappable_keys_are_listed(model_m):
    ckpt, _ = synthesise_mmdet2_checkpoint(model_m)
    ckpt['state_dict']['roi_head.bbox_head.fc_extra.weight'] = torch.zeros(1)
    ckpt['state_dict']['backbone.prediction.1.weight'] = torch.zeros(1)
    with pytest.raises(CheckpointLayoutError) as err:
        detection.convert(ckpt)
    assert err.value.keys == ['backbone.prediction.1.weight',
                              'roi_head.bbox_head.fc_extra.weight']
    assert 'map to no mmdet 3.x' in str(err.value)


def test_wrong_variant_and_other_layouts(model_m):
    ckpt, _ = synthesise_mmdet2_checkpoint(model_m)
    with pytest.raises(CheckpointLayoutError, match="RapidNet-M, not the requested 'b'"):
        detection.convert(ckpt, arch='b')
    # a segmentation file (backbone + decode_head) and a classification file are not ours
    seg = {'state_dict': {k: v for k, v in ckpt['state_dict'].items()
                          if k.startswith(('backbone.', 'neck.'))}}
    seg['state_dict']['decode_head.conv_seg.weight'] = torch.zeros(150, 128, 1, 1)
    assert not detection.matches(seg)
    cls = {'state_dict': OriginalRapidNet('ti').state_dict()}
    assert not detection.matches(cls)
    with pytest.raises(CheckpointLayoutError, match='not an mmdet 2.x RapidNet detector'):
        detection.convert(cls)


def test_backbone_init_from_converted_classification_checkpoint(tmp_path):
    """``init_cfg=dict(type='Pretrained', prefix='backbone.')`` of the configs loads every
    backbone tensor of a converted ImageNet checkpoint."""
    original = randomize_(OriginalRapidNet('s'), seed=4)
    state = original.state_dict()
    authors_file = dict(state_dict=state, state_dict_ema={k: v + 0.5 if v.is_floating_point()
                                                          else v for k, v in state.items()})
    conversion = classification.convert(authors_file, weights='ema')
    path = tmp_path / 'rapidnet_s_in1k.pth'
    torch.save({'state_dict': conversion.state_dict}, path)

    cfg = load_cfg(DET_CONFIGS['s'], {'model.backbone.init_cfg.checkpoint': str(path)})
    model = build_detector(cfg, pretrained=True)
    model.init_weights()
    loaded = model.backbone.state_dict()
    source = {k[len('backbone.'):]: v for k, v in conversion.state_dict.items()
              if k.startswith('backbone.')}
    assert loaded.keys() == source.keys()  # none missing, none left over
    different = [k for k in loaded if not torch.equal(loaded[k], source[k])]
    assert different == []
    # the EMA weights were taken, as the authors' downstream code does
    key = 'stem.conv1.conv.weight'
    torch.testing.assert_close(loaded[key], state['stem.stem.0.weight'] + 0.5)
