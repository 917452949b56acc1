"""Final metrics of finished runs next to the paper's figures, as model-zoo tables
(``tools/analysis_tools/collect_results.py``).

Reads what mmengine writes into a work dir (``tools/train.py`` / ``tools/test.py``):

- ``WORK_DIR/<timestamp>/vis_data/scalars.json`` of a training run: one JSON object per line;
  training lines carry ``lr``/``loss``, validation lines the metrics (``step`` is the epoch or
  iteration). The last validation line is the run's final evaluation.
- ``WORK_DIR/<timestamp>/<timestamp>.json`` of a test run: one JSON object with the metrics.

The newest evaluation (by timestamp; the test run wins over a validation of the same second) is
reported. Metrics: ``accuracy/top1`` (mmpretrain, %), ``coco/bbox_mAP`` and ``coco/segm_mAP``
(mmdet, 0-1, shown x100 as AP), ``mIoU`` (mmseg, %). The config is the ``*.py`` that mmengine
dumps into WORK_DIR (its name is the config's), else the work dir's name. The reference figure
comes from that config's entry in the metafiles (``model-index.yml``), which hold the paper's
figures where the paper states them (an entry's ``Metadata.Reference`` names another source,
e.g. the demo's figure measured in this repository).
"""
import glob
import json
import os
import os.path as osp
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import yaml

from ..errors import RapidNetError

TIMESTAMP = re.compile(r'^\d{8}_\d{6}$')

# mmengine metric key -> (metafile metric name, task, factor to the paper's unit)
METRICS: Dict[str, Tuple[str, str, float]] = {
    'accuracy/top1': ('Top 1 Accuracy', 'Image Classification', 1.0),
    'coco/bbox_mAP': ('box AP', 'Object Detection', 100.0),
    'coco/segm_mAP': ('mask AP', 'Instance Segmentation', 100.0),
    'mIoU': ('mIoU', 'Semantic Segmentation', 1.0),
}


class CollectError(RapidNetError, ValueError):
    """A work dir or metafile that cannot be read; reported as one ``error:`` line."""


@dataclass
class Evaluation:
    """The metrics of one evaluation, and where they were read."""
    timestamp: str
    kind: str  # 'test' or 'val'
    metrics: Dict[str, float]
    source: str


@dataclass
class Row:
    config: str
    task: str
    metric: str
    ours: float
    reference: Optional[float]
    source: str
    reference_source: str = 'paper'

    @property
    def difference(self) -> Optional[float]:
        return None if self.reference is None else self.ours - self.reference


def load_model_index(root: Optional[str] = None) -> Dict[str, dict]:
    """All model entries of ``root/model-index.yml`` (through its ``Import`` list), by config
    name (the config file's name without ``.py``, what a work dir is named after; an entry's
    ``Name`` may be mmpretrain's model name instead).

    Args:
        root: The folder holding model-index.yml; None: the one rapidnet_mm ships.

    Raises:
        CollectError: a missing file or a model listed twice.
    """
    if root is None:
        from ..config import shipped_file
        root = osp.dirname(shipped_file('model-index.yml'))
    index_path = osp.join(root, 'model-index.yml')
    if not osp.isfile(index_path):
        raise CollectError(f'{index_path} not found; run from a rapidnet_mm checkout')
    with open(index_path) as f:
        index = yaml.safe_load(f) or {}
    models: Dict[str, dict] = {}
    for rel in index.get('Import', []):
        path = osp.join(root, rel)
        if not osp.isfile(path):
            raise CollectError(f'model-index.yml imports {rel}, which does not exist')
        with open(path) as f:
            metafile = yaml.safe_load(f) or {}
        for model in metafile.get('Models', []):
            key = osp.splitext(osp.basename(model['Config']))[0]
            if key in models:
                raise CollectError(f'config {key} is listed twice (second in {rel})')
            models[key] = dict(model, Metafile=rel)
    return models


def reference_metrics(entry: Optional[dict]) -> Dict[str, float]:
    """``{metric name: value}`` of a metafile entry's Results (empty without an entry)."""
    values: Dict[str, float] = {}
    for result in (entry or {}).get('Results') or []:
        values.update({k: float(v) for k, v in result.get('Metrics', {}).items()})
    return values


