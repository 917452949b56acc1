"""timm: ``import rapidnet_mm`` registers rapidnet_{ti,s,m,b} and the authors' RapidNet_{Ti,S,M,B};
``pretrained=True`` downloads the authors' file through a stand-in for the Hugging Face Hub
(tests/hub_standin.py) and gives exactly our converted classifier; ``features_only`` and
``out_indices`` give the backbone's stages; ``timm.utils.reparameterize_model`` folds it; a timm
that cannot be imported leaves rapidnet_mm working. The contract timm's own model tests check:
``global_pool=''`` gives the unpooled map, ``num_classes=0`` the pooled embedding, other pool
types go through timm's pooling layer or are refused, both forms script, and the pretrained cfg
holds the authors' evaluation."""
import io
import os.path as osp
import sys

import pytest
import timm
import torch
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from mmengine.config import Config
from mmengine.registry import DefaultScope

import rapidnet_mm
from cls_helpers import authors_checkpoint
from original_layout import OriginalRapidNet, randomize_
from rapidnet_mm.checkpoints import classification
from rapidnet_mm.checkpoints.hub import authors_url
from rapidnet_mm.models import RapidNet
from rapidnet_mm.timm_models import POOL_TYPES, TIMM_NAMES, RapidNetTimm, register_timm_models
from numeric_helpers import assert_close_to_scale
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
        assert cfg.interpolation == 'bicubic' and cfg.crop_pct == 0.9
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
        assert_close_to_scale(logits, ema(x))  # the authors' network
        assert (logits - raw(x)).abs().max() > 0.1 * logits.abs().max()  # EMA, not raw
        folded = reparameterize_model(model)
        assert_close_to_scale(folded(x), logits)
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




def test_pretrained_cfg_is_the_authors_evaluation():
    """Every field timm's model tests and resolve_data_config read, for every name."""
    for name, arch in TIMM_NAMES.items():
        cfg = timm.models.get_pretrained_cfg(name)
        assert (cfg.input_size, cfg.pool_size, cfg.num_classes) == ((3, 224, 224), (7, 7), 1000)
        assert (cfg.mean, cfg.std) == (IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)
        assert (cfg.crop_pct, cfg.interpolation) == (0.9, 'bicubic')  # the authors' --crop_pct
        assert cfg.first_conv == 'backbone.stem.conv1.conv'
        assert cfg.classifier == ('head.head', 'head.dist_head')
    model = timm.create_model('rapidnet_ti').eval()
    state = model.state_dict()
    assert state['backbone.stem.conv1.conv.weight'].shape == (16, 3, 3, 3)
    assert state['head.head.weight'].shape == state['head.dist_head.weight'].shape == (1000, 512)
    with torch.no_grad():  # pool_size: the last map at input_size
        assert model.forward_features(torch.zeros(1, 3, 224, 224)).shape == (1, 224, 7, 7)


def test_resolve_data_config_gives_the_authors_evaluation_transform():
    from timm.data import create_transform, resolve_data_config
    from torchvision.transforms import InterpolationMode
    config = resolve_data_config(model=timm.create_model('RapidNet_Ti'))
    assert config == dict(input_size=(3, 224, 224), interpolation='bicubic',
                          mean=IMAGENET_DEFAULT_MEAN, std=IMAGENET_DEFAULT_STD, crop_pct=0.9,
                          crop_mode='center')
    resize, crop = create_transform(**config).transforms[:2]
    # shorter side int(224 / 0.9) = 248 bicubic, centre crop 224, as configs/cls evaluate
    assert (resize.size, resize.interpolation) == (248, InterpolationMode.BICUBIC)
    assert crop.size == (224, 224)


def random_input() -> torch.Tensor:
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))


def backbone_and_embedding(model: RapidNetTimm) -> dict:
    """``model``'s state without its classifiers, for a model built with ``num_classes=0``."""
    return {k: v for k, v in model.state_dict().items() if not k.startswith(('head.head.',
                                                                             'head.dist_head.'))}


@pytest.mark.parametrize('how', ['create_model', 'reset_classifier'])
def test_no_global_pool_gives_the_unpooled_feature_map(how):
    if how == 'create_model':
        model = timm.create_model('rapidnet_ti', num_classes=0, global_pool='')
    else:
        model = timm.create_model('rapidnet_ti')
        model.reset_classifier(0, '')
    model.eval()
    x = random_input()
    with torch.no_grad():
        out, features = model(x), model.forward_features(x)
        pre_logits = model.forward_head(features, pre_logits=True)
    assert model.num_classes == 0 and model.num_features == 224
    assert out.shape == (2, 224, 2, 2)  # the last stage, stride 32
    assert torch.equal(out, features) and torch.equal(pre_logits, features)


