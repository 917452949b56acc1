"""tools/deployment/reparameterize.py: deploy checkpoints that load strictly into the deploy form and give
the training form's outputs, for every classifier variant and for detection/segmentation."""
import pytest
import torch
import torch.nn as nn
from deploy_helpers import config_path, load_tool, perturb, rel_diff, save_checkpoint

from rapidnet_mm import RapidNet, RapidNetClsHead
from rapidnet_mm.config import ConfigError, build_model, load_model_config
from rapidnet_mm.deploy import reparameterize_model

pytestmark = pytest.mark.core

SIZE = 64
tool = load_tool('deployment/reparameterize')


def logits(model, x):
    with torch.no_grad():
        return model.head(model.extract_feat(x))


@pytest.mark.slow
@pytest.mark.parametrize('arch', ['ti', 's', 'm', 'b'])
def test_classifier_round_trip(arch, tmp_path, capsys):
    cfg_path = config_path('cls', f'rapidnet_{arch}_in1k.py')
    model = perturb(build_model(load_model_config(cfg_path)))
    ckpt = save_checkpoint(model, tmp_path / 'train.pth')
    out = tmp_path / 'deploy.pth'
    assert tool.main([cfg_path, ckpt, str(out), '--input-size', str(SIZE), str(SIZE)]) == 0
    assert 'loads' in capsys.readouterr().out
    deploy_cfg = load_model_config(config_path('cls', 'deploy', f'rapidnet_{arch}_in1k_deploy.py'))
    deploy = build_model(deploy_cfg, str(out))  # strict load
    assert deploy.backbone.deploy
    assert not any(isinstance(m, nn.BatchNorm2d) for m in deploy.backbone.modules())
    x = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    ref, got = logits(model.eval(), x), logits(deploy, x)
    assert rel_diff(ref, got) < 1e-5
    # the checkpoint written is the deploy model's own state dict, tensor for tensor
    saved = torch.load(str(out), weights_only=True)
    assert saved['meta']['deploy'] is True and saved['meta']['reparameterized'] == ['backbone']
    assert saved['state_dict'].keys() == deploy.state_dict().keys()


@pytest.mark.slow
@pytest.mark.parametrize('config', ['det/maskrcnn_rapidnet_ti_coco.py',
                                    'seg/fpn_rapidnet_ti_ade20k.py'])
def test_dense_prediction_backbone_round_trip(config, tmp_path):
    cfg_path = config_path(*config.split('/'))
    model = perturb(build_model(load_model_config(cfg_path)))
    assert model.backbone.out_indices == (0, 1, 2, 3)
    ckpt = save_checkpoint(model, tmp_path / 'train.pth')
    out = tmp_path / 'deploy.pth'
    assert tool.main([cfg_path, ckpt, str(out), '--input-size', str(SIZE), str(SIZE)]) == 0
    deploy = build_model(load_model_config(cfg_path, {'model.backbone.deploy': True}), str(out))
    x = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref, got = model.eval().extract_feat(x), deploy.extract_feat(x)
    assert len(ref) == len(got) == 5 if config.startswith('det') else 4
    for r, g in zip(ref, got):
        assert r.shape == g.shape and rel_diff(r, g) < 1e-5


def test_deploy_checkpoint_refused_by_training_form(tmp_path):
    cfg_path = config_path('cls', 'rapidnet_ti_in1k.py')
    deploy = build_model(load_model_config(config_path('cls', 'deploy',
                                                       'rapidnet_ti_in1k_deploy.py')))
    ckpt = save_checkpoint(deploy, tmp_path / 'deploy.pth')
    with pytest.raises(ConfigError, match='deploy form'):
        build_model(load_model_config(cfg_path), ckpt)


def test_folded_cls_head_is_the_mean_of_both_logits():
    head = perturb(RapidNetClsHead(num_classes=10, in_channels=16, embed_dims=32)).eval()
    with torch.no_grad():
        nn.init.normal_(head.dist_head.weight)
        nn.init.normal_(head.dist_head.bias)
        feats = (torch.randn(3, 16, 5, 5), )
        ref = head(feats)
        cls_score, dist_score = head.both_logits(feats)
        head.reparameterize()
        got = head(feats)
    assert torch.allclose(ref, (cls_score + dist_score) / 2)
    assert torch.allclose(got, ref, atol=1e-5, rtol=1e-5)
    assert isinstance(head.head, nn.Linear) and head.head.out_features == 10
    assert head.dist_head is None and head.deploy
    assert not any(isinstance(m, nn.BatchNorm2d) for m in head.modules())
    with pytest.raises(RuntimeError, match='cannot be trained'):
        head.loss(feats, [])


def test_reparameterize_model_refuses_bad_input():
    with pytest.raises(ValueError, match='eval mode'):
        reparameterize_model(RapidNet('ti').train())
    with pytest.raises(ValueError, match='contains no RapidNet'):
        reparameterize_model(nn.Sequential(nn.Conv2d(3, 3, 1)).eval())


def test_tool_bad_checkpoint_path_exits_with_one_line(tmp_path, capsys):
    cfg_path = config_path('cls', 'rapidnet_ti_in1k.py')
    assert tool.main([cfg_path, str(tmp_path / 'missing.pth'), str(tmp_path / 'o.pth')]) == 2
    # the last line: mmengine's logger may complain about a stream an earlier test's capsys closed
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith('error: checkpoint not found')


def test_a_deploy_form_that_differs_writes_nothing(tmp_path, capsys, monkeypatch):
    import rapidnet_mm.deploy.reparameterize as reparameterize
    cfg_path = config_path('cls', 'rapidnet_ti_in1k.py')
    ckpt = save_checkpoint(perturb(build_model(load_model_config(cfg_path))), tmp_path / 't.pth')
    calls = []
    real = reparameterize.eval_outputs

    def off_in_deploy_form(model, x):  # the second call is the deploy form's
        calls.append(1)
        return [o + (len(calls) == 2) for o in real(model, x)]
    monkeypatch.setattr(reparameterize, 'eval_outputs', off_in_deploy_form)
    out = tmp_path / 'deploy.pth'
    assert tool.main([cfg_path, ckpt, str(out), '--input-size', '32', '32']) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith('error: the deploy form does not reproduce the training form')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['t.pth']  # no deploy.pth, no leftovers
