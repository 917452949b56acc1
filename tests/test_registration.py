"""RapidNet inside mmdet's, mmseg's and mmpretrain's own shipped configs, through custom_imports."""
import subprocess
import sys
import textwrap

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.utils import import_modules_from_strings

from rapidnet_mm import ARCH_SETTINGS, registered

pytestmark = pytest.mark.core

MASK_RCNN = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
SEM_FPN = 'mmseg::sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py'
RESNET_CLS = 'mmpretrain::resnet/resnet50_8xb32_in1k.py'


def write_config(tmp_path, base: str, model: str) -> Config:
    """A user's config: a library's own file, custom_imports and our backbone, nothing else."""
    path = tmp_path / 'user_config.py'
    path.write_text(textwrap.dedent(f"""\
        _base_ = '{base}'
        custom_imports = dict(imports=['rapidnet_mm'], allow_failed_imports=False)
        """) + textwrap.dedent(model))
    return Config.fromfile(str(path))


def build(cfg: Config):
    import_modules_from_strings(**cfg.custom_imports)
    if cfg.default_scope == 'mmdet':
        from mmdet.registry import MODELS
    elif cfg.default_scope == 'mmseg':
        from mmseg.registry import MODELS
    else:
        from mmpretrain.registry import MODELS
    # a scope for this build only: a process-wide default would leak into later tests
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        return MODELS.build(cfg.model)


def test_registered_everywhere():
    from mmdet.registry import MODELS as DET
    from mmpretrain.registry import MODELS as PRE
    from mmseg.registry import MODELS as SEG
    from rapidnet_mm import RapidNet
    for registry in (DET, SEG, PRE):
        assert registry.get('RapidNet') is RapidNet
    assert set(registered) == {'mmpretrain', 'mmdet', 'mmseg', 'timm'}


