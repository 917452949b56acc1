"""tools/test.py --show-dir on every config: the libraries' bases give each one a visualization
hook and a visualizer, and enable_test_visualization sets each library's own switches. (The
drawings themselves are checked by the det, seg and cls end-to-end tests.)"""
import os.path as osp

import pytest
from mmengine.config import Config

from rapidnet_mm.config import ConfigError
from rapidnet_mm.preflight import enable_test_visualization
from tool_helpers import ROOT, all_configs

pytestmark = pytest.mark.core

HOOKS = {'mmdet': 'DetVisualizationHook', 'mmseg': 'SegVisualizationHook',
         'mmpretrain': 'VisualizationHook'}


def test_every_config_can_draw_its_test_images(tmp_path):
    import rapidnet_mm  # noqa: F401
    show_dir = str(tmp_path / 'shown')
    scopes = set()
    for path in all_configs():
        cfg = Config.fromfile(osp.join(ROOT, path))
        scope = cfg.default_scope
        scopes.add(scope)
        assert enable_test_visualization(cfg, show_dir) == show_dir, path
        hook = cfg.default_hooks.visualization
        assert hook.type == HOOKS[scope], path
        if scope == 'mmdet':
            assert (hook.draw, hook.test_out_dir) == (True, show_dir), path
        elif scope == 'mmseg':
            assert (hook.draw, hook.interval, cfg.visualizer.save_dir) == (True, 1, show_dir)
        else:
            assert (hook.enable, hook.interval, hook.out_dir) == (True, 1, show_dir), path
    assert scopes == set(HOOKS)


def test_score_threshold_is_for_detection_and_the_hook_is_required(tmp_path):
    det = Config(dict(default_scope='mmdet', visualizer=dict(type='DetLocalVisualizer'),
                      default_hooks=dict(visualization=dict(type='DetVisualizationHook'))))
    enable_test_visualization(det, str(tmp_path), 0.05)
    assert det.default_hooks.visualization.score_thr == 0.05
    seg = Config(dict(default_scope='mmseg', visualizer=dict(type='SegLocalVisualizer'),
                      default_hooks=dict(visualization=dict(type='SegVisualizationHook'))))
    with pytest.raises(ConfigError, match='^--show-score-thr is for detection configs'):
        enable_test_visualization(seg, str(tmp_path), 0.05)
    with pytest.raises(ConfigError, match='^--show-dir needs default_hooks.visualization'):
        enable_test_visualization(Config(dict(default_scope='mmseg')), str(tmp_path))