def _known_metrics(record: dict) -> Dict[str, float]:
    return {k: float(v) for k, v in record.items()
            if k in METRICS and isinstance(v, (int, float))}


def find_evaluations(work_dir: str) -> List[Evaluation]:
    """Every evaluation with a known metric in ``work_dir``, oldest first."""
    found: List[Evaluation] = []
    for run in sorted(os.listdir(work_dir)):
        run_dir = osp.join(work_dir, run)
        if not (TIMESTAMP.match(run) and osp.isdir(run_dir)):
            continue
        scalars = osp.join(run_dir, 'vis_data', 'scalars.json')
        if osp.isfile(scalars):
            last = None
            with open(scalars) as f:
                for number, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        metrics = _known_metrics(json.loads(line))
                    except json.JSONDecodeError as err:
                        raise CollectError(f'{scalars}, line {number}: not JSON ({err}); is '
                                           'the run still writing it?') from None
                    if metrics:
                        last = metrics
            if last:
                found.append(Evaluation(run, 'val', last, scalars))
        test_json = osp.join(run_dir, f'{run}.json')
        if osp.isfile(test_json):
            with open(test_json) as f:
                try:
                    metrics = _known_metrics(json.load(f))
                except json.JSONDecodeError as err:
                    raise CollectError(f'{test_json}: not JSON ({err})') from None
            if metrics:
                found.append(Evaluation(run, 'test', metrics, test_json))
    return found


def config_name(work_dir: str) -> str:
    """The name of the config a work dir ran: the ``*.py`` mmengine dumps there (the newest if
    several), else the work dir's own name."""
    dumped = sorted(glob.glob(osp.join(work_dir, '*.py')), key=osp.getmtime)
    if dumped:
        return osp.splitext(osp.basename(dumped[-1]))[0]
    return osp.basename(osp.normpath(work_dir))


def collect(work_dir: str, models: Dict[str, dict]) -> List[Row]:
    """The rows of one work dir: each known metric of its newest evaluation.

    Raises:
        CollectError: the directory does not exist or holds no finished evaluation.
    """
    if not osp.isdir(work_dir):
        raise CollectError(f'work dir not found: {work_dir}')
    evaluations = find_evaluations(work_dir)
    if not evaluations:
        raise CollectError(
            f'{work_dir} holds no finished evaluation: looked for <timestamp>/vis_data/'
            f'scalars.json with validation metrics and <timestamp>/<timestamp>.json from '
            f'tools/test.py, with any of {", ".join(METRICS)}; evaluate with tools/test.py')
    # newest run; within one second a test run counts as newer than a validation
    final = max(evaluations, key=lambda e: (e.timestamp, e.kind == 'test'))
    name = config_name(work_dir)
    entry = models.get(name)
    reference = reference_metrics(entry)
    reference_source = ((entry or {}).get('Metadata') or {}).get('Reference', 'paper')
    source = osp.relpath(final.source)
    if source.startswith('..'):
        source = osp.abspath(final.source)
    rows = []
    for key, value in final.metrics.items():
        metric, task, factor = METRICS[key]
        rows.append(Row(name, task, metric, value * factor, reference.get(metric), source,
                        reference_source))
    return rows


def format_tables(rows: List[Row]) -> str:
    """One markdown table per task, in the order of METRICS."""
    out = []
    for task in dict.fromkeys(task for _, task, _ in METRICS.values()):
        task_rows = [r for r in rows if r.task == task]
        if not task_rows:
            continue
        out += [f'### {task}', '',
                '| config | metric | this run | reference | difference | read from |',
                '|---|---|---|---|---|---|']
        for r in task_rows:
            ref = ('not stated in the paper' if r.reference is None else
                   f'{r.reference:.1f} ({r.reference_source})')
            # round first, so that a difference of -0.04 shows as +0.0, not -0.0
            diff = '' if r.difference is None else f'{round(r.difference, 1) + 0.0:+.1f}'
            out.append(f'| {r.config} | {r.metric} | {r.ours:.1f} | {ref} | {diff} | '
                       f'`{r.source}` |')
        out.append('')
    return '\n'.join(out)