def test_num_classes_0_gives_the_pooled_embedding_pre_logits_gives():
    model = timm.create_model('rapidnet_ti').eval()
    x = random_input()
    with torch.no_grad():
        features = model.forward_features(x)
        pre_logits = model.forward_head(features, pre_logits=True)
        # the mmpretrain head's own pooling and embedding: the default is the authors' network
        assert torch.equal(pre_logits, model.head.pre_logits((features, )))
        embedder = timm.create_model('rapidnet_ti', num_classes=0).eval()
        embedder.load_state_dict(backbone_and_embedding(model), strict=True)
        assert torch.equal(embedder(x), pre_logits)
        model.reset_classifier(0)
        assert torch.equal(model(x), pre_logits)
    assert pre_logits.shape == (2, model.head_hidden_size) == (2, 512)


@pytest.mark.parametrize('pool_type', ['max', 'avgmax'])
def test_other_pool_types_pool_before_the_embedding(pool_type):
    reference = timm.create_model('rapidnet_ti').eval()
    model = timm.create_model('rapidnet_ti', num_classes=0, global_pool=pool_type).eval()
    model.load_state_dict(backbone_and_embedding(reference), strict=True)
    x = random_input()
    with torch.no_grad():
        features = reference.forward_features(x)
        pooled = F.adaptive_max_pool2d(features, 1)
        if pool_type == 'avgmax':
            pooled = 0.5 * (F.adaptive_avg_pool2d(features, 1) + pooled)
        assert torch.equal(model(x), reference.head.embedding(pooled))
        reference.reset_classifier(10, pool_type)
        assert reference(x).shape == (2, 10)
    assert reference.global_pool.pool_type == pool_type and pool_type in POOL_TYPES


def test_pool_types_the_head_cannot_take_are_refused_in_one_line():
    with pytest.raises(ValueError, match=r"global_pool='catavgmax' is not supported: the emb"):
        timm.create_model('rapidnet_ti', global_pool='catavgmax')  # twice the channels
    with pytest.raises(ValueError, match=r"global_pool='' gives the unpooled feature map, wh.*"
                                         r'num_classes=0 too \(got 1000\)'):
        timm.create_model('rapidnet_ti', global_pool='')
    model = timm.create_model('rapidnet_ti', num_classes=0, global_pool='')
    for args in ((10, ), (0, 'token')):
        with pytest.raises(ValueError, match='global_pool='):
            model.reset_classifier(*args)
    # nothing changed by the refused calls
    assert model.num_classes == 0 and model.global_pool.pool_type == ''
    assert isinstance(model.head.head, torch.nn.Identity)


@pytest.mark.parametrize('form', ['training', 'folded', 'built deploy'])
def test_scripted_model_equals_eager(form):
    from timm.utils import reparameterize_model
    torch.manual_seed(0)
    with timm.layers.set_scriptable(True):
        model = randomize_(timm.create_model('rapidnet_ti'), seed=5).eval()
    x = random_input()
    with torch.no_grad():
        logits = model(x)
        if form == 'folded':  # backbone and head
            model = reparameterize_model(model)
        elif form == 'built deploy':  # deploy=True builds the folded backbone
            model.backbone.reparameterize()
            folded_backbone = model.state_dict()
            model = timm.create_model('rapidnet_ti', deploy=True).eval()
            model.load_state_dict(folded_backbone, strict=True)
        scripted = torch.jit.script(model)
        buffer = io.BytesIO()
        torch.jit.save(scripted, buffer)  # self-contained: no Python left in it
        buffer.seek(0)
        loaded = torch.jit.load(buffer)
        assert_close_to_scale(scripted(x), model(x))
        assert_close_to_scale(loaded(x), logits)  # the folded forms too: the training logits
    if form == 'built deploy':  # a training checkpoint still does not load into it
        with pytest.raises(RuntimeError, match='reparam_conv'):
            model.load_state_dict(timm.create_model('rapidnet_ti').state_dict())


@pytest.mark.parametrize('ablation', [dict(mixer_type='deformable'),
                                      dict(mixer_type='pointwise', use_pos_enc=False,
                                           ffn_type='plain', layer_scale_init_value=None)],
                         ids=['deformable', 'pointwise-plain'])
def test_ablations_script_in_both_forms(ablation):
    from timm.utils import reparameterize_model
    model = randomize_(timm.create_model('rapidnet_ti', **ablation), seed=6).eval()
    x = random_input()
    with torch.no_grad():
        for form in (model, reparameterize_model(model)):
            assert_close_to_scale(torch.jit.script(form)(x), form(x))
