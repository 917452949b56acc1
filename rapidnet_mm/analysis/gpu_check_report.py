"""The GPU check's report (:mod:`rapidnet_mm.analysis.gpu_check`) as markdown and JSON."""
import json
import os.path as osp

from .gpu_check_plan import Report
from .gpu_check_stages import BACKBONE_RTOL, ROI_ALIGN_ATOL, ROI_ALIGN_GRAD_ATOL


def fmt(value, digits: int = 1) -> str:
    if value is None:
        return 'n/a'
    return f'{value:.{digits}f}' if isinstance(value, float) else str(value)


def stage_detail(name: str, stage: dict) -> str:
    """The ``detail`` cell of a stage's row: its error, or its comparison figures."""
    result = stage.get('result') or {}
    if name == 'ops' and 'nms_equal' in result:
        return (f"RoIAlign fwd {result['roi_align_forward_max_abs_diff']:.1e} (tol "
                f"{ROI_ALIGN_ATOL:.0e}), grad {result['roi_align_grad_max_abs_diff']:.1e} "
                f"(tol {ROI_ALIGN_GRAD_ATOL:.0e}), NMS equal: {result['nms_equal']}")
    if name == 'backbone' and result.get('diffs'):
        return ('max rel. diff ' + ', '.join(f'{a}: {d:.1e}' for a, d in result['diffs'].items())
                + f' (tol {BACKBONE_RTOL:.0e})')
    return stage.get('error', '')


def markdown(report: Report) -> str:
    """The report as markdown: the machine, one row per stage, the training runs, inference."""
    data = report.data
    env = (data['stages'].get('env') or {}).get('result') or {}
    lines = [f"# GPU check ({data['mode']}), {data['date']}", '',
             f"Machine: {env.get('device', '?')}, {env.get('cpu_count', '?')} CPU cores; torch "
             f"{env.get('torch', '?')} (CUDA {env.get('torch_cuda', '?')}), mmcv "
             f"{env.get('mmcv', '?')} (ops CUDA {env.get('mmcv_ops_cuda', '?')}), Python "
             f"{env.get('python', '?')}. Result: {'passed' if report.passed else 'FAILED'}.", '',
             '| stage | status | seconds | detail |', '|---|---|---|---|']
    for name, s in data['stages'].items():
        lines.append(f"| {name} | {s['status']} | {fmt(s.get('elapsed_s'))} | "
                     f'{stage_detail(name, s)} |')
    train = [(n, s['result']) for n, s in data['stages'].items()
             if n.startswith('train_') and s.get('result', {}).get('losses')]
    if train:
        lines += ['', '| training | config | optimiser wrapper | norm | batch | input | iters | '
                  'loss first third -> last third | falling | images/s | peak memory MiB |',
                  '|---|---|---|---|---|---|---|---|---|---|---|']
        for name, r in train:
            lines.append(f"| {name} | {r['config']} | {r['optim_wrapper']} | {r['norm']} | "
                         f"{r['batch']} | {r['input']} | {r['iterations']} | "
                         f"{r['first_mean']:.3f} -> {r['last_mean']:.3f} | "
                         f"{'yes' if r['falling'] else 'no'} | "
                         f"{fmt(r['images_per_s'])} | {fmt(r['peak_memory_mib'])} |")
    infer = (data['stages'].get('infer') or {}).get('result') or {}
    if infer.get('rows'):
        lines += ['', f"Inference: batch {infer['batch']}, {infer['input']}, AMP "
                  f"({infer['amp']}), channels_last, eager.", '',
                  '| model | form | params M | images/s | peak activation MiB |',
                  '|---|---|---|---|---|']
        for r in infer['rows']:
            lines.append(f"| {r['model']} | {r['form']} | {r['params_m']:.2f} | "
                         f"{r['images_per_s']:.1f} | {fmt(r['peak_activation_mib'])} |")
    if data['substitutions']:
        lines += ['', 'Substitutions of the CPU rehearsal:', '']
        lines += [f'- {s}' for s in data['substitutions']]
    return '\n'.join(lines) + '\n'


def write_report(report: Report, out: str) -> str:
    """Write ``gpu_check.json`` and ``gpu_check.md`` into the folder ``out``; return the
    markdown."""
    with open(osp.join(out, 'gpu_check.json'), 'w') as f:
        json.dump(report.data, f, indent=1)
    text = markdown(report)
    with open(osp.join(out, 'gpu_check.md'), 'w') as f:
        f.write(text)
    return text
