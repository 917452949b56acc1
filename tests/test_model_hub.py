"""RapidNet by name in mmpretrain (rapidnet_mm/model_hub.py): ``list_models`` lists the ImageNet
configs, ``get_model(name, pretrained=True)`` and the inferencers load the authors' files from
the Hub (the stand-in of tests/hub_standin.py) converted in memory, entries without published
weights refuse ``pretrained=True`` in one line, registering is quiet and idempotent, and mmdet's
and mmseg's inferencers take a config with the authors' weights URL."""
import importlib
import os.path as osp

import numpy as np
import pytest
import torch
import yaml
from mmengine.config import Config

import rapidnet_mm  # noqa: F401  (registers the names)
from cls_helpers import ROOT, authors_checkpoint
from hub_standin import hub  # noqa: F401  (the fixture)
from original_layout import OriginalRapidNet, randomize_
from rapidnet_mm import model_hub
from rapidnet_mm.checkpoints import classification
from rapidnet_mm.checkpoints.hub import AUTHORS_FILES, AUTHORS_REPO, authors_url

pytestmark = pytest.mark.core

TI = 'rapidnet-ti_3rdparty_in1k'
ABLATION = 'rapidnet-ti-pointwise_16xb128_in1k'
X = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(5))


def cls_entries() -> dict:
    with open(osp.join(ROOT, 'configs', 'cls', 'metafile.yml')) as f:
        return {m['Name']: m for m in yaml.safe_load(f)['Models']}


def grace_hopper() -> np.ndarray:
    """matplotlib's sample photograph as the BGR array OpenMMLab's pipelines load."""
    from rapidnet_mm.deploy.photos import PHOTOS
    return np.ascontiguousarray(np.asarray(PHOTOS['grace_hopper']())[..., ::-1])


@pytest.fixture(scope='module')
def authors_ti():
    """An authors' RapidNet_Ti.pth (raw and EMA differ) and its EMA network."""
    raw = randomize_(OriginalRapidNet('ti'), seed=41).eval()
    ema = randomize_(OriginalRapidNet('ti'), seed=42).eval()
    return authors_checkpoint(raw, ema), ema


def test_list_models_names_every_imagenet_config():
    from mmpretrain import list_models
    from mmpretrain.apis import ModelHub
    names = list_models('rapidnet*')
    assert names == sorted(cls_entries()) and len(names) == 18
    assert [n for n in names if n.endswith('_3rdparty_in1k')] == [
        'rapidnet-b_3rdparty_in1k', 'rapidnet-m_3rdparty_in1k', 'rapidnet-s_3rdparty_in1k', TI]
    assert len([n for n in names if '-deploy_' in n]) == 4
    assert len([n for n in names if n.endswith('_16xb128_in1k')]) == 9
    for name, entry in cls_entries().items():
        meta = ModelHub.get(name)
        assert isinstance(meta.config, Config)
        assert osp.samefile(meta.config.filename, osp.join(ROOT, entry['Config']))


def test_registering_again_is_quiet_and_idempotent(capsys):
    from mmpretrain import list_models
    from mmpretrain.apis import ModelHub
    before = dict(ModelHub._models_dict)
    capsys.readouterr()
    importlib.reload(model_hub)  # new loader functions, the same module: still ours
    assert model_hub.register_model_hub() == sorted(cls_entries())
    for config in ('rapidnet_ti_in1k.py', 'rapidnet_s_in1k.py'):  # custom_imports of each
        Config.fromfile(osp.join(ROOT, 'configs', 'cls', config))
    assert capsys.readouterr() == ('', '')
    assert ModelHub._models_dict.keys() == before.keys()
    assert list_models('rapidnet*') == sorted(cls_entries())


def test_a_name_conflict_is_one_line(monkeypatch, tmp_path):
    from mmpretrain.apis import ModelHub
    other = tmp_path / 'other' / 'metafile.yml'
    other.parent.mkdir()
    other.write_text(f'Models:\n  - Name: {TI}\n    Config: other.py\n')
    monkeypatch.setattr(ModelHub, '_models_dict', {})
    ModelHub.register_model_index(str(other))
    with pytest.raises(model_hub.ModelNameConflict) as err:
        model_hub.register_model_hub()
    message = str(err.value)
    assert '\n' not in message
    assert f"a model named '{TI}'" in message and str(other) in message
    assert message.endswith(osp.join('configs', 'cls', 'metafile.yml'))


def test_get_model_loads_the_authors_ema_weights_from_the_hub(hub, authors_ti):
    from mmpretrain import get_model
    ckpt, ema = authors_ti
    hub.add(AUTHORS_REPO, AUTHORS_FILES['classification']['ti'], ckpt)
    model = get_model(TI, pretrained=True)
    converted = classification.convert(ckpt, weights='ema').state_dict
    state = model.state_dict()
    assert sorted(state) == sorted(converted)
    assert all(torch.equal(state[k], converted[k]) for k in converted)
    with torch.no_grad():
        ours, theirs = model(X, mode='tensor'), ema(X)
    assert (ours - theirs).abs().max() <= 1e-4 * theirs.abs().max()
    # built for inference: the teacher of the config is neither built nor downloaded
    assert model.teacher is None
    assert [p for _, p, _ in hub.requests if 'regnety' in p] == []
    assert hub.downloads('RapidNet_Ti.pth') == 1


