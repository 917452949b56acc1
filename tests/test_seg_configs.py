"""The four ADE20K Semantic FPN configs: the authors' recipe (docs/segmentation.md), one loss +
predict step on CPU, backbone initialisation from a converted classification checkpoint, BN
behaviour."""
import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.structures import PixelData
from mmpretrain.models import ImageClassifier
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from rapidnet_mm.models.arch import ARCH_SETTINGS
from original_layout import randomize_
from tool_helpers import ROOT

pytestmark = pytest.mark.core

ARCHS = ('ti', 's', 'm', 'b')


def load_config(arch: str) -> Config:
    return Config.fromfile(osp.join(ROOT, f'configs/seg/fpn_rapidnet_{arch}_ade20k.py'))


def build_model(cfg: Config, crop_size=None, norm=None):
    cfg.model.backbone.init_cfg = None
    if crop_size is not None:
        cfg.model.data_preprocessor.size = crop_size
    if norm is not None:
        cfg.model.backbone.norm_cfg = cfg.model.decode_head.norm_cfg = dict(type=norm)
    return MODELS.build(cfg.model)


def make_batch(height: int, width: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    img = torch.randint(0, 256, (3, height, width), generator=g, dtype=torch.uint8)
    seg = torch.randint(0, 150, (1, height, width), generator=g)
    meta = dict(img_shape=(height, width), ori_shape=(height, width))
    sample = SegDataSample(gt_sem_seg=PixelData(data=seg), metainfo=meta)
    return dict(inputs=[img], data_samples=[sample])


@pytest.mark.parametrize('arch', ARCHS)
def test_config_states_the_recipe(arch):
    cfg = load_config(arch)
    assert cfg.default_scope == 'mmseg'
    assert cfg.custom_imports == dict(imports=['rapidnet_mm'], allow_failed_imports=False)
    model = cfg.model
    assert model.backbone.type == 'RapidNet' and model.backbone.arch == arch
    assert model.backbone.out_indices == (0, 1, 2, 3)
    # the authors' ImageNet file as published (RapidNet_Ti.pth, ...), on the Hub
    published = ('https://huggingface.co/SLDGroup/RapidNet/resolve/main/'
                 f'RapidNet_{arch.capitalize()}.pth')
    assert model.backbone.init_cfg == dict(type='RapidNetPretrained', prefix='backbone.',
                                           checkpoint=published)
    assert (model.backbone.norm_eval, model.backbone.frozen_stages) == (False, -1)
    assert model.backbone.norm_cfg.type == model.decode_head.norm_cfg.type == 'SyncBN'
    assert (model.backbone.drop_path_rate, model.backbone.drop_path_schedule) == (0.1, 'original')
    assert model.pretrained is None
    assert model.neck.in_channels == list(ARCH_SETTINGS[arch]['channels'])
    assert (model.neck.type, model.neck.out_channels, model.neck.num_outs) == ('FPN', 256, 4)
    head = model.decode_head
    assert (head.type, head.channels, head.dropout_ratio, head.num_classes) == \
        ('FPNHead', 128, 0.1, 150)
    assert model.data_preprocessor.size == (512, 512)
    # optimisation: AdamW 2e-4 / 1e-4, poly 0.9 to 0 over 40k, total batch 4 x 8
    assert cfg.optim_wrapper.optimizer == dict(type='AdamW', lr=2e-4, betas=(0.9, 0.999),
                                               weight_decay=1e-4)
    assert cfg.param_scheduler == [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0,
                                        end=40000, by_epoch=False)]
    assert cfg.train_cfg.max_iters == 40000 and cfg.train_cfg.val_interval == 4000
    assert cfg.default_hooks.checkpoint.interval == 4000
    assert cfg.train_dataloader.batch_size * 8 == cfg.auto_scale_lr.base_batch_size == 32
    # data: ADE20K, 512 crops from (2048, 512) x 0.5-2.0, cat_max_ratio 0.75, photometric
    train = {t['type']: t for t in cfg.train_dataloader.dataset.pipeline}
    assert cfg.train_dataloader.dataset.type == 'ADE20KDataset'
    assert train['LoadAnnotations']['reduce_zero_label'] is True
    assert (train['RandomResize']['scale'], train['RandomResize']['ratio_range']) == \
        ((2048, 512), (0.5, 2.0))
    assert train['RandomCrop'] == dict(type='RandomCrop', crop_size=(512, 512),
                                       cat_max_ratio=0.75)
    assert 'PhotoMetricDistortion' in train and train['RandomFlip']['prob'] == 0.5
    # test: the aligned resize, ground truth loaded after it (kept at the original size)
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        types = [t['type'] for t in loader.dataset.pipeline]
        assert types == ['LoadImageFromFile', 'AlignResize', 'LoadAnnotations', 'PackSegInputs']
        assert loader.dataset.pipeline[1] == dict(type='AlignResize', scale=(2048, 512),
                                                  size_divisor=32)
    assert cfg.val_evaluator.iou_metrics == ['mIoU']


