"""tools/analysis_tools/collect_results.py on synthetic work dirs laid out exactly as mmengine 0.10
writes them (checked against real runs of tools/train.py and tools/test.py)."""
import json
import os
import os.path as osp

import pytest
from tool_helpers import load_tool

import rapidnet_mm.analysis.results as results  # noqa: E402

tool = load_tool('analysis_tools/collect_results')


def train_run(work_dir, config, timestamp, val_lines, train_every=2):
    """A tools/train.py work dir: the dumped config, <ts>/<ts>.log and <ts>/vis_data/ with
    scalars.json (= <ts>.json there): training lines interleaved with validation lines."""
    run = osp.join(work_dir, timestamp)
    os.makedirs(osp.join(run, 'vis_data'), exist_ok=True)
    with open(osp.join(work_dir, f'{config}.py'), 'w') as f:
        f.write("default_scope = 'mmpretrain'\n")
    open(osp.join(run, f'{timestamp}.log'), 'w').close()
    lines = []
    for step, metrics in enumerate(val_lines, 1):
        for it in range(train_every):
            lines.append(dict(lr=1e-3, data_time=0.01, loss=2.5 - 0.1 * step, time=0.5,
                              epoch=step, iter=step * 10 + it, memory=100, step=step * 10 + it))
        lines.append(dict(metrics, data_time=0.01, time=0.2, step=step))
    text = ''.join(json.dumps(line) + '\n' for line in lines)
    for name in ('scalars.json', f'{timestamp}.json'):
        with open(osp.join(run, 'vis_data', name), 'w') as f:
            f.write(text)
    with open(osp.join(run, 'vis_data', 'config.py'), 'w') as f:
        f.write('')


def test_run(work_dir, config, timestamp, metrics):
    """A tools/test.py work dir entry: <ts>/<ts>.json holds one JSON object (no step)."""
    run = osp.join(work_dir, timestamp)
    os.makedirs(osp.join(run, 'vis_data'), exist_ok=True)
    with open(osp.join(work_dir, f'{config}.py'), 'w') as f:
        f.write('')
    with open(osp.join(run, f'{timestamp}.json'), 'w') as f:
        json.dump(dict(metrics, data_time=0.007, time=0.79), f)
    with open(osp.join(run, 'vis_data', 'config.py'), 'w') as f:
        f.write('')


test_run.__test__ = False  # a helper, not a test


def test_classification_takes_the_last_validation_and_compares_with_the_paper(tmp_path):
    wd = str(tmp_path / 'rapidnet_ti_in1k')
    train_run(wd, 'rapidnet_ti_in1k', '20250101_000000',
              [{'accuracy/top1': 70.0, 'accuracy/top5': 88.0},
               {'accuracy/top1': 75.9, 'accuracy/top5': 92.9}])
    rows = results.collect(wd, results.load_model_index())
    assert len(rows) == 1
    row = rows[0]
    assert (row.config, row.metric, row.ours, row.reference) == (
        'rapidnet_ti_in1k', 'Top 1 Accuracy', 75.9, 76.3)
    assert row.difference == pytest.approx(-0.4)
    table = results.format_tables(rows)
    assert '| rapidnet_ti_in1k | Top 1 Accuracy | 75.9 | 76.3 (paper) | -0.4 |' in table


def test_ablation_row_and_a_row_the_paper_does_not_state(tmp_path):
    models = results.load_model_index()
    a = str(tmp_path / 'a')
    train_run(a, 'rapidnet_ti_kernel5x5_in1k', '20250101_000000',
              [{'accuracy/top1': 76.5}])
    b = str(tmp_path / 'b')
    train_run(b, 'rapidnet_s_in1k', '20250101_000000', [{'accuracy/top1': 78.0}])
    (row_a,), (row_b,) = results.collect(a, models), results.collect(b, models)
    assert row_a.reference == 76.4 and row_a.difference == pytest.approx(0.1)
    assert row_b.reference is None and row_b.difference is None
    assert '| rapidnet_s_in1k | Top 1 Accuracy | 78.0 | not stated in the paper |  |' in \
        results.format_tables([row_b])


def test_a_newer_test_run_wins_and_coco_ap_is_shown_as_percent(tmp_path):
    wd = str(tmp_path / 'det')
    train_run(wd, 'maskrcnn_rapidnet_s_tiny_coco', '20250101_000000',
              [{'coco/bbox_mAP': 0.2, 'coco/bbox_mAP_50': 0.4, 'coco/segm_mAP': 0.25}])
    test_run(wd, 'maskrcnn_rapidnet_s_tiny_coco', '20250102_000000',
             {'coco/bbox_mAP': 0.337, 'coco/bbox_mAP_50': 0.599, 'coco/bbox_mAP_l': -1.0,
              'coco/segm_mAP': 0.466})
    rows = {r.metric: r for r in results.collect(wd, results.load_model_index())}
    assert set(rows) == {'box AP', 'mask AP'}
    assert rows['box AP'].ours == pytest.approx(33.7)
    assert rows['mask AP'].ours == pytest.approx(46.6)
    assert rows['box AP'].source.endswith('20250102_000000.json')
    # the demo's reference is the figure measured in this repository, so the difference is 0
    assert rows['box AP'].difference == pytest.approx(0.0)
    assert rows['box AP'].reference_source.startswith('measured here')
    assert '| 33.7 | 33.7 (measured here' in results.format_tables(list(rows.values()))


def test_an_older_test_run_loses_to_a_newer_training_run(tmp_path):
    wd = str(tmp_path / 'seg')
    test_run(wd, 'fpn_rapidnet_m_ade20k', '20250101_000000', {'mIoU': 30.0, 'aAcc': 70.0})
    train_run(wd, 'fpn_rapidnet_m_ade20k', '20250103_000000',
              [{'mIoU': 35.0, 'aAcc': 75.0, 'mAcc': 45.0}, {'mIoU': 38.25, 'aAcc': 76.0}])
    (row,) = results.collect(wd, results.load_model_index())
    assert (row.task, row.metric, row.ours) == ('Semantic Segmentation', 'mIoU', 38.25)
    assert row.source.endswith('scalars.json')


def test_command_line_tables_and_errors(tmp_path, capsys):
    good = str(tmp_path / 'rapidnet_ti_in1k')
    train_run(good, 'rapidnet_ti_in1k', '20250101_000000', [{'accuracy/top1': 76.3}])
    out = str(tmp_path / 'table.md')
    assert tool.main([good, '--out', out]) == 0
    printed = capsys.readouterr().out
    assert '### Image Classification' in printed and '| 76.3 | 76.3 (paper) | +0.0 |' in printed
    assert open(out).read().startswith('### Image Classification')

    assert tool.main([str(tmp_path / 'missing')]) == 2
    assert 'error: work dir not found' in capsys.readouterr().err
    empty = tmp_path / 'unfinished'
    train_run(str(empty), 'rapidnet_ti_in1k', '20250101_000000', [])  # training lines only
    assert tool.main([str(empty)]) == 2
    err = capsys.readouterr().err
    assert 'holds no finished evaluation' in err and 'tools/test.py' in err
    broken = tmp_path / 'broken'
    train_run(str(broken), 'rapidnet_ti_in1k', '20250101_000000', [{'accuracy/top1': 1.0}])
    with open(broken / '20250101_000000' / 'vis_data' / 'scalars.json', 'a') as f:
        f.write('{"accuracy/top1": 7')  # a line the run is still writing
    assert tool.main([str(broken)]) == 2
    assert 'not JSON' in capsys.readouterr().err
