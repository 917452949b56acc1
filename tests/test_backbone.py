"""The RapidNet backbone: exact sizes, shapes, freezing, reparameterisation, argument checks."""
import copy

import pytest
import torch
import torch.nn as nn
from backbone_helpers import randomize
from mmpretrain.models import ImageClassifier
from torch.nn.modules.batchnorm import _BatchNorm

from rapidnet_mm import ARCH_SETTINGS, RapidNet, RapidNetClsHead
from rapidnet_mm.models.layers import LayerScale
from rapidnet_mm.models.rapidnet import drop_path_rates

pytestmark = pytest.mark.core

# The authors' variants, computed from the original definition (tests/original_layout.py).
BACKBONE_PARAMS = {'ti': 5_485_616, 's': 8_070_864, 'm': 16_113_120, 'b': 28_696_704}
CLASSIFIER_PARAMS = {'ti': 6_627_840, 's': 9_213_088, 'm': 17_304_496, 'b': 30_556_496}
NO_DIST_PARAMS = {'ti': 6_114_840, 's': 8_700_088, 'm': 16_791_496, 'b': 29_787_496}
ARCHS = ['ti', 's', 'm', 'b']


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def classifier(arch: str, distillation: bool = True) -> ImageClassifier:
    return ImageClassifier(
        backbone=dict(type='RapidNet', arch=arch),
        head=dict(type='RapidNetClsHead', arch=arch, num_classes=1000,
                  distillation=distillation))


@pytest.mark.parametrize('arch', ARCHS)
def test_exact_parameter_counts(arch):
    assert n_params(RapidNet(arch)) == BACKBONE_PARAMS[arch]
    assert n_params(classifier(arch)) == CLASSIFIER_PARAMS[arch]
    assert n_params(classifier(arch, distillation=False)) == NO_DIST_PARAMS[arch]


def test_docstring_examples_run():  # core, as the whole module
    import doctest

    from rapidnet_mm.models import rapidnet
    result = doctest.testmod(rapidnet, optionflags=doctest.ELLIPSIS)
    assert result == (0, 9)  # (failed, attempted): RapidNet's Example, every line checked


def test_variant_table_is_the_papers():
    ti, b = ARCH_SETTINGS['ti'], ARCH_SETTINGS['b']
    assert (ti['ir_blocks'], ti['mldc_blocks']) == ((2, 2, 6, 2), (0, 0, 2, 2))
    assert (b['ir_blocks'], b['mldc_blocks']) == ((3, 3, 9, 3), (0, 0, 3, 3))
    assert b['channels'] == (64, 128, 224, 416) and b['head_width'] == 768
    assert dict(ti) == dict(ir_blocks=(2, 2, 6, 2), mldc_blocks=(0, 0, 2, 2),
                            channels=(32, 64, 112, 224), head_width=512)
    assert 'blocks' not in ti and 'embed_dims' not in ti  # the old keys, refused (below)
    assert RapidNet(dict(ti)).arch == ti  # a custom dict with the table's keys


@pytest.mark.parametrize('arch, size', [('ti', (224, 224)), ('ti', (97, 131)), ('m', (160, 96)),
                                        ('s', (33, 65)), ('b', (65, 47))])
def test_stage_shapes_and_strides(arch, size):
    model = RapidNet(arch).eval()
    h, w = size
    with torch.no_grad():
        outs = model(torch.randn(1, 3, h, w))
    assert isinstance(outs, tuple) and len(outs) == 4
    for i, (out, c) in enumerate(zip(outs, ARCH_SETTINGS[arch]['channels'])):
        eh, ew = h, w
        for _ in range(i + 2):  # conv3x3 s2 p1 rounds up: ceil(n / 2)
            eh, ew = (eh + 1) // 2, (ew + 1) // 2
        assert out.shape == (1, c, eh, ew), (i, out.shape)
    if size == (224, 224):
        assert [o.shape[-1] for o in outs] == [56, 28, 14, 7]


