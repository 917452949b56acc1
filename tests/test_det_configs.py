"""The Mask R-CNN configs: recipe settings, a CPU loss + predict step for every variant, the
backbone's norm / freezing settings, and RapidNet dropped into mmdet's own Mask R-CNN config."""
import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from det_helpers import DET_CONFIGS, build_detector, load_cfg, synthetic_batch
from rapidnet_mm.models.arch import ARCH_SETTINGS

pytestmark = pytest.mark.core

# Fewer RoI samples than COCO's 512 keep the mask head cheap on CPU; nothing else changes.
CHEAP = {'model.train_cfg.rcnn.sampler.num': 64}


@pytest.mark.parametrize('arch', sorted(DET_CONFIGS))
def test_config_states_the_recipe(arch):
    cfg = load_cfg(DET_CONFIGS[arch])
    assert cfg.default_scope == 'mmdet'
    assert cfg.custom_imports == dict(imports=['rapidnet_mm'], allow_failed_imports=False)
    backbone = cfg.model.backbone
    assert backbone.type == 'RapidNet' and backbone.arch == arch
    assert set(backbone) >= {'type', 'arch', 'init_cfg'} and 'depth' not in backbone
    assert cfg.model.neck.in_channels == list(ARCH_SETTINGS[arch]['channels'])
    assert (cfg.model.neck.out_channels, cfg.model.neck.num_outs) == (256, 5)
    assert backbone.out_indices == (0, 1, 2, 3)
    assert (backbone.frozen_stages, backbone.norm_eval) == (-1, False)
    assert backbone.norm_cfg == dict(type='SyncBN', requires_grad=True)
    assert (backbone.drop_path_rate, backbone.drop_path_schedule) == (0.1, 'original')
    assert backbone.init_cfg == dict(type='RapidNetPretrained', prefix='backbone.',
                                     checkpoint='https://huggingface.co/SLDGroup/RapidNet/'
                                     f'resolve/main/RapidNet_{arch.capitalize()}.pth')
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.lr, optimizer.weight_decay) == ('AdamW', 2e-4, 0.05)
    assert 'momentum' not in optimizer and cfg.optim_wrapper.get('clip_grad') is None
    assert cfg.optim_wrapper.type == 'OptimWrapper'  # FP32
    warmup, steps = cfg.param_scheduler
    assert (warmup.type, warmup.start_factor, warmup.by_epoch, warmup.end) == (
        'LinearLR', 1e-6, False, 500)
    assert (steps.type, steps.milestones, steps.by_epoch) == ('MultiStepLR', [8, 11], True)
    assert cfg.train_cfg.max_epochs == 12
    assert cfg.train_dataloader.batch_size == 1
    assert cfg.auto_scale_lr == dict(enable=False, base_batch_size=8)
    resize = [t for t in cfg.train_pipeline if t.type == 'Resize'][0]
    assert (resize.scale, resize.keep_ratio) == ((1333, 800), True)
    assert [t.prob for t in cfg.train_pipeline if t.type == 'RandomFlip'] == [0.5]
    assert cfg.val_evaluator.metric == ['bbox', 'segm']


@pytest.mark.parametrize('arch', sorted(DET_CONFIGS))
def test_loss_and_predict_step_on_cpu(arch):
    torch.manual_seed(0)
    cfg = load_cfg(DET_CONFIGS[arch], CHEAP)
    model = build_detector(cfg)
    # Outside a Runner nothing reverts SyncBN; without a process group it computes plain BN.
    assert isinstance(model.backbone.stem.conv1.norm, torch.nn.SyncBatchNorm)
    batch = model.data_preprocessor(synthetic_batch(model, size=128), training=True)
    model.train()
    running_before = model.backbone.stem.conv1.norm.running_mean.clone()
    losses = model.loss(batch['inputs'], batch['data_samples'])
    assert {'loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox', 'loss_mask'} <= set(losses)
    total = sum(v.sum() if isinstance(v, torch.Tensor) else sum(v)
                for k, v in losses.items() if k.startswith('loss'))
    assert torch.isfinite(total) and total > 0
    if arch == 's':  # gradients reach the first backbone layer
        total.backward()
        assert model.backbone.stem.conv1.conv.weight.grad.abs().sum() > 0
    assert not torch.equal(model.backbone.stem.conv1.norm.running_mean, running_before)

    model.eval()
    batch = model.data_preprocessor(synthetic_batch(model, size=128), training=False)
    with torch.no_grad():
        results = model.predict(batch['inputs'], batch['data_samples'])
    pred = results[0].pred_instances
    n = len(pred)
    assert pred.bboxes.shape == (n, 4) and pred.scores.shape == (n, )
    assert pred.masks.shape == (n, 128, 128) and pred.masks.dtype == torch.bool
    assert n == 0 or int(pred.labels.max()) < 80


def test_default_trains_every_bn_and_every_stage():
    cfg = load_cfg(DET_CONFIGS['s'])
    model = build_detector(cfg).train()
    norms = [m for m in model.backbone.modules() if isinstance(m, _BatchNorm)]
    assert len(norms) > 100 and all(m.training for m in norms)
    assert all(p.requires_grad for p in model.backbone.parameters())


def test_frozen_stages_and_norm_eval_take_effect():
    cfg = load_cfg(DET_CONFIGS['s'], {'model.backbone.frozen_stages': 1,
                                      'model.backbone.norm_eval': True})
    model = build_detector(cfg).train()
    backbone = model.backbone
    frozen = list(backbone.stem.parameters()) + list(backbone.stages[0].parameters())
    trained = [p for s in backbone.stages[1:] for p in s.parameters()]
    assert frozen and not any(p.requires_grad for p in frozen)
    assert trained and all(p.requires_grad for p in trained)
    norms = [m for m in backbone.modules() if isinstance(m, _BatchNorm)]
    assert norms and not any(m.training for m in norms)  # SyncBN is a _BatchNorm too
    assert model.neck.training and model.roi_head.training


def test_rapidnet_in_mmdets_own_mask_rcnn_config(tmp_path):
    """The docs' example: custom_imports and a backbone dict on top of mmdet's config file."""
    path = tmp_path / 'my_maskrcnn.py'
    path.write_text(
        "_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'\n"
        "custom_imports = dict(imports=['rapidnet_mm'], allow_failed_imports=False)\n"
        "model = dict(\n"
        "    backbone=dict(_delete_=True, type='RapidNet', arch='m', out_indices=(0, 1, 2, 3)),\n"
        "    neck=dict(in_channels=[32, 64, 160, 320]))\n")
    cfg = load_cfg(str(path), CHEAP)
    model = build_detector(cfg)
    assert type(model.backbone).__name__ == 'RapidNet'
    assert model.backbone.channels == ARCH_SETTINGS['m']['channels']
    model.eval()
    batch = model.data_preprocessor(synthetic_batch(model, size=128), training=False)
    with torch.no_grad():
        feats = model.extract_feat(batch['inputs'])
    assert [tuple(f.shape) for f in feats] == [(1, 256, 32 // 2**i, 32 // 2**i) for i in range(5)]
