"""What a benchmark run prints: the markdown table, the facts in words, and the accuracy against
latency chart (``tools/analysis_tools/benchmark.py``)."""
from typing import Dict, List

from ..deploy.cpu_features import cpu_features
from ..timing import Timing
from .benchmark import (GEMM_SIZE, INT8, Settings, Subject, entry_labels, fastest_exact, label,
                        peak_macs)


def format_table(subjects: List[Subject], batch: int, settings: Settings, forms: List[str],
                 gemm: Timing) -> str:
    """The markdown table of a :func:`~rapidnet_mm.analysis.benchmark.measure` run, with a
    footnote saying how it was measured."""
    head = ['model', 'what', 'form', 'params (M)', 'latency b1 ms, median [IQR]']
    if batch:
        head.append(f'throughput b{batch} img/s')
    head += ['speed-up b1 vs train', 'max rel. diff vs train', 'b1 % of GEMM peak',
             'top-1 (source)']
    peak = peak_macs(gemm)
    rows = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    labels = entry_labels(settings, forms)
    for s in subjects:
        reference = s.results[1].get('train')
        for name in labels:
            form = name.split('+')[0]
            t1 = s.results[1][name]
            cells = [s.name, s.what, name, f'{s.params[form] / 1e6:.2f}', t1.format()]
            if batch:
                cells.append(f'{batch / s.results[batch][name].median_ms * 1e3:.1f}')
            cells.append(f'{reference.median_ms / t1.median_ms:.2f}x'
                         if reference and name != 'train' else '')
            cells.append(f'{s.diffs[name]:.1e}' if name != 'train' else '')
            cells.append(f'{100 * s.macs / (t1.median_ms / 1e3) / peak:.1f}')
            acc = s.accuracy
            cells.append(f'{acc.top1} ({acc.source})' if acc and name == labels[-1] else '')
            rows.append('| ' + ' | '.join(cells) + ' |')
    # the CPU's int8-relevant features: int8 speed and accuracy differ between CPU classes
    device = (f'cpu: {cpu_features().describe()}' if settings.device == 'cpu'
              else settings.device)
    flags = (('AMP', settings.amp), ('channels_last', settings.channels_last))
    mode = ', '.join(k for k, v in flags if v) or 'fp32'
    if settings.quantize:
        mode += ('; *-int8 entries: static int8 (weights per channel), calibrated on the packaged '
                 'photographs, ImageNet-normalised')
    return '\n'.join(rows) + (
        f'\n\n{device}, {settings.threads} threads, {mode}; {settings.warmup} warm-up + '
        f'{settings.runs} timed rounds at batch 1, each runtime in its own worker process, the '
        'workers taking turns; speed-ups relative to the eager training form. GEMM peak: '
        f'torch.mm of two {GEMM_SIZE}x{GEMM_SIZE} fp32 matrices, {settings.threads} threads, '
        f'timed in the same rounds: {gemm.median_ms:.2f} ms = {peak / 1e9:.1f} GMAC/s; % of peak '
        '= the deploy form\'s MACs (tools/analysis_tools/get_flops.py\'s count) per second at the median '
        'latency / that.')


def summary_lines(subjects: List[Subject], settings: Settings) -> List[str]:
    """Facts of the run in words: for each RapidNet, each deploy runtime's speed-up over the eager
    training form (and what reparameterisation alone gives under that runtime); for each deploy
    runtime, the models at batch 1, fastest first."""
    lines = []
    for s in subjects:
        res = s.results.get(1, {})
        if not s.name.startswith('RapidNet') or 'train' not in res:
            continue
        for runtime in settings.runtimes:
            deploy, train = label('deploy', runtime), label('train', runtime)
            if deploy not in res:
                continue
            line = (f'{s.name}: deploy form ({runtime}) '
                    f'{res["train"].median_ms / res[deploy].median_ms:.2f}x the eager training '
                    f'form at batch 1, outputs equal to {s.diffs[deploy]:.1e} of their scale')
            if runtime != 'eager' and train in res:
                line += (f'; reparameterisation alone under {runtime}: '
                         f'{res[train].median_ms / res[deploy].median_ms:.2f}x')
            lines.append(line)
            int8 = label('deploy', runtime + INT8)
            if int8 in res:
                lines.append(f'{s.name}: int8 under {runtime} {res[int8].median_ms:.2f} ms, '
                             f'{res[deploy].median_ms / res[int8].median_ms:.2f}x its fp32 '
                             f'deploy form ({res[deploy].median_ms:.2f} ms); outputs within '
                             f'{s.diffs[int8]:.1e} of the scale of the eager training form\'s')
    lines += ti_comparison_lines(subjects)
    by_runtime: Dict[str, List] = {}
    for s in subjects:
        for name, t in s.results.get(1, {}).items():
            if name.split('+')[0] == 'deploy':
                by_runtime.setdefault(name, []).append((t.median_ms, s.name))
    for name, entries in by_runtime.items():
        if len(entries) > 1:
            lines.append(f'{name}, batch 1, fastest first: '
                         + ', '.join(f'{n} {ms:.2f} ms' for ms, n in sorted(entries)))
    return lines


def ti_comparison_lines(subjects: List[Subject]) -> List[str]:
    """For RapidNet-Ti: ExecuTorch fp32 against the fastest exact deploy entry, and each
    runtime's int8 speed-up over its fp32 deploy form (ratios of this run, nothing judged)."""
    ti = next((s for s in subjects if s.name == 'RapidNet-Ti'), None)
    res = ti.results.get(1, {}) if ti else {}
    lines = []
    fastest = fastest_exact(ti) if ti else None
    executorch = label('deploy', 'executorch')
    if fastest and executorch in res:
        ratio = res[executorch].median_ms / res[fastest].median_ms
        lines.append(f'RapidNet-Ti: deploy+executorch (fp32) {res[executorch].median_ms:.2f} ms '
                     f'is {ratio:.2f}x the fastest exact entry ({fastest}, '
                     f'{res[fastest].median_ms:.2f} ms)')
    speedups = {name: res[name.replace(INT8, '')].median_ms / res[name].median_ms
                for name in res if name.endswith(INT8) and name.replace(INT8, '') in res}
    if speedups:
        lines.append('RapidNet-Ti: int8 against fp32 at batch 1: ' + ', '.join(
            f'{n.replace(INT8, "")} {v:.2f}x' for n, v in sorted(
                speedups.items(), key=lambda kv: -kv[1])))
    return lines


def plot_accuracy_latency(subjects: List[Subject], path: str, form: str) -> int:
    """Published top-1 against batch-1 latency of ``form``, as a PNG; returns how many models
    have a published top-1 (the others are left out)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    points = [(s.results[1][form].median_ms, s.accuracy.top1, s.name) for s in subjects
              if s.accuracy is not None]
    fig, ax = plt.subplots(figsize=(6, 4))
    for ms, top1, name in points:
        ax.scatter(ms, top1, color='tab:red' if name.startswith('RapidNet') else 'tab:blue')
        ax.annotate(name, (ms, top1), textcoords='offset points', xytext=(4, 4), fontsize=8)
    ax.set_xlabel(f'latency, batch 1, {form} form (ms, this machine)')
    ax.set_ylabel('ImageNet-1K top-1 (%, as published)')
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return len(points)
