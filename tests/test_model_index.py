"""model-index.yml and the metafiles: OpenMMLab's schema, one entry per config and one config per
entry, and measured figures that match what the tools measure."""
import glob
import os.path as osp
import re

import pytest
import yaml
from mmengine.registry import DefaultScope
from tool_helpers import ROOT, all_configs

import rapidnet_mm.analysis.results as collect_results

pytestmark = pytest.mark.core


def metafiles():
    with open(osp.join(ROOT, 'model-index.yml')) as f:
        return yaml.safe_load(f)['Import']


def test_every_config_has_an_entry_and_every_entry_a_config():
    models = collect_results.load_model_index(ROOT)
    listed = sorted(m['Config'] for m in models.values())
    assert len(listed) == len(set(listed)), 'a config is listed twice'
    assert listed == all_configs()
    for config_name, model in models.items():
        # collect_results finds an entry by its config file's name
        assert config_name == osp.splitext(osp.basename(model['Config']))[0]
        if model['Metafile'] == 'configs/cls/metafile.yml':
            # mmpretrain's convention (the names of mmpretrain.list_models): model-variant,
            # then the training (GPUs x batch) or '3rdparty' (the authors' weights), the data
            assert re.fullmatch(r'rapidnet-(ti|s|m|b)(-[a-z0-9]+)*(_3rdparty|_\d+xb\d+)?_'
                                r'(in1k|digits)', model['Name']), model['Name']
            assert model['Name'].endswith('_3rdparty_in1k') == ('Weights' in model)
        else:  # mmdet's and mmseg's entries keep the config's name
            assert model['Name'] == config_name


def test_every_metafile_is_imported_and_follows_the_schema():
    imported = metafiles()
    on_disk = sorted(osp.relpath(p, ROOT) for p in
                     glob.glob(osp.join(ROOT, 'configs', '**', 'metafile.yml'), recursive=True))
    assert sorted(imported) == on_disk
    for rel in imported:
        with open(osp.join(ROOT, rel)) as f:
            meta = yaml.safe_load(f)
        collections = {c['Name']: c for c in meta['Collections']}
        for c in collections.values():
            assert osp.isfile(osp.join(ROOT, c['README'])), c['README']
            assert c['Paper']['Title']
        for m in meta['Models']:
            assert m['In Collection'] in collections, (rel, m['Name'])
            assert isinstance(m['Metadata']['FLOPs'], int) and m['Metadata']['FLOPs'] > 0
            assert isinstance(m['Metadata']['Parameters'], int)
            for result in m.get('Results', []):
                assert {'Task', 'Dataset', 'Metrics'} <= set(result)
                assert result['Task'] in {t for _, t, _ in collect_results.METRICS.values()}
                assert set(result['Metrics']) <= {n for n, _, _ in
                                                  collect_results.METRICS.values()}


def test_the_papers_figures_are_the_stated_ones():
    models = collect_results.load_model_index(ROOT)
    top1 = {name: collect_results.reference_metrics(m).get('Top 1 Accuracy')
            for name, m in models.items()}
    # abstract and supplementary Tables 4-6 (../shared/seeds/001_*); nothing else is claimed
    assert {k: v for k, v in top1.items() if v is not None} == {
        'rapidnet_ti_in1k': 76.3, 'rapidnet_ti_in1k_deploy': 76.3,
        'rapidnet_ti_pointwise_in1k': 75.2, 'rapidnet_ti_conv3x3_in1k': 75.7,
        'rapidnet_ti_no_kd_in1k': 75.1, 'rapidnet_ti_sldc_in1k': 75.8,
        'rapidnet_ti_sldc_cpe_in1k': 75.9, 'rapidnet_ti_sldc_cpe_lkffn_in1k': 76.0,
        'rapidnet_ti_deformable_in1k': 76.0, 'rapidnet_ti_dilation34_in1k': 75.9,
        'rapidnet_ti_kernel5x5_in1k': 76.4}
    for name, model in models.items():
        if name.startswith('repvit') or 'repvit' in name:
            assert not model.get('Results'), 'no RepViT figure could be checked here'


@pytest.mark.parametrize('name', ['rapidnet_ti_in1k', 'rapidnet_ti_kernel5x5_in1k',
                                  'repvit_m0_9_in1k'])
def test_measured_figures_match_get_flops(name):
    from rapidnet_mm.analysis import flops as get_flops
    from rapidnet_mm.config import build_model, load_model_config
    model_entry = collect_results.load_model_index(ROOT)[name]
    # get_flops sets the config's default scope; keep it from leaking into other tests
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = build_model(load_model_config(osp.join(ROOT, model_entry['Config'])))
    assert get_flops.count_params(model) == model_entry['Metadata']['Parameters']
    assert get_flops.count_macs(model, (224, 224))['total'] == model_entry['Metadata']['FLOPs']


def test_model_zoo_page_lists_every_config():
    with open(osp.join(ROOT, 'docs', 'model_zoo.md')) as f:
        text = f.read()
    missing = [c for c in all_configs() if c not in text]
    assert not missing


def test_the_installed_package_ships_the_index_for_mim():
    """`mim search` reads <package>/.mim/model-index.yml; setup.py links (editable install) or
    copies it there with configs/ and docs/, so every Config and README path resolves."""
    import rapidnet_mm
    mim = osp.join(osp.dirname(rapidnet_mm.__file__), '.mim')
    models = collect_results.load_model_index(mim)
    assert len(models) == len(all_configs())
    for model in models.values():
        assert osp.isfile(osp.join(mim, model['Config']))
    for rel in metafiles():
        with open(osp.join(mim, rel)) as f:
            for collection in yaml.safe_load(f)['Collections']:
                assert osp.isfile(osp.join(mim, collection['README']))
