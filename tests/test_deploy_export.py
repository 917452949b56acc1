"""The module that is exported: normalisation built in, dilated-as-dense rewrite, and the checks
that stop bad input before any conversion."""
import pytest
import torch
import torch.nn as nn
from deploy_helpers import IMAGENET, config_path, perturb, rel_diff, ti_classifier
from mmengine.config import Config

from rapidnet_mm import RapidNet
from rapidnet_mm.config import ConfigError, load_model_config
from rapidnet_mm.deploy import (ExportError, InputNormalization, check_input_size,
                                dense_equivalent, dilated_to_dense, input_normalization,
                                output_names, prepare_export, psnr, reference_outputs)
from rapidnet_mm.deploy.comparison import random_image

pytestmark = pytest.mark.core

def test_dense_equivalent_places_taps_and_matches():
    conv = nn.Conv2d(4, 6, 3, padding=3, dilation=3, groups=2)
    dense = dense_equivalent(conv)
    assert dense.kernel_size == (7, 7) and dense.dilation == (1, 1) and dense.padding == (3, 3)
    assert torch.equal(dense.weight[:, :, ::3, ::3], conv.weight)
    mask = torch.ones(7, 7, dtype=torch.bool)
    mask[::3, ::3] = False
    assert dense.weight[:, :, mask].abs().sum() == 0
    x = torch.randn(2, 4, 11, 9)
    with torch.no_grad():
        assert torch.allclose(dense(x), conv(x), atol=1e-5)


def test_dilated_as_dense_equal_outputs_in_pytorch():
    backbone = perturb(RapidNet('ti')).eval()
    backbone.switch_to_deploy()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        ref = backbone(x)
        assert dilated_to_dense(backbone) == 8  # 4 MLDC blocks x dilations (2, 3)
        got = backbone(x)
    sizes = sorted({m.kernel_size for m in backbone.modules() if isinstance(m, nn.Conv2d)})
    assert (5, 5) in sizes and (7, 7) in sizes
    assert not any(max(m.dilation) > 1 for m in backbone.modules() if isinstance(m, nn.Conv2d))
    for r, g in zip(ref, got):
        assert rel_diff(r, g) < 1e-5


@pytest.mark.parametrize('dense,mean_in_graph', [(False, False), (True, True)])
def test_export_module_takes_pixels_and_matches_the_model(dense, mean_in_graph):
    model = ti_classifier()
    module = prepare_export(model, 'classifier', (64, 64), IMAGENET, dense, mean_in_graph)
    image = random_image((64, 64))
    x = image if mean_in_graph else image - image.new_tensor(IMAGENET.mean).reshape(1, 3, 1, 1)
    with torch.no_grad():
        got = module(x)
    assert rel_diff(reference_outputs(model, 'classifier', image, IMAGENET)[0], got) < 1e-5
    assert not any(isinstance(m, nn.BatchNorm2d) for m in module.modules())
    assert not model.backbone.deploy  # the caller's model is untouched
    # std folded into the first conv: its weights are the deploy weights / std
    first = module.backbone.stem.conv1.conv.weight
    ref = model.backbone.stem.conv1
    scale = (ref.norm.weight / (ref.norm.running_var + ref.norm.eps).sqrt()).reshape(-1, 1, 1, 1)
    std = torch.tensor(IMAGENET.std).reshape(1, 3, 1, 1)
    assert torch.allclose(first, ref.conv.weight * scale / std, atol=1e-6)


def test_backbone_outputs_are_named_by_stride():
    model = ti_classifier()
    assert output_names(model, 'backbone') == ['feat_s4', 'feat_s8', 'feat_s16', 'feat_s32']
    assert output_names(model, 'classifier') == ['logits']
    model.backbone.out_indices = (1, 3)
    assert output_names(model, 'backbone') == ['feat_s8', 'feat_s32']


def test_bad_input_is_refused_before_conversion():
    model = ti_classifier()
    with pytest.raises(ExportError, match="unknown task 'detector'"):
        prepare_export(model, 'detector', (224, 224), IMAGENET)
    with pytest.raises(ExportError, match=r'225x224 cannot be taken.*\[224, 256\]'):
        check_input_size((225, 224))
    with pytest.raises(ExportError, match='multiples of its total stride'):
        prepare_export(model, 'classifier', (16, 16), IMAGENET)
    model.backbone.train()
    with pytest.raises(ExportError, match=r'training mode.*model.eval\(\)'):
        prepare_export(model, 'classifier', (224, 224), IMAGENET)


def test_classifier_task_needs_a_classifier():
    cfg = load_model_config(config_path('seg', 'fpn_rapidnet_ti_ade20k.py'))
    from rapidnet_mm.config import build_model
    segmentor = build_model(cfg)
    with pytest.raises(ExportError, match='--task backbone'):
        prepare_export(segmentor, 'classifier', (64, 64), IMAGENET)
    assert input_normalization(cfg) == IMAGENET  # bgr_to_rgb=True: the network sees RGB


def test_normalization_comes_from_the_config():
    cls = input_normalization(load_model_config(config_path('cls', 'rapidnet_ti_in1k.py')))
    assert cls == IMAGENET
    bgr = Config(dict(model=dict(data_preprocessor=dict(mean=[1, 2, 3], std=[4, 5, 6]))))
    assert input_normalization(bgr) == InputNormalization((1., 2., 3.), (4., 5., 6.), 'BGR')
    with pytest.raises(ConfigError, match='no data_preprocessor mean/std'):
        input_normalization(Config(dict(model=dict(type='X'))))


def test_psnr():
    ref = torch.tensor([1.0, -2.0, 0.5, 0.0])
    assert psnr(ref, ref) == float('inf')
    # MSE 0.01, peak 2 -> 10 log10(4 / 0.01) = 26.02 dB
    assert psnr(ref, ref + 0.1) == pytest.approx(26.0206, abs=1e-3)
    assert psnr(ref, torch.tensor([float('inf'), 0., 0., 0.])) == float('-inf')