@pytest.mark.parametrize('arch', ['ti', 's'])
def test_mask_rcnn_from_mmdet_config(tmp_path, arch):
    from mmdet.testing import demo_mm_inputs
    channels = list(ARCH_SETTINGS[arch]['channels'])
    cfg = write_config(tmp_path, MASK_RCNN, f"""
        model = dict(
            backbone=dict(_delete_=True, type='RapidNet', arch='{arch}'),
            neck=dict(in_channels={channels}))
        """)
    model = build(cfg)
    assert type(model.backbone).__name__ == 'RapidNet'
    torch.manual_seed(0)
    packed = demo_mm_inputs(2, [[3, 128, 160], [3, 96, 128]], num_items=[3, 2], with_mask=True)
    model.train()
    data = model.data_preprocessor(packed, True)
    losses = model(**data, mode='loss')
    for key in ('loss_rpn_cls', 'loss_cls', 'loss_bbox', 'loss_mask'):
        assert key in losses
    total = sum(v if isinstance(v, torch.Tensor) else sum(v) for k, v in losses.items()
                if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    assert model.backbone.stem.conv1.conv.weight.grad is not None
    model.eval()
    with torch.no_grad():
        results = model(**model.data_preprocessor(packed, False), mode='predict')
    assert len(results) == 2
    assert 'masks' in results[0].pred_instances


def test_semantic_fpn_from_mmseg_config(tmp_path):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    cfg = write_config(tmp_path, SEM_FPN, f"""
        norm_cfg = dict(type='BN', requires_grad=True)
        model = dict(
            pretrained=None,
            backbone=dict(_delete_=True, type='RapidNet', arch='s'),
            neck=dict(in_channels={list(ARCH_SETTINGS['s']['channels'])}))
        """)
    model = build(cfg)
    torch.manual_seed(0)
    samples = []
    for _ in range(2):
        sample = SegDataSample(metainfo=dict(img_shape=(128, 128), ori_shape=(128, 128),
                                             pad_shape=(128, 128)))
        sample.gt_sem_seg = PixelData(data=torch.randint(0, 150, (1, 128, 128)))
        samples.append(sample)
    inputs = [torch.randint(0, 255, (3, 128, 128), dtype=torch.uint8) for _ in range(2)]
    data = model.data_preprocessor(dict(inputs=inputs, data_samples=samples), True)
    model.train()
    losses = model(**data, mode='loss')
    assert torch.isfinite(losses['decode.loss_ce'])
    losses['decode.loss_ce'].backward()
    model.eval()
    with torch.no_grad():
        results = model(**model.data_preprocessor(dict(inputs=inputs, data_samples=samples),
                                                  False), mode='predict')
    assert results[0].pred_sem_seg.data.shape == (1, 128, 128)


def test_image_classifier_from_mmpretrain_config(tmp_path):
    from mmpretrain.structures import DataSample
    cfg = write_config(tmp_path, RESNET_CLS, """
        model = dict(
            backbone=dict(_delete_=True, type='RapidNet', arch='ti', out_indices=(3, )),
            neck=None,
            head=dict(_delete_=True, type='RapidNetClsHead', arch='ti', num_classes=10,
                      distillation=False, loss=dict(type='CrossEntropyLoss')))
        """)
    model = build(cfg)
    inputs = torch.randint(0, 255, (2, 3, 64, 64), dtype=torch.uint8)
    samples = [DataSample().set_gt_label(i) for i in (3, 7)]
    data = model.data_preprocessor(dict(inputs=inputs, data_samples=samples), True)
    model.train()
    losses = model(**data, mode='loss')
    assert torch.isfinite(losses['loss']) and losses['loss'] > 0
    model.eval()
    with torch.no_grad():
        preds = model(**model.data_preprocessor(dict(inputs=inputs, data_samples=samples)),
                      mode='predict')
    assert preds[0].pred_score.shape == (10, )


def test_distillation_head_refuses_plain_training():
    from mmpretrain.models import ImageClassifier
    from mmpretrain.structures import DataSample
    model = ImageClassifier(backbone=dict(type='RapidNet', arch='ti'),
                            head=dict(type='RapidNetClsHead', arch='ti', num_classes=10))
    samples = [DataSample().set_gt_label(1)] * 2
    with pytest.raises(ValueError, match="RapidNetDistiller"):
        model(torch.randn(2, 3, 64, 64), samples, mode='loss')


def test_bad_argument_from_config_is_ours(tmp_path):
    cfg = write_config(tmp_path, MASK_RCNN, """
        model = dict(backbone=dict(_delete_=True, type='RapidNet', arch='huge'))
        """)
    with pytest.raises(ValueError, match="unknown RapidNet arch 'huge'; choose one of"):
        build(cfg)


def test_mmseg_base_pretrained_is_refused_clearly(tmp_path):
    cfg = write_config(tmp_path, SEM_FPN, """
        model = dict(backbone=dict(_delete_=True, type='RapidNet', arch='ti'))
        """)
    with pytest.raises(ValueError, match="set model.pretrained=None"):
        build(cfg)


def test_without_custom_imports_the_library_reports_unknown_type(tmp_path):
    """In a fresh interpreter that never imports rapidnet_mm, mmdet's own KeyError appears."""
    path = tmp_path / 'no_import.py'
    path.write_text(f"_base_ = '{MASK_RCNN}'\n"
                    "model = dict(backbone=dict(_delete_=True, type='RapidNet', arch='s'))\n")
    code = textwrap.dedent(f"""
        from mmengine.config import Config
        from mmengine.registry import init_default_scope
        from mmdet.registry import MODELS
        cfg = Config.fromfile('{path}')
        init_default_scope('mmdet')
        try:
            MODELS.build(cfg.model)
        except KeyError as e:
            print('KEYERROR', e)
        """)
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=300)
    assert 'KEYERROR' in out.stdout and 'RapidNet is not in the' in out.stdout, (
        out.stdout[-2000:] + out.stderr[-2000:])
