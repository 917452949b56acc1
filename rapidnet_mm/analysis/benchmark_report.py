"""What a benchmark run prints: the markdown table, the facts in words, and the accuracy against
latency chart (``tools/analysis_tools/benchmark.py``)."""
import textwrap
from typing import Dict, List, Sequence

from ..deploy.cpu_features import cpu_features
from ..deploy.runtime import INT8_RUNTIMES
from ..errors import InputError
from ..timing import Timing
from .benchmark import (GEMM_SIZE, INT8, Settings, entry_labels, fastest_exact, label,
                        peak_macs)
from .subjects import PEERS, Subject


def format_table(subjects: List[Subject], batch: int, settings: Settings, forms: List[str],
                 gemm: Timing) -> str:
    """The markdown table of a :func:`~rapidnet_mm.analysis.benchmark.measure` run, with a
    footnote saying how it was measured."""
    head = ['model', 'what', 'form', 'params (M)', 'latency b1 ms, median [IQR]']
    if batch:
        head.append(f'throughput b{batch} img/s')
    head += ['speed-up b1 vs train', 'max rel. diff vs train', 'b1 % of GEMM peak',
             'top-1 % at resolution (source)']
    peak = peak_macs(gemm)
    rows = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    labels = entry_labels(settings, forms)
    for s in subjects:
        reference = s.results.get(1, {}).get('train')
        for name in labels:
            form = name.split('+')[0]
            cells = [s.name, s.what, name, f'{s.params[form] / 1e6:.2f}']
            t1 = s.results.get(1, {}).get(name)
            if t1 is None:
                cells.append(not_run(s, 1, name))
                if batch:
                    cells.append(not_run(s, batch, name))
                cells += [''] * (len(head) - len(cells) - 1)
            else:
                cells.append(t1.format())
                if batch:
                    tb = s.results.get(batch, {}).get(name)
                    cells.append(f'{batch / tb.median_ms * 1e3:.1f}' if tb
                                 else not_run(s, batch, name))
                cells.append(f'{reference.median_ms / t1.median_ms:.2f}x'
                             if reference and name != 'train' else '')
                cells.append(f'{s.diffs[name]:.1e}' if name != 'train' else '')
                cells.append(f'{100 * s.macs / (t1.median_ms / 1e3) / peak:.1f}')
            acc = s.accuracy
            cells.append(f'{acc.top1} at {acc.resolution} ({acc.source})'
                         if acc and name == labels[-1] else '')
            rows.append('| ' + ' | '.join(cells) + ' |')
    device = machine(settings)
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


def machine(settings: Settings) -> str:
    """What the run measured on: the CPU with its int8-relevant features (int8 speed and
    accuracy differ between CPU classes), or the CUDA device."""
    return (f'cpu: {cpu_features().describe()}' if settings.device == 'cpu'
            else settings.device)


def table_cell(text: str) -> str:
    """``text`` safe inside a markdown table cell: one line, no column separators."""
    return ' '.join(text.split()).replace('|', '/')


def not_run(subject: Subject, batch: int, name: str) -> str:
    """The table cell of an entry that was not timed at ``batch``: why."""
    reason = subject.failures.get(batch, {}).get(name, 'no timing')
    return f'not run: {table_cell(reason)}'


def summary_lines(subjects: List[Subject], settings: Settings) -> List[str]:
    """Facts of the run in words: for each RapidNet, each deploy runtime's speed-up over the eager
    training form (and what reparameterisation alone gives under that runtime); RapidNet-Ti's
    comparisons (:func:`ti_comparison_lines`); each entry that was not run, and why; for each
    deploy runtime, the models at batch 1, fastest first."""
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
    for s in subjects:
        for batch, failed in sorted(s.failures.items()):
            lines += [f'{s.name}: {name} not run at batch {batch} ({reason})'
                      for name, reason in failed.items()]
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


# The peers RapidNet-Ti's rank is stated against (timm names): the paper's own comparison and
# its 2024 successor.
RANK_PEERS = ('mobilenetv2_140', 'mobilenetv4_conv_small')


def ti_comparison_lines(subjects: List[Subject]) -> List[str]:
    """For RapidNet-Ti: ExecuTorch fp32 against the fastest exact deploy entry, each runtime's
    int8 speed-up over its fp32 deploy form, and its rank against :data:`RANK_PEERS` in each
    deploy entry (ratios of this run, nothing judged)."""
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
    return lines + (rank_lines(ti, subjects) if ti else [])


def rank_lines(ti: Subject, subjects: List[Subject]) -> List[str]:
    """For each deploy entry RapidNet-Ti has at batch 1: its rank by median latency among itself
    and the :data:`RANK_PEERS` of the run, and how far behind the fastest of them it is; peers
    not timed in that entry are named with the reason."""
    labels = {PEERS[p][0] for p in RANK_PEERS}
    peers = [s for s in subjects if s.name in labels]
    if not peers:
        return []
    lines = []
    for name, t in ti.results.get(1, {}).items():
        if name.split('+')[0] != 'deploy':
            continue
        timed = sorted([(t.median_ms, ti.name)] + [
            (p.results[1][name].median_ms, p.name) for p in peers if name in p.results.get(1, {})])
        rank = [n for _, n in timed].index(ti.name) + 1
        line = (f'RapidNet-Ti rank in {name}, batch 1: {rank} of {len(timed)} ('
                + ', '.join(f'{n} {ms:.2f} ms' for ms, n in timed) + ')')
        if rank > 1:
            line += (f'; {100 * (t.median_ms / timed[0][0] - 1):.1f}% slower than '
                     f'{timed[0][1]}')
        missing = [f'{p.name}: {p.failures.get(1, {}).get(name, "not timed")}'
                   for p in peers if name not in p.results.get(1, {})]
        if missing:
            line += '; not ranked: ' + '; '.join(missing)
        lines.append(line)
    return lines