@pytest.mark.slow
def test_inferencer_and_inference_model_by_name_on_a_photograph(hub, authors_ti):
    from mmpretrain import ImageClassificationInferencer, inference_model
    from mmpretrain.datasets import ImageNet
    ckpt, _ = authors_ti
    hub.add(AUTHORS_REPO, AUTHORS_FILES['classification']['ti'], ckpt)
    photo = grace_hopper()
    inferencer = ImageClassificationInferencer(TI, pretrained=True)
    # its network holds the Hub file's EMA weights, converted
    converted = classification.convert(ckpt, weights='ema').state_dict
    state = inferencer.model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in converted.items())
    (result, ) = inferencer(photo)
    assert result['pred_scores'].shape == (1000, )
    assert abs(float(result['pred_scores'].sum()) - 1) < 1e-4
    assert result['pred_class'] == ImageNet.METAINFO['classes'][result['pred_label']]
    by_name = inference_model(TI, photo)
    assert by_name['pred_label'] == result['pred_label']
    np.testing.assert_array_equal(by_name['pred_scores'], result['pred_scores'])
    assert hub.downloads('RapidNet_Ti.pth') == 1  # then read from the cache


def test_entries_without_published_weights_refuse_in_one_line(hub):
    from mmpretrain import get_model
    model = get_model(ABLATION)  # without weights: the config's model
    assert type(model.backbone).__name__ == 'RapidNet'
    for name in (ABLATION, 'rapidnet-s-deploy_in1k'):
        with pytest.raises(model_hub.UnpublishedWeightsError) as err:
            get_model(name, pretrained=True)
        assert '\n' not in str(err.value) and str(err.value).startswith(f'{name}: ')
    assert "get_model('rapidnet-s_3rdparty_in1k', pretrained=True)" in str(err.value)
    assert hub.requests == []


def test_the_deploy_form_is_the_authors_weights_folded_as_its_refusal_says(hub, authors_ti):
    from mmpretrain import get_model

    from rapidnet_mm.deploy.reparameterize import reparameterize_model
    hub.add(AUTHORS_REPO, AUTHORS_FILES['classification']['ti'], authors_ti[0])
    model = get_model(TI, pretrained=True)
    with torch.no_grad():
        expected = model(X, mode='tensor')
        reparameterize_model(model)
        folded = model(X, mode='tensor')
    deploy = get_model('rapidnet-ti-deploy_in1k')
    deploy.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        ours = deploy(X, mode='tensor')
    assert torch.equal(ours, folded)
    assert (folded - expected).abs().max() <= 1e-4 * expected.abs().max()


def test_metafiles_name_the_authors_files_as_weights():
    weights = {}
    for family in ('cls', 'det', 'seg'):
        with open(osp.join(ROOT, 'configs', family, 'metafile.yml')) as f:
            weights.update({m['Name']: m['Weights'] for m in yaml.safe_load(f)['Models']
                            if 'Weights' in m})
    expected = {f'rapidnet-{a}_3rdparty_in1k': authors_url('classification', a)
                for a in ('ti', 's', 'm', 'b')}
    expected.update({f'maskrcnn_rapidnet_{a}_coco': authors_url('detection', a) for a in 'mb'})
    expected.update({f'fpn_rapidnet_{a}_ade20k': authors_url('segmentation', a) for a in 'mb'})
    assert weights == expected
    assert all(url.startswith(model_hub.AUTHORS_PREFIX) for url in weights.values())


@pytest.mark.slow
def test_mmdet_and_mmseg_inferencers_take_a_config_and_the_authors_url(hub):
    """What docs/get_started.md shows: ``DetInferencer(model=CONFIG, weights=URL)`` and
    ``MMSegInferencer(model=CONFIG, weights=URL)`` with the authors' RapidNet-M files load them
    converted in memory."""
    from mmdet.apis import DetInferencer
    from mmseg.apis import MMSegInferencer

    from det_helpers import DET_CONFIGS, build_detector, load_cfg, synthesise_mmdet2_checkpoint
    from rapidnet_mm.checkpoints import detection, segmentation
    from test_seg_checkpoint import synthesise
    det_ckpt, _ = synthesise_mmdet2_checkpoint(build_detector(load_cfg(DET_CONFIGS['m'])),
                                               seed=3)
    seg_ckpt, _, _ = synthesise('m', seed=4)
    cases = (
        (DetInferencer, DET_CONFIGS['m'], 'detection', det_ckpt, detection),
        (MMSegInferencer, osp.join(ROOT, 'configs/seg/fpn_rapidnet_m_ade20k.py'),
         'segmentation', seg_ckpt, segmentation),
    )
    for inferencer_type, config, kind, ckpt, converter in cases:
        hub.add(AUTHORS_REPO, AUTHORS_FILES[kind]['m'], ckpt)
        inferencer = inferencer_type(model=config, weights=authors_url(kind, 'm'), device='cpu')
        state = inferencer.model.state_dict()
        converted = converter.convert(ckpt).state_dict
        assert sorted(state) == sorted(converted), config
        assert all(torch.equal(state[k], v) for k, v in converted.items()), config
        assert hub.downloads(AUTHORS_FILES[kind]['m']) == 1
    # the ImageNet weights of the configs' backbones are never fetched
    assert not [p for _, p, _ in hub.requests if p.endswith('/RapidNet_M.pth')]
