"""Every classification config loads and builds; the four variants and every ablation hit the
paper's sizes with tools/analysis_tools/get_flops.py's counter."""
import functools
import glob
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

from cls_helpers import PYTHON, run_tool
from tool_helpers import ROOT

pytestmark = pytest.mark.core

CONFIGS = sorted(osp.relpath(p, ROOT)
                 for p in glob.glob(osp.join(ROOT, 'configs/cls/**/*.py'), recursive=True))


import rapidnet_mm.analysis.flops as get_flops  # noqa: E402  (what get_flops.py prints)


@functools.lru_cache(maxsize=None)  # each config is built once per session
def build(config: str):
    cfg = Config.fromfile(osp.join(ROOT, config))
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        return cfg, MODELS.build(cfg.model)


def test_every_config_is_found():
    names = {osp.basename(c) for c in CONFIGS}
    assert {f'rapidnet_{a}_in1k.py' for a in 'ti s m b'.split()} <= names
    assert {f'rapidnet_{a}_in1k_deploy.py' for a in 'ti s m b'.split()} <= names
    assert len([c for c in CONFIGS if '/ablation/' in c]) == 9


@pytest.mark.parametrize('config', CONFIGS)
def test_config_loads_and_builds(config):
    cfg, model = build(config)
    assert cfg.default_scope == 'mmpretrain'
    assert cfg.custom_imports == dict(imports=['rapidnet_mm'], allow_failed_imports=False)
    assert type(model).__name__ == 'RapidNetDistiller'
    assert model.teacher is None  # the teacher is never built for evaluation
    assert model.backbone.deploy == ('/deploy/' in config)


# The paper's variants: exact parameters (with dist_head), conv + linear MACs at 224x224, and the
# parameters of the stem and stages alone (what --backbone-only counts).
VARIANTS = {
    'ti': (6_627_840, 617_469_312, 5_485_616),
    's': (9_213_088, 896_620_352, 8_070_864),
    'm': (17_304_496, 1_596_878_720, 16_113_120),
    'b': (30_556_496, 3_354_368_064, 28_696_704),
}


@pytest.mark.parametrize('arch', sorted(VARIANTS))
def test_variant_params_and_macs_are_exact(arch):
    _, model = build(f'configs/cls/rapidnet_{arch}_in1k.py')
    params, macs, backbone_params = VARIANTS[arch]
    assert get_flops.count_params(model) == params
    assert get_flops.count_macs(model, (224, 224))['total'] == macs
    assert get_flops.count_params(model.backbone) == backbone_params


def test_deploy_config_has_the_same_macs():
    _, model = build('configs/cls/deploy/rapidnet_ti_in1k_deploy.py')
    assert get_flops.count_macs(model, (224, 224))['total'] == VARIANTS['ti'][1]


# Supplementary Tables 4-6: (config, figure the table gives, rounded to 0.1).
ABLATIONS = [
    ('rapidnet_ti_pointwise_in1k.py', 'GMACs', 0.4),  # Table 4
    ('rapidnet_ti_conv3x3_in1k.py', 'GMACs', 0.5),  # Table 4
    ('rapidnet_ti_no_kd_in1k.py', 'GMACs', 0.6),  # Table 4
    ('rapidnet_ti_sldc_in1k.py', 'GMACs', 0.5),  # Table 5
    ('rapidnet_ti_sldc_cpe_in1k.py', 'GMACs', 0.5),  # Table 5
    ('rapidnet_ti_sldc_cpe_lkffn_in1k.py', 'GMACs', 0.5),  # Table 5
    ('rapidnet_ti_deformable_in1k.py', 'params', 6.7),  # Table 6
    ('rapidnet_ti_dilation34_in1k.py', 'params', 6.6),  # Table 6
    ('rapidnet_ti_kernel5x5_in1k.py', 'params', 8.6),  # Table 6
]


@pytest.mark.parametrize('config,figure,value', ABLATIONS)
def test_ablation_matches_its_table(config, figure, value):
    _, model = build(f'configs/cls/ablation/{config}')
    if figure == 'params':
        measured = get_flops.count_params(model) / 1e6
    else:
        measured = get_flops.count_macs(model, (224, 224))['total'] / 1e9
    assert round(measured, 1) == value, (config, measured)


def test_ablations_differ_from_the_full_model_where_the_table_says():
    _, full = build('configs/cls/rapidnet_ti_in1k.py')
    _, no_kd = build('configs/cls/ablation/rapidnet_ti_no_kd_in1k.py')
    assert no_kd.head.dist_head is None and full.head.dist_head is not None
    _, k5 = build('configs/cls/ablation/rapidnet_ti_kernel5x5_in1k.py')
    branches = k5.backbone.stages[2][-1].mixer.spatial.branches
    assert [(b.conv.kernel_size, b.conv.dilation) for b in branches] == [((5, 5), (2, 2)),
                                                                         ((3, 3), (3, 3))]


def test_get_flops_command_line(tmp_path):
    result = run_tool([PYTHON, 'tools/analysis_tools/get_flops.py', 'configs/cls/rapidnet_ti_in1k.py',
                       '--shape', '224', '224'])
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'params: 6,627,840 (6.63 M)' in result.stdout
    assert 'MACs: 617,469,312 (0.617 G)' in result.stdout
    bad = run_tool([PYTHON, 'tools/analysis_tools/get_flops.py', str(tmp_path / 'missing.py')])
    assert bad.returncode != 0
    assert bad.stderr.strip().splitlines()[-1].startswith('error: config file not found')
