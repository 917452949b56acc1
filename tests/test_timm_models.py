"""timm: ``import rapidnet_mm`` registers rapidnet_{ti,s,m,b} and the authors' RapidNet_{Ti,S,M,B};
``pretrained=True`` downloads the authors' file through a stand-in for the Hugging Face Hub
(tests/hub_standin.py) and gives exactly our converted classifier; ``features_only`` and
``out_indices`` give the backbone's stages; ``timm.utils.reparameterize_model`` folds it; a timm
that cannot be imported leaves rapidnet_mm working."""
import os.path as osp
import sys

import pytest
import timm
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

import rapidnet_mm
from cls_helpers import authors_checkpoint
from original_layout import OriginalRapidNet, randomize_
from rapidnet_mm.checkpoints import classification
from rapidnet_mm.checkpoints.hub import authors_url
from rapidnet_mm.models import RapidNet
from rapidnet_mm.timm_models import TIMM_NAMES, RapidNetTimm, register_timm_models
from tool_helpers import ROOT

pytestmark = pytest.mark.core  # also run in the torch 2.1 stack

REPO = 'SLDGroup/RapidNet'


def test_names_are_registered_with_their_hub_files():
    assert rapidnet_mm.registered['timm'] == list(TIMM_NAMES) == [
        'rapidnet_ti', 'RapidNet_Ti', 'rapidnet_s', 'RapidNet_S', 'rapidnet_m', 'RapidNet_M',
        'rapidnet_b', 'RapidNet_B']
    assert timm.list_models('rapidnet_*') == ['rapidnet_b', 'rapidnet_m', 'rapidnet_s',
                                               'rapidnet_ti']
    for name, arch in TIMM_NAMES.items():
        cfg = timm.models.get_pretrained_cfg(name)
        filename = f'RapidNet_{name.split("_")[1].capitalize()}.pth'
        assert (cfg.hf_hub_id, cfg.hf_hub_filename) == (REPO, filename)
        assert cfg.url == authors_url('classification', arch)
        assert cfg.interpolation == 'bicubic' and cfg.crop_pct == pytest.approx(224 / 248)
    assert register_timm_models() == list(TIMM_NAMES)  # again: nothing re-registered


@pytest.mark.parametrize('name', ['rapidnet_ti', 'RapidNet_B'])
def test_the_same_network_in_a_thin_classifier(name):
    arch = TIMM_NAMES[name]
    model = timm.create_model(name)
    assert type(model) is RapidNetTimm and type(model.backbone) is RapidNet
    assert model.backbone.arch == RapidNet(arch=arch).arch
    ours = build_classifier(arch, None)
    assert model.state_dict().keys() == ours.state_dict().keys()
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in
                                                             ours.parameters())
    features = timm.create_model(name, features_only=True)
    with torch.no_grad():
        maps = features(torch.zeros(1, 3, 64, 64))
    assert [m.shape[1] for m in maps] == list(rapidnet_mm.ARCH_SETTINGS[arch]['channels'])
    assert [m.shape[-1] for m in maps] == [16, 8, 4, 2]


def test_rapidnet_mm_imports_when_timm_does_not(monkeypatch):
    monkeypatch.setitem(sys.modules, 'timm.models', None)  # import timm.models: ImportError
    with pytest.warns(UserWarning, match='timm could not be imported'):
        assert register_timm_models() == []


def build_classifier(arch: str, state: dict):
    """The mmpretrain classifier of configs/cls/rapidnet_{arch}_in1k.py, with ``state``."""
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(osp.join(ROOT, f'configs/cls/rapidnet_{arch}_in1k.py'))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
    if state is not None:
        model.load_state_dict(state, strict=True)
    return model.eval()


def test_timm_pretrained_is_our_converted_classifier(hub, tmp_path):
    from timm.utils import reparameterize_model
    raw = randomize_(OriginalRapidNet('s'), seed=41).eval()
    ema = randomize_(OriginalRapidNet('s'), seed=42).eval()
    ckpt = authors_checkpoint(raw, ema)
    data = hub.add(REPO, 'RapidNet_S.pth', ckpt)
    model = timm.create_model('rapidnet_s', pretrained=True).eval()
    assert hub.downloads('RapidNet_S.pth') == 1
    assert model.pretrained_cfg['hf_hub_id'] == REPO
    assert model.pretrained_cfg['url'] == authors_url('classification', 's')
    ours = build_classifier('s', classification.convert(ckpt).state_dict)  # EMA weights
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        logits = model(x)
        assert torch.equal(logits, ours(x, mode='tensor'))
        assert torch.equal(timm.create_model('RapidNet_S', pretrained=True).eval()(x), logits)
        torch.testing.assert_close(logits, ema(x), rtol=1e-3, atol=5e-3)  # the authors' net
        assert (logits - raw(x)).abs().max() > 0.1  # the EMA set, not the raw one
        folded = reparameterize_model(model)
        torch.testing.assert_close(folded(x), logits, rtol=1e-4,
                                   atol=1e-5 * float(logits.abs().max()))
    assert folded.head.dist_head is None
    assert isinstance(folded.backbone.stem.conv1.norm, torch.nn.Identity)
    assert model.head.dist_head is not None  # reparameterize_model folded a copy
    # features_only and out_indices: the backbone's own stage outputs, pretrained
    features = timm.create_model('rapidnet_s', pretrained=True, features_only=True,
                                 out_indices=(0, 2)).eval()
    assert features.feature_info.channels() == [32, 112]
    assert features.feature_info.reduction() == [4, 16]
    with torch.no_grad():
        stages = ours.backbone(x)
        got = features(x)
    assert len(got) == 2 and torch.equal(got[0], stages[0]) and torch.equal(got[1], stages[2])
    assert len(features.model.backbone.stages) == 3  # the stage after the last one taken: pruned
    # another class count keeps the pretrained backbone and a fresh classifier
    ten = timm.create_model('rapidnet_s', pretrained=True, num_classes=10).eval()
    assert ten.head.head.weight.shape == (10, 512)
    assert torch.equal(ten.backbone.stem.conv1.conv.weight, model.backbone.stem.conv1.conv.weight)
    assert hub.downloads('RapidNet_S.pth') == 1  # all from huggingface_hub's cache
    # a local copy instead of the Hub
    local = tmp_path / 'RapidNet_S.pth'
    local.write_bytes(data)
    hub.env.set(HF_ENDPOINT='http://127.0.0.1:9')  # nothing answers there
    copy = timm.create_model('rapidnet_s', pretrained=True,
                             pretrained_cfg_overlay=dict(file=str(local))).eval()
    with torch.no_grad():
        assert torch.equal(copy(x), logits)


