"""The GPU check: the shipped recipes train on CUDA, CUDA equals CPU, and what they cost.

On one CUDA device, in this order, each stage timed:

- env: versions, the GPU, and that mmcv's ops were compiled with torch's CUDA;
- ops: mmcv's CUDA RoIAlign (forward and input gradient) and NMS equal their CPU results;
- backbone: each eval-mode RapidNet (Ti/S/M/B) gives the same outputs on CUDA as on CPU
  (fp32, TF32 off; tolerance below);
- train_det, train_seg, train_cls: Mask R-CNN + RapidNet-S, Semantic FPN + RapidNet-S and the
  distilled RapidNet-Ti classifier train 30 iterations on synthetic data through
  ``torchrun --nproc_per_node=1 tools/train.py --launcher pytorch`` (SyncBN active where the
  config has it, the config's own optimiser wrapper, AMP included); losses must be finite and
  falling; training images/s and peak memory come from mmengine's own log;
- infer: images/s at batch 256 with AMP and channels_last for RapidNet Ti/S/M/B and the timm
  peers of the benchmark (:mod:`rapidnet_mm.analysis.benchmark`), and each one's peak
  activation memory.

:func:`run_check` writes ``gpu_check.json`` and ``gpu_check.md`` and prints the tables
(``tools/analysis_tools/gpu_check.py`` is its command line). The CPU rehearsal runs the same
code paths on CPU at tiny sizes; every substitution it makes is printed and recorded, and the
CUDA-vs-CPU comparisons are recorded as skipped.

This module runs the stages in order; the rest is beside it, one job each:
:mod:`.gpu_check_plan` (sizes, report, failure), :mod:`.gpu_check_stages` (the checks),
:mod:`.gpu_check_configs` (the recipes rewritten for a short run) and :mod:`.gpu_check_report`
(markdown and JSON).
"""
import os
import os.path as osp
import tempfile
import time
from typing import Callable, Dict, Optional, Sequence

from rapidnet_mm.config import ConfigError

from .gpu_check_configs import TRAIN_RUNS
from .gpu_check_plan import REHEARSAL, CheckFailed, Context, Plan, Report, log
from .gpu_check_report import write_report
from .gpu_check_stages import stage_backbone, stage_env, stage_infer, stage_ops, stage_train

STAGES = ('env', 'ops', 'backbone', 'train_det', 'train_seg', 'train_cls', 'infer')


class NoCudaError(ConfigError):
    """A plain run on a machine where torch sees no CUDA device."""


def run_stages(ctx: Context, stages: Sequence[str]) -> None:
    """Run ``stages`` in order, recording each one's status, result and time in the report; a
    stage that fails or crashes is recorded and the next one runs."""
    runners: Dict[str, Callable[[Context], dict]] = dict(
        env=stage_env, ops=stage_ops, backbone=stage_backbone, infer=stage_infer,
        **{name: (lambda c, n=name: stage_train(c, n)) for name in TRAIN_RUNS})
    started = time.perf_counter()
    for name in stages:
        entry: dict = {}
        ctx.report.stages[name] = entry
        if ctx.rehearsal and name in ('ops', 'backbone'):
            entry.update(status='skipped: no CUDA', elapsed_s=0.0)
            log(f'{name}: skipped: no CUDA (CUDA-vs-CPU comparison)')
            continue
        log(f'{name}: started ({time.perf_counter() - started:.0f} s into the check)')
        t0 = time.perf_counter()
        try:
            entry['result'] = runners[name](ctx)
            entry['status'] = 'passed'
        except CheckFailed as err:
            entry.update(status='failed', error=str(err), result=err.details)
        except Exception as err:  # noqa: BLE001  (any crash is recorded; the next stage runs)
            entry.update(status='failed', error=f'{type(err).__name__}: {err}')
        entry['elapsed_s'] = round(time.perf_counter() - t0, 1)
        log(f'{name}: {entry["status"]} in {entry["elapsed_s"]} s'
            + (f' ({entry["error"]})' if entry['status'] == 'failed' else ''))
    ctx.report.data['total_s'] = round(time.perf_counter() - started, 1)


def run_check(out: str, rehearse_on_cpu: bool = False, stages: Sequence[str] = STAGES,
              work_dir: Optional[str] = None) -> bool:
    """Run the check and write ``gpu_check.json`` and ``gpu_check.md`` to ``out``.

    Args:
        out: Folder for the two files (created).
        rehearse_on_cpu: Run the same code paths on CPU at tiny sizes (gloo, BN, fp32), with
            every substitution recorded and the CUDA-vs-CPU comparisons skipped.
        stages: The stages to run (names of STAGES); they run in STAGES' order.
        work_dir: Folder for data, configs and training logs (default: a new temporary one,
            kept).

    Returns:
        Whether every stage that ran passed.

    Raises:
        NoCudaError: a plain run where torch sees no CUDA device (before anything is written).
    """
    import torch
    if not rehearse_on_cpu and not torch.cuda.is_available():
        raise NoCudaError('no CUDA device here (torch.cuda.is_available() is False); run this '
                          'on a machine with a GPU and mmcv built with its CUDA ops '
                          '(docs/gpu.md), or rehearse the same code paths on CPU with '
                          '--rehearse-on-cpu')
    report = Report(rehearse_on_cpu)
    if rehearse_on_cpu:
        report.substitute('CPU instead of CUDA, tiny sizes and iterations; RoIAlign/NMS and '
                          'backbone CUDA-vs-CPU comparisons skipped')
    os.makedirs(out, exist_ok=True)
    work_dir = work_dir or tempfile.mkdtemp(prefix='gpu_check_')
    order = [s for s in STAGES if s in stages]
    log(f'mode {report.data["mode"]}, work dir {work_dir}, stages {order}')
    ctx = Context(rehearse_on_cpu, REHEARSAL if rehearse_on_cpu else Plan(), work_dir, report)
    run_stages(ctx, order)
    report.data['passed'] = report.passed
    print(write_report(report, out))
    log(f"wrote {osp.join(out, 'gpu_check.json')} and gpu_check.md; "
        f"{'passed' if report.passed else 'FAILED'} in {report.data['total_s']} s")
    return report.passed