def test_out_indices_select_and_negative():
    model = RapidNet('ti', out_indices=(-1, 1)).eval()
    assert model.out_indices == (1, 3)
    outs = model(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [64, 224]
    assert len(RapidNet('ti', out_indices=2)(torch.randn(1, 3, 64, 64))) == 1


def stage_blocks(arch: str):
    return ARCH_SETTINGS[arch]['ir_blocks'], ARCH_SETTINGS[arch]['mldc_blocks']


def test_original_drop_path_rates():
    s = drop_path_rates(*stage_blocks('s'), 0.1, 'original')
    assert s[0] == [0.0] * 3 and s[1] == [0.0] * 3 and s[2][:9] == [0.0] * 9
    assert s[2][9:] == pytest.approx([0.0, 0.1 / 23, 0.2 / 23])
    assert s[3] == pytest.approx([0.3 / 23] * 3 + [0.3 / 23, 0.4 / 23, 0.5 / 23])
    ti = drop_path_rates(*stage_blocks('ti'), 0.1, 'original')
    assert ti[2][6:] == pytest.approx([0.0, 0.1 / 15])
    assert ti[3] == pytest.approx([0.2 / 15] * 2 + [0.2 / 15, 0.3 / 15])
    linear = drop_path_rates(*stage_blocks('ti'), 0.1, 'linear')
    assert sum(linear, []) == pytest.approx(torch.linspace(0, 0.1, 16).tolist())
    # the rates reach the modules
    model = RapidNet('s', drop_path_rate=0.1)
    block = model.stages[3][-1]
    assert block.drop_path.drop_prob == pytest.approx(0.5 / 23)
    assert isinstance(model.stages[0][0].drop_path, nn.Identity)


def test_original_initialisation():
    torch.manual_seed(0)
    model = RapidNet('ti')
    conv = model.stages[2][-1].mixer.spatial.branches[0].conv
    assert torch.all(conv.bias == 0)
    fan_in = conv.weight[0].numel()
    assert conv.weight.std().item() == pytest.approx((2 / fan_in) ** 0.5, rel=0.05)
    layer_scale = model.stages[2][1].layer_scale.weight
    assert torch.all(layer_scale == 1e-5) and layer_scale.shape == (112, 1, 1)


def _train_step(model: nn.Module) -> None:
    model.train()
    out = model(torch.randn(2, 3, 64, 64))
    sum(o.mean() for o in out).backward()


@pytest.mark.parametrize('frozen_stages', [0, 3])
def test_frozen_stages_freeze_params_and_bn(frozen_stages):
    model = RapidNet('ti', frozen_stages=frozen_stages)
    frozen = [model.stem] + list(model.stages[:frozen_stages])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    _train_step(model)
    for i, module in enumerate([model.stem] + list(model.stages)):
        is_frozen = i <= frozen_stages
        for p in module.parameters():
            assert p.requires_grad is not is_frozen
            assert (p.grad is None) is is_frozen
        for m in module.modules():
            if isinstance(m, _BatchNorm):
                assert m.training is not is_frozen
    prefixes = ['stem.'] + [f'stages.{i}.' for i in range(frozen_stages)]
    for k, v in model.state_dict().items():
        if 'running' in k:
            same = torch.equal(before[k], v)
            assert same is any(k.startswith(p) for p in prefixes), k
    assert len(frozen) == frozen_stages + 1


def test_all_stages_frozen():
    model = RapidNet('ti', frozen_stages=4).train()
    assert not any(p.requires_grad for p in model.parameters())
    assert not any(m.training for m in model.modules() if isinstance(m, _BatchNorm))


def test_norm_eval_keeps_statistics():
    model = RapidNet('ti', norm_eval=True)
    before = copy.deepcopy(model.state_dict())
    _train_step(model)
    assert all(not m.training for m in model.modules() if isinstance(m, _BatchNorm))
    for k, v in model.state_dict().items():
        if 'running' in k or 'num_batches' in k:
            assert torch.equal(before[k], v), k
    # parameters still learn
    assert model.stem.conv1.conv.weight.grad is not None


ABLATIONS = [
    dict(),
    dict(mixer_type='sldc'),
    dict(mixer_type='conv3x3'),
    dict(mixer_type='pointwise'),
    dict(mixer_type='deformable'),
    dict(dilations=(3, 4)),
    dict(mixer_kernel_size=(5, 3)),
    dict(use_pos_enc=False),
    dict(ffn_type='plain'),
    dict(layer_scale_init_value=None),
    dict(mixer_type='pointwise', use_pos_enc=False, ffn_type='plain'),
]


def _assert_deploy_equal(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """Fold in float64, where the two forms must agree to ~1e-10 (a wrong fold is off by far
    more); float32 alone differs from float64 by ~1e-6 relative over the network's depth."""
    model = model.double().eval()
    x = x.double()
    with torch.no_grad():
        ref = model(x)
        model.switch_to_deploy()
        out = model(x)
    assert not any(m.training for m in model.modules())  # new convs take the eval mode
    for r, o in zip(ref, out):
        scale = r.abs().max()
        assert scale > 1e-3  # a real signal, not all zeros
        torch.testing.assert_close(o, r, rtol=0, atol=1e-10 * scale.item())
    return model.float()


@pytest.mark.parametrize('kwargs', ABLATIONS, ids=lambda k: ','.join(f'{a}={b}' for a, b in
                                                                     k.items()) or 'default')
def test_deploy_equals_training_form_ablations(kwargs):
    torch.manual_seed(0)
    model = randomize(RapidNet('ti', **kwargs))
    model = _assert_deploy_equal(model, torch.randn(2, 3, 64, 96))
    assert not any(isinstance(m, (_BatchNorm, LayerScale)) for m in model.modules())


@pytest.mark.parametrize('arch', ARCHS)
def test_deploy_equals_training_form_variants(arch):
    torch.manual_seed(0)
    model = randomize(RapidNet(arch))
    model = _assert_deploy_equal(model, torch.randn(1, 3, 96, 64))
    deployed = RapidNet(arch, deploy=True)
    # the folded checkpoint loads strictly into a model built in deploy form
    deployed.load_state_dict(model.state_dict(), strict=True)
    deployed.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(model(x), deployed(x)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_training_checkpoint_does_not_load_into_deploy_form():
    with pytest.raises(RuntimeError, match='reparam_conv'):
        RapidNet('ti', deploy=True).load_state_dict(RapidNet('ti').state_dict())


def test_classifier_eval_returns_mean_of_heads():
    torch.manual_seed(0)
    model = randomize(classifier('ti')).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out = model(x, mode='tensor')
        cls_score, dist_score = model.head.both_logits(model.extract_feat(x))
    assert out.shape == (2, 1000)
    torch.testing.assert_close(out, (cls_score + dist_score) / 2)
    assert not torch.allclose(cls_score, dist_score)
    model.train()
    train_out = model(x, mode='tensor')
    assert isinstance(train_out, tuple) and len(train_out) == 2


@pytest.mark.parametrize('kwargs, message', [
    (dict(arch='xl'), "unknown RapidNet arch 'xl'; choose one of \\['b', 'm', 's', 'ti'\\]"),
    (dict(arch=dict(ir_blocks=[1], mldc_blocks=[1])), 'missing \\[\'channels\'\\]'),
    (dict(arch=dict(ir_blocks=[1], mldc_blocks=[1], channels=(32, 64))), 'same, non-zero length'),
    (dict(arch=dict(ir_blocks=[1, 0], mldc_blocks=[1, 0], channels=(32, 64))),
     'stage 1: ir_blocks=0, mldc_blocks=0'),
    (dict(arch=dict(blocks=[(1, 0), (2, 1)], embed_dims=256, channels=(32, 64))),
     "^RapidNet arch keys were renamed: 'blocks' is now ir_blocks=\\(1, 2\\), "
     "mldc_blocks=\\(0, 1\\); 'embed_dims' is now head_width=256$"),
    (dict(arch=3), 'arch must be a str or a dict'),
    (dict(out_indices=(4, )), 'each index must be an int in \\[-4, 3\\]'),
    (dict(out_indices=(0, -4)), 'at most once'),
    (dict(out_indices='0'), 'must be an int or a sequence'),
    (dict(frozen_stages=5), 'frozen_stages must be an int in \\[-1, 4\\]'),
    (dict(frozen_stages=-2), 'frozen_stages'),
    (dict(drop_path_rate=1.5), 'drop_path_rate'),
    (dict(drop_path_schedule='cosine'), "unknown drop_path_schedule 'cosine'"),
    (dict(mixer_type='attention'), "unknown mixer_type 'attention'; choose one of"),
    (dict(mixer_type='mldc', dilations=(2, )), "needs at least two dilations"),
    (dict(mixer_type='sldc', dilations=(2, 3)), 'single branch'),
    (dict(mixer_type='conv3x3', dilations=(2, )), 'undilated'),
    (dict(mixer_type='pointwise', dilations=(2, 3)), 'leave dilations'),
    (dict(mixer_kernel_size=4), 'odd int'),
    (dict(mixer_kernel_size=(3, 5, 7)), 'one odd int per dilation'),
    (dict(dilations=(0, 2)), 'positive ints'),
    (dict(ffn_type='mlp'), "unknown ffn_type 'mlp'"),
    (dict(mixer_type='deformable', mixer_kernel_size=(3, 5)), 'same kernel size'),
])
def test_bad_arguments_raise_clear_errors(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        RapidNet(**kwargs)


def test_head_bad_arguments():
    with pytest.raises(ValueError, match='either arch or in_channels'):
        RapidNetClsHead(arch='ti', in_channels=224, embed_dims=512)
    with pytest.raises(ValueError, match='needs arch'):
        RapidNetClsHead(in_channels=224)
    with pytest.raises(ValueError, match='unknown RapidNet arch'):
        RapidNetClsHead(arch='tiny')