def default_plot_runtime(subjects: List[Subject]) -> str:
    """The runtime of the first RapidNet's fastest exact deploy entry (the chart's one panel
    when none is chosen).

    Raises:
        InputError: no RapidNet with an exact deploy entry at batch 1 in the run.
    """
    for s in subjects:
        fastest = fastest_exact(s) if s.name.startswith('RapidNet') else None
        if fastest:
            return fastest.split('+')[1] if '+' in fastest else 'eager'
    raise InputError('--plot without --plot-runtimes draws the fastest exact runtime of a '
                     'RapidNet, but no RapidNet deploy form was timed: add a RapidNet config and '
                     '--forms deploy, or name the panels with --plot-runtimes')


def plot_accuracy_latency(subjects: List[Subject], path: str, runtimes: Sequence[str],
                          settings: Settings, input_size: Sequence[int], machine: str,
                          date: str):
    """Published top-1 against measured batch-1 latency of the deploy form, one panel per
    runtime in ``runtimes``, written as a PNG to ``path``.

    One marker per model and precision: fp32 filled circles, the int8 deploy form (with
    ``--quantize``) hollow triangles joined to the same model's fp32 marker by a dotted line;
    RapidNets red and joined by a line per precision (in the order of ``subjects``), peers
    blue. Each model is named once, at its fp32 marker. Models without a published top-1, and entries that were
    not run, are named in the caption instead.

    Args:
        subjects: The measured subjects.
        path: Where the PNG goes.
        runtimes: One panel for each, in this order.
        settings: The run's settings (threads, and whether int8 was timed).
        input_size: The timed input ``(H, W)``.
        machine: The CPU (or device) the run measured, for the title.
        date: The run's date, for the title.

    Returns:
        The matplotlib figure (closed by the caller).
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    precisions = [('fp32', '', 'o')] + ([('int8', INT8, '^')] if settings.quantize else [])
    fig, axes = plt.subplots(1, len(runtimes), figsize=(6.5 * len(runtimes), 6.5),
                             squeeze=False)
    missing = []
    for ax, runtime in zip(axes[0], runtimes):
        # model -> precision -> (ms, top-1)
        placed: Dict[str, Dict[str, tuple]] = {}
        for precision, suffix, marker in precisions:
            name = label('deploy', runtime + suffix)
            if suffix and runtime not in INT8_RUNTIMES:
                continue
            for family, color in (('RapidNet', 'tab:red'), ('peer', 'tab:blue')):
                points = []
                for s in subjects:
                    if s.accuracy is None or s.name.startswith('RapidNet') != (
                            family == 'RapidNet'):
                        continue
                    t = s.results.get(1, {}).get(name)
                    if t is None:
                        missing.append(f'{s.name} {name}')
                        continue
                    points.append((t.median_ms, s.accuracy.top1, s.name))
                    placed.setdefault(s.name, {})[precision] = (t.median_ms, s.accuracy.top1)
                if not points:
                    continue
                xs, ys = [p[0] for p in points], [p[1] for p in points]
                ax.scatter(xs, ys, marker=marker, s=50, color=color, zorder=3,
                           facecolors=color if precision == 'fp32' else 'none')
                if family == 'RapidNet' and len(points) > 1:
                    ax.plot(xs, ys, color=color, zorder=2,
                            linestyle='-' if precision == 'fp32' else '--')
        for model, at in placed.items():
            # one name per model, at its fp32 marker; its int8 marker joined to it by a dotted
            # line (the same top-1), so that the int8 gain reads as that line's length
            ms, top1 = at.get('fp32', at.get('int8'))
            ax.annotate(model if 'fp32' in at else f'{model} int8', (ms, top1),
                        textcoords='offset points', xytext=(4, 4), fontsize=7)
            if len(at) == 2:
                ax.plot([at['int8'][0], at['fp32'][0]], [top1, top1], linestyle=':',
                        color='gray', linewidth=1, zorder=1)
        ax.set_title(runtime)
        ax.set_xlabel(f'latency, batch 1, {input_size[0]}x{input_size[1]} (ms, median)')
        ax.set_ylabel('ImageNet-1K top-1 (%, as published)')
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], linestyle='', marker=m, markersize=7, color='gray',
                      markerfacecolor='gray' if p == 'fp32' else 'none', label=p)
               for p, _, m in precisions]
    handles += [Line2D([], [], linestyle='', marker='o', color=c, label=f)
                for f, c in (('RapidNet', 'tab:red'), ('peers', 'tab:blue'))]
    axes[0][0].legend(handles=handles, fontsize=8, loc='lower right')
    fig.suptitle(f'{machine}\n{settings.threads} threads, {date}', fontsize=9)
    no_top1 = [s.name for s in subjects if s.accuracy is None]
    where = 'CPU' if settings.device == 'cpu' else settings.device
    caption = [f'{where} latencies of the deploy form on the machine above; the RapidNet '
               'paper\'s latency claim is about the iPhone 13 mini\'s Neural Engine. Top-1 as '
               'published, each at its own resolution (sources in the table).']
    if no_top1:
        caption.append('Left out, no published top-1: ' + ', '.join(no_top1) + '.')
    if missing:
        caption.append('Not run: ' + ', '.join(missing) + '.')
    fig.text(0.01, 0.01, '\n'.join(textwrap.fill(c, 40 + 80 * len(runtimes))
                                    for c in caption), fontsize=7, va='bottom')
    fig.tight_layout(rect=(0, 0.04 + 0.03 * len(caption), 1, 0.95))
    fig.savefig(path, dpi=120)
    return fig
