"""``init_cfg=dict(type='RapidNetPretrained', ...)`` of the detection and segmentation configs:
the authors' ImageNet file as published (synthesised in its layout), converted in memory, gives
the same backbone as the converter path; converted files still load; foreign files are refused
with their keys listed; a missing file stops tools/train.py before anything is built."""
import pytest
import torch
from mmengine.registry import DefaultScope

from cls_helpers import authors_checkpoint
from det_helpers import DET_CONFIGS, build_detector, load_cfg
from numeric_helpers import assert_close_to_scale
from original_layout import OriginalRapidNet, randomize_
from rapidnet_mm.checkpoints import CheckpointLayoutError, classification
from rapidnet_mm.models import RapidNet

pytestmark = pytest.mark.core

X = torch.randn(1, 3, 96, 128, generator=torch.Generator().manual_seed(5))


@pytest.fixture(scope='module')
def authors_file(tmp_path_factory):
    """An authors' RapidNet_S.pth (raw and EMA sets differ) and the two original networks."""
    raw = randomize_(OriginalRapidNet('s'), seed=11).eval()
    ema = randomize_(OriginalRapidNet('s'), seed=12).eval()
    path = tmp_path_factory.mktemp('weights') / 'RapidNet_S.pth'
    torch.save(authors_checkpoint(raw, ema), path)
    return path, raw, ema


def detector_backbone(checkpoint, **init_options):
    """The RapidNet-S Mask R-CNN config's backbone, initialised through its init_cfg."""
    options = {'model.backbone.init_cfg.checkpoint': str(checkpoint)}
    options.update({f'model.backbone.init_cfg.{k}': v for k, v in init_options.items()})
    model = build_detector(load_cfg(DET_CONFIGS['s'], options), pretrained=True)
    assert model.backbone.init_cfg['type'] == 'RapidNetPretrained'
    with DefaultScope.overwrite_default_scope('mmdet'):
        model.init_weights()
    return model.backbone.eval()


def converter_backbone(ckpt, weights='ema'):
    """A RapidNet-S loaded with what tools/model_converters/convert_official.py would write."""
    state = classification.convert(ckpt, weights=weights).state_dict
    backbone = RapidNet(arch='s')
    backbone.load_state_dict({k[len('backbone.'):]: v for k, v in state.items()
                              if k.startswith('backbone.')}, strict=True)
    return backbone.eval()


def features(backbone):
    with torch.no_grad():
        return backbone(X)


def test_authors_file_gives_the_converter_paths_backbone(authors_file):
    path, raw, ema = authors_file
    ckpt = torch.load(path, weights_only=False)
    loaded = detector_backbone(path)
    reference = converter_backbone(ckpt)
    assert loaded.state_dict().keys() == reference.state_dict().keys()
    for key, value in reference.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    for got, expected in zip(features(loaded), features(reference)):
        assert torch.equal(got, expected)
    # and those are the authors' EMA network's stage outputs (independent implementation)
    with torch.no_grad():
        original = ema.stage_outputs(X)
    for got, expected in zip(features(loaded), original):
        assert_close_to_scale(got, expected)


def test_raw_weights_on_request(authors_file):
    path, raw, ema = authors_file
    ckpt = torch.load(path, weights_only=False)
    loaded = detector_backbone(path, weights='raw')
    for got, expected in zip(features(loaded), features(converter_backbone(ckpt, 'raw'))):
        assert torch.equal(got, expected)


def test_converted_file_still_loads(authors_file, tmp_path):
    path, raw, ema = authors_file
    conversion = classification.convert(torch.load(path, weights_only=False))
    converted = tmp_path / 'rapidnet_s_in1k.pth'
    torch.save({'state_dict': conversion.state_dict, 'meta': {'arch': 's'}}, converted)
    loaded = detector_backbone(converted)
    for got, expected in zip(features(loaded), features(detector_backbone(path))):
        assert torch.equal(got, expected)


def test_foreign_and_unreadable_files_are_refused(tmp_path):
    foreign = tmp_path / 'resnet18.pth'
    torch.save({'state_dict': {'conv1.weight': torch.zeros(64, 3, 7, 7),
                               'fc.weight': torch.zeros(1000, 512)}}, foreign)
    with pytest.raises(CheckpointLayoutError) as err:
        detector_backbone(foreign)
    message = str(err.value)
    assert "holds no 'backbone.' tensors" in message
    assert 'conv1.weight' in message and 'fc.weight' in message

    # our names, but another variant: the mismatching tensors are listed
    ti = randomize_(OriginalRapidNet('ti'), seed=3)
    other = tmp_path / 'RapidNet_Ti.pth'
    torch.save(authors_checkpoint(ti, ti), other)
    with pytest.raises(CheckpointLayoutError, match=r'lacks tensors .*\n  stages\.0\.2\.'):
        detector_backbone(other)

    garbage = tmp_path / 'garbage.pth'
    garbage.write_bytes(b'not a checkpoint')
    with pytest.raises(CheckpointLayoutError, match='cannot read .*garbage.pth'):
        detector_backbone(garbage)


def test_missing_file_stops_before_building(tmp_path, monkeypatch):
    from rapidnet_mm.config import ConfigError
    from rapidnet_mm.preflight import check_pretrained_checkpoints
    monkeypatch.chdir(tmp_path)
    cfg = load_cfg(DET_CONFIGS['s'], {'model.backbone.init_cfg.checkpoint':
                                      'checkpoints/RapidNet_S.pth'})  # a local copy
    with pytest.raises(ConfigError) as err:
        check_pretrained_checkpoints(cfg)
    message = str(err.value)
    assert "'checkpoints/RapidNet_S.pth' (model.backbone.init_cfg.checkpoint)" in message
    assert "put the authors' ImageNet file there as published" in message  # no conversion step
