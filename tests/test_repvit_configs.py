"""RepViT (the paper's peer) in the same harness: every configs/repvit/ config builds through its
library's registry and runs, and what it builds is timm's own RepViT, not a copy."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.utils import import_modules_from_strings

from det_helpers import synthetic_batch
from tool_helpers import ROOT

CLS = {name: osp.join(ROOT, 'configs', 'repvit', f'repvit_{name}_in1k.py')
       for name in ('m0_9', 'm1_1')}
DET = osp.join(ROOT, 'configs', 'repvit', 'maskrcnn_repvit_m1_1_coco.py')
SEG = osp.join(ROOT, 'configs', 'repvit', 'fpn_repvit_m1_1_ade20k.py')


def build(path: str):
    """Load the config as the tools do (custom_imports honoured) and build its model."""
    cfg = Config.fromfile(path)
    import_modules_from_strings(**cfg.custom_imports)
    if cfg.default_scope == 'mmdet':
        from mmdet.registry import MODELS
    elif cfg.default_scope == 'mmseg':
        from mmseg.registry import MODELS
    else:
        from mmpretrain.registry import MODELS
    # in the config's scope for this build only: a scope left behind leaks into other tests
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        return cfg, MODELS.build(cfg.model)


@pytest.mark.core
@pytest.mark.parametrize('name', sorted(CLS))
def test_classifier_is_timms_repvit_with_its_eval_output(name):
    import timm
    cfg, model = build(CLS[name])
    torch.manual_seed(0)
    reference = timm.create_model(f'repvit_{name}', pretrained=False).eval()
    # a bare timm state dict loads strictly (TimmClassifier adds its 'model.' prefix), and the
    # checkpoint it writes is timm's layout again
    model.load_state_dict(reference.state_dict(), strict=True)
    assert set(model.state_dict()) == set(reference.state_dict())
    model.eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        out = model(x, mode='tensor')
        expected = reference(x)
        predictions = model(x, mode='predict')
    assert out.shape == (2, 1000)
    torch.testing.assert_close(out, expected)
    assert [int(p.pred_label) for p in predictions] == expected.argmax(1).tolist()
    # timm's evaluation settings for RepViT: shorter side floor(224 / 0.95), bicubic, crop 224
    resize = cfg.test_dataloader.dataset.pipeline[1]
    assert (resize.type, resize.scale, resize.interpolation) == ('ResizeEdge', 235, 'bicubic')
    assert reference.pretrained_cfg['crop_pct'] == 0.95
    assert cfg.test_dataloader.dataset.pipeline[2].crop_size == 224


@pytest.mark.core
def test_fpn_inputs_are_the_channels_timm_reports():
    import timm
    features = timm.create_model('repvit_m1_1', pretrained=False, features_only=True)
    channels = features.feature_info.channels()
    assert features.feature_info.reduction() == [4, 8, 16, 32]
    for path in (DET, SEG):
        assert Config.fromfile(path).model.neck.in_channels == channels


@pytest.mark.core
def test_mask_rcnn_loss_and_predict():
    torch.manual_seed(0)
    _, model = build(DET)
    assert type(model.backbone).__name__ == 'TIMMBackbone'
    batch = model.data_preprocessor(synthetic_batch(model, size=128), training=True)
    model.train()
    losses = model.loss(batch['inputs'], batch['data_samples'])
    total = sum(v.sum() if isinstance(v, torch.Tensor) else sum(v)
                for k, v in losses.items() if k.startswith('loss'))
    assert torch.isfinite(total) and total > 0
    total.backward()
    stem_grad = next(model.backbone.parameters()).grad
    assert stem_grad is not None and stem_grad.abs().sum() > 0
    model.eval()
    batch = model.data_preprocessor(synthetic_batch(model, size=128, seed=1), training=False)
    with torch.no_grad():
        pred = model.predict(batch['inputs'], batch['data_samples'])[0].pred_instances
    assert pred.bboxes.shape == (len(pred), 4)
    assert pred.masks.shape == (len(pred), 128, 128)


@pytest.mark.core
def test_semantic_fpn_loss_and_predict():
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    torch.manual_seed(0)
    _, model = build(SEG)
    model.data_preprocessor.size = (64, 96)
    g = torch.Generator().manual_seed(0)

    def batch():
        img = torch.randint(0, 256, (3, 64, 96), generator=g, dtype=torch.uint8)
        seg = PixelData(data=torch.randint(0, 150, (1, 64, 96), generator=g))
        meta = dict(img_shape=(64, 96), ori_shape=(64, 96))
        return dict(inputs=[img], data_samples=[SegDataSample(gt_sem_seg=seg, metainfo=meta)])

    model.train()
    data = model.data_preprocessor(batch(), True)
    loss = model.loss(**data)['decode.loss_ce']
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    assert next(model.backbone.parameters()).grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        sample = model.test_step(batch())[0]
    assert tuple(sample.pred_sem_seg.data.shape) == (1, 64, 96)


def load_through_tools(path: str):
    """Config and model exactly as tools/deployment/export.py and the benchmark load them."""
    from rapidnet_mm.config import build_model, load_model_config
    cfg = load_model_config(path)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        return cfg, build_model(cfg)


@pytest.mark.slow
def test_core_ml_export_accepts_a_repvit_classifier(tmp_path):
    from rapidnet_mm.deploy.formats import export_model
    from rapidnet_mm.deploy.normalization import input_normalization
    cfg, model = load_through_tools(CLS['m0_9'])
    out = str(tmp_path / 'repvit.mlpackage')
    result = export_model(model, 'coreml', 'classifier', (64, 64), input_normalization(cfg),
                          out, log=lambda _: None)
    assert osp.isdir(out)
    assert result.numerics.ok() and result.numerics.names == ['logits']
    # timm's fold ran: fewer parameters than the training form (BNs and branches merged)
    assert result.params < sum(p.numel() for p in model.parameters())
    assert result.report.format()  # the Linux report reads the package


def test_repvit_backbone_export_module_matches_pytorch():
    from rapidnet_mm.deploy.comparison import check_numerics
    from rapidnet_mm.deploy.export_module import output_names, prepare_export
    from rapidnet_mm.deploy.normalization import input_normalization
    cfg, model = load_through_tools(DET)
    norm = input_normalization(cfg)
    names = output_names(model, 'backbone')
    assert names == ['feat_s4', 'feat_s8', 'feat_s16', 'feat_s32']
    module = prepare_export(model, 'backbone', (64, 96), norm)
    numerics = check_numerics(model, 'backbone', module, module, norm, names, (64, 96))
    assert numerics.ok(), numerics.format()


@pytest.mark.core
def test_benchmark_times_a_repvit_config_in_both_forms():
    from rapidnet_mm.analysis.benchmark import relative_difference
    from rapidnet_mm.analysis.subjects import config_subject
    _, model = load_through_tools(CLS['m0_9'])
    subject = config_subject('RepViT-M0.9 (config)', model)
    assert subject.what == 'classifier'
    assert subject.params['deploy'] < subject.params['train']
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(subject.forms['train'](x), model(x, mode='tensor'))
        assert relative_difference(subject.forms['train'](x), subject.forms['deploy'](x)) < 1e-5


@pytest.mark.core
@pytest.mark.slow
def test_tools_test_evaluates_timm_weights_and_collect_results_reads_it(tmp_path):
    """tools/test.py on a tiny ImageNet-layout set with a timm state dict whose classifiers
    always answer class 2, then tools/analysis_tools/collect_results.py on the work dir it wrote."""
    import timm
    from cls_helpers import PYTHON, make_imagenet, run_tool
    make_imagenet(str(tmp_path / 'inet'), {'val': 2}, size=64)  # 4 classes x 2 images
    state = timm.create_model('repvit_m0_9', pretrained=False).state_dict()
    for key in state:
        if key.startswith('head.') and key.endswith('.l.weight'):
            state[key].zero_()
        elif key.startswith('head.') and key.endswith('.l.bias'):
            state[key].zero_()
            state[key][2] = 10.
    weights = str(tmp_path / 'repvit_m0_9_timm.pth')
    torch.save(state, weights)
    work_dir = str(tmp_path / 'repvit_m0_9_in1k')
    test = run_tool([PYTHON, 'tools/test.py', CLS['m0_9'], weights, '--work-dir', work_dir,
                     '--cfg-options', f'test_dataloader.dataset.data_root={tmp_path / "inet"}',
                     'test_dataloader.batch_size=4', 'test_dataloader.num_workers=0'])
    assert test.returncode == 0, test.stderr[-2000:]
    assert 'accuracy/top1: 25.0000' in test.stdout + test.stderr  # 2 of the 8 images are class 2
    collect = run_tool([PYTHON, 'tools/analysis_tools/collect_results.py', work_dir])
    assert collect.returncode == 0, collect.stderr
    assert '| repvit_m0_9_in1k | Top 1 Accuracy | 25.0 | not stated in the paper |' in \
        collect.stdout
