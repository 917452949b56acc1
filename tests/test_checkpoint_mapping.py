"""The authors' parameter names map onto ours: outputs of an original-layout model equal ours."""
import pytest
import torch
from mmpretrain.models import ImageClassifier

from numeric_helpers import assert_close_to_scale
from rapidnet_mm import RapidNet
from rapidnet_mm.checkpoints import convert_original_state
from original_layout import OriginalDownstreamBackbone, OriginalRapidNet, randomize_

pytestmark = pytest.mark.core


def build_classifier(arch):
    return ImageClassifier(backbone=dict(type='RapidNet', arch=arch),
                           head=dict(type='RapidNetClsHead', arch=arch, num_classes=1000))


@pytest.mark.parametrize('arch', ['ti', 's', 'm', 'b'])
def test_classification_layout_maps_exactly(arch):
    original = randomize_(OriginalRapidNet(arch), seed=1).eval()
    converted, unmapped = convert_original_state(original.state_dict())
    assert unmapped == []
    ours = build_classifier(arch).eval()
    ours.load_state_dict(converted, strict=True)
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        assert_close_to_scale(ours.double()(x, mode='tensor'), original.double()(x), rel=1e-10)
    # same number of tensors, nothing invented
    assert len(converted) == len(original.state_dict())


def test_folded_positional_encoding_is_unfolded():
    reference = randomize_(OriginalRapidNet('ti'), seed=2).eval()
    folded = OriginalRapidNet('ti', folded_cpe=True).eval()
    state = dict(reference.state_dict())
    for key in list(state):
        if '.cpe.pe.' in key:
            value = state.pop(key)
            if key.endswith('weight'):
                value = value.clone()
                value[:, 0, 3, 3] += 1
            state[key.replace('.cpe.pe.', '.cpe.reparam_conv.')] = value
    folded.load_state_dict(state)
    converted, unmapped = convert_original_state(folded.state_dict())
    assert unmapped == []
    ours = build_classifier('ti').eval()
    ours.load_state_dict(converted, strict=True)
    x = torch.randn(1, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        # the fold (+1) and unfold (-1) of the centre tap round in float32: ~1e-8 relative
        assert_close_to_scale(ours.double()(x, mode='tensor'), reference.double()(x), rel=1e-6)


def test_downstream_backbone_layout_maps_exactly():
    original = randomize_(OriginalDownstreamBackbone('m'), seed=3).eval()
    state = {f'backbone.{k}': v for k, v in original.state_dict().items()}
    state['neck.lateral_convs.0.conv.weight'] = torch.zeros(1)
    converted, unmapped = convert_original_state(state, backbone_prefix='', head_prefix=None,
                                                 source_prefix='backbone.')
    assert unmapped == ['neck.lateral_convs.0.conv.weight']
    ours = RapidNet('m').eval()
    ours.load_state_dict(converted, strict=True)
    x = torch.randn(1, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        for a, b in zip(ours.double()(x), original.double()(x)):
            assert_close_to_scale(a, b, rel=1e-10)


def test_unknown_keys_are_reported():
    state = OriginalRapidNet('ti').state_dict()
    state['backbone.2.6.mixer.attention.qkv.weight'] = torch.zeros(1)
    _, unmapped = convert_original_state(state)
    assert unmapped == ['backbone.2.6.mixer.attention.qkv.weight']