@pytest.mark.parametrize('arch,height,width', [
    ('ti', 77, 101),
    ('s', 77, 101),
    ('m', 77, 101),
    ('b', 77, 101),
    pytest.param('ti', 512, 512, marks=pytest.mark.slow),
    pytest.param('s', 512, 512, marks=pytest.mark.slow),
])
def test_loss_and_predict_step(arch, height, width):
    torch.manual_seed(0)
    model = build_model(load_config(arch), crop_size=(height, width))
    model.init_weights()
    model.train()
    data = model.data_preprocessor(make_batch(height, width), True)
    assert tuple(data['inputs'].shape) == (1, 3, height, width)
    losses = model.loss(**data)
    # conv_seg starts near zero (std 0.01): the loss is that of a uniform guess over 150 classes
    assert abs(losses['decode.loss_ce'].item() - math.log(150)) < 0.05
    losses['decode.loss_ce'].backward()
    assert model.backbone.stem.conv1.conv.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        sample = model.test_step(make_batch(height, width, seed=1))[0]
    assert tuple(sample.seg_logits.data.shape) == (150, height, width)
    pred = sample.pred_sem_seg.data
    assert tuple(pred.shape) == (1, height, width)
    assert torch.equal(pred[0], sample.seg_logits.data.argmax(0))


def test_backbone_initialises_from_a_converted_classification_checkpoint(tmp_path):
    """init_cfg=RapidNetPretrained(prefix='backbone.') takes every backbone tensor of an mmpretrain
    classifier checkpoint (what tools/model_converters/convert_official.py writes) and nothing else."""
    from mmengine.registry import DefaultScope
    # mmpretrain's scope whatever an earlier test left as the default (e.g. 'mmdet')
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        classifier = ImageClassifier(backbone=dict(type='RapidNet', arch='ti'),
                                     head=dict(type='RapidNetClsHead', arch='ti',
                                               num_classes=1000))
    randomize_(classifier, seed=4)
    path = tmp_path / 'rapidnet_ti_in1k.pth'
    torch.save(dict(state_dict=classifier.state_dict(), meta=dict(kind='classification')), path)
    cfg = load_config('ti')
    cfg.model.backbone.init_cfg.checkpoint = str(path)
    model = MODELS.build(cfg.model)
    model.init_weights()
    source = classifier.backbone.state_dict()
    loaded = model.backbone.state_dict()
    assert sorted(loaded) == sorted(source)
    for key, value in source.items():
        assert torch.equal(loaded[key], value), key


def test_syncbn_trains_as_batchnorm_on_cpu():
    """The configs' SyncBN computes exactly as BatchNorm outside a distributed run, with the
    statistics updating (norm_eval=False), so the same config serves one device."""
    sync = build_model(load_config('ti'), crop_size=(64, 64))
    plain = build_model(load_config('ti'), crop_size=(64, 64), norm='BN')
    assert isinstance(sync.backbone.stem.conv1.norm, torch.nn.SyncBatchNorm)
    assert type(plain.backbone.stem.conv1.norm) is torch.nn.BatchNorm2d
    plain.load_state_dict(sync.state_dict(), strict=True)
    before = sync.backbone.stages[3][-1].ffn.fc2.norm.running_mean.clone()
    results = []
    for model in (sync, plain):
        model.train()
        torch.manual_seed(0)  # same dropout and drop-path draws
        data = model.data_preprocessor(make_batch(64, 64), True)
        results.append(model.loss(**data)['decode.loss_ce'])
    torch.testing.assert_close(results[0], results[1])
    after = sync.backbone.stages[3][-1].ffn.fc2.norm.running_mean
    assert not torch.equal(after, before)
    torch.testing.assert_close(after, plain.backbone.stages[3][-1].ffn.fc2.norm.running_mean)


def test_missing_pretrained_weights_stop_training_with_the_fix(tmp_path, monkeypatch):
    from rapidnet_mm.config import ConfigError
    from rapidnet_mm.preflight import check_pretrained_checkpoints
    monkeypatch.chdir(tmp_path)
    cfg = load_config('m')
    cfg.model.backbone.init_cfg.checkpoint = 'checkpoints/RapidNet_M.pth'  # a local copy
    with pytest.raises(ConfigError) as err:
        check_pretrained_checkpoints(cfg)
    message = str(err.value)
    assert "'checkpoints/RapidNet_M.pth' (model.backbone.init_cfg.checkpoint)" in message
    assert "the authors' ImageNet file there as published" in message
    assert 'model.backbone.init_cfg=None' in message
    (tmp_path / 'checkpoints').mkdir()
    (tmp_path / 'checkpoints' / 'RapidNet_M.pth').write_bytes(b'')
    check_pretrained_checkpoints(cfg)  # present: no complaint
    cfg.model.backbone.init_cfg = None
    check_pretrained_checkpoints(cfg)
