"""Where an int8 file's time goes: per-operator profiles of a model's fp32 and static int8 files in
ONNX Runtime (its profiler), OpenVINO (its performance counters) and ExecuTorch (its event
tracer's ETDump, read by its Inspector), side by side.

The files are those the benchmark times (written by
:func:`~rapidnet_mm.deploy.runtime.write_runtime_file`, calibrated on the benchmark's images). Each profile entry is attributed to an operator
kind: convolutions by their structure in the fp32 ONNX graph (depthwise, pointwise, dense or
dilated kxk, the image's first convolution), everything else by the runtime's own operator name;
in ExecuTorch every row is an XNNPACK operator (its precision and number left out), as the event
tracer names them.
The runtimes' profilers report per-node kernel times; none has a call that groups them this way,
hence this module.
"""
import collections
import json
import os
import os.path as osp
import re
import tempfile
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

from ..errors import InputError

RUNTIMES = ('onnxruntime', 'openvino', 'executorch')
CONV_OPS = ('Conv', 'FusedConv', 'QLinearConv', 'NchwcConv', 'Convolution', 'GroupConvolution')
# The runtimes' names of operators that are the same thing, as this report names them
OP_NAMES = {
    'Gelu': 'GELU', 'QuantizeLinear': 'quantize', 'DequantizeLinear': 'dequantize',
    'FakeQuantize': 'quantize', 'Transpose': 'layout change', 'Reorder': 'layout change',
    'ReorderInput': 'layout change', 'ReorderOutput': 'layout change',
    # int8 kernels of an fp32 operator: compared on one row
    'QGemm': 'Gemm', 'FullyConnectedQuantizedLegacy': 'FullyConnected',
}
# What ONNX Runtime's and OpenVINO's graph optimisers fuse into a preceding convolution
FUSED_INTO_CONV = ('Relu', 'Clip', 'LeakyRelu', 'Sigmoid', 'HardSigmoid', 'Tanh', 'HardSwish',
                   'Add')
QLINEAR = 'QLinear'  # ONNX Runtime's int8 kernels of Add, GlobalAveragePool, ...
# ExecuTorch's events that contain others (the delegate's operators are events of their own)
ENCLOSING_EVENTS = ('DELEGATE_CALL', 'OPERATOR_CALL', 'Method::execute')


def conv_kind(weight_shape: Sequence[int], group: int, dilation: Sequence[int]) -> str:
    """What a convolution is, from its weight shape ``(O, I/group, kh, kw)``, group and
    dilation: 'depthwise 3x3', 'pointwise', 'dense 3x3', 'dilated 3x3 (d=2)' or 'image 3x3'
    (the convolution of the 3 image channels)."""
    _, in_per_group, kh, kw = weight_shape
    size = f'{kh}x{kw}'
    if in_per_group == 3 and group == 1:
        return f'image {size}'
    if in_per_group == 1 and group > 1:
        return f'depthwise {size}' + ('' if max(dilation) == 1 else f' (d={max(dilation)})')
    if (kh, kw) == (1, 1):
        return 'pointwise'
    if max(dilation) > 1:
        return f'dilated {size} (d={max(dilation)})'
    return f'dense {size}' + ('' if group == 1 else f' (groups={group})')


def onnx_conv_kinds(path: str) -> Dict[str, str]:
    """Every Conv node of an ONNX file mapped to :func:`conv_kind`, by the node's name and by its
    output's; and by the names of the activations and additions that take a convolution's
    output (runtimes fuse those into the convolution and name the fused node after them)."""
    import onnx
    graph = onnx.load(path).graph
    shapes = {init.name: tuple(init.dims) for init in graph.initializer}
    kinds = {}
    for node in graph.node:
        if node.op_type != 'Conv' or node.input[1] not in shapes:
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        kind = conv_kind(shapes[node.input[1]], attrs.get('group', 1),
                         attrs.get('dilations', (1, 1)))
        kinds[node.name] = kinds[node.output[0]] = kind
    for _ in range(2):  # Conv -> Add -> Relu fuses two deep
        for node in graph.node:
            owner = next((i for i in node.input if i in kinds), None)
            if node.op_type in FUSED_INTO_CONV and owner and node.output[0] not in kinds:
                kinds[node.name] = kinds[node.output[0]] = kinds[owner]
    return kinds


def attribute(node_name: str, op: str, kinds: Dict[str, str]) -> str:
    """The row a profile entry goes to: a convolution's kind (the Conv node whose name is the
    longest prefix of the runtime's node name: runtimes suffix the names of the nodes they fuse
    or rewrite), else the operator's name."""
    if op in CONV_OPS:
        owner = max((n for n in kinds if node_name.startswith(n)), key=len, default=None)
        return f'conv: {kinds[owner]}' if owner else 'conv: other'
    if op.startswith(QLINEAR):
        op = op[len(QLINEAR):]
    return OP_NAMES.get(op, op)


def xnnpack_row(event: str) -> str:
    """The row of an XNNPACK operator's event, e.g. 'Convolution (NHWC, QC8) IGEMM #3' ->
    'conv: IGEMM', 'Convert (NC, F32, QD8) #1' -> 'quantize'."""
    name = re.sub(r' #\d+$', '', event)
    types = re.search(r'\(([^)]*)\)', name)
    if name.startswith('Convert') and types:
        return 'dequantize' if types.group(1).endswith('F32') else 'quantize'
    name = re.sub(r' \([^)]*\)', '', name)
    return f'conv: {name[len("Convolution "):]}' if name.startswith('Convolution ') else name


@dataclass
class OpProfile:
    """Mean microseconds per run of each row (:func:`attribute`), and how many nodes it has."""
    runtime: str
    form: str  # 'fp32' or 'int8'
    us: Dict[str, float] = field(default_factory=lambda: collections.defaultdict(float))
    nodes: Dict[str, int] = field(default_factory=lambda: collections.defaultdict(int))

    @property
    def total(self) -> float:
        return sum(self.us.values())


class OnnxRuntimeProfiler:
    """A session of ``path`` with ONNX Runtime's profiler on; :meth:`run` once per profiled run
    (the first, warming up, is left out), then :meth:`profile`."""
    runtime = 'onnxruntime'

    def __init__(self, path: str, image: np.ndarray, kinds: Dict[str, str], form: str,
                 threads: int, folder: str) -> None:
        from ..deploy.onnx_export import onnxruntime_session
        self.session = onnxruntime_session(path, threads, spin=False,
                                           profile_prefix=osp.join(folder, f'profile_{form}'))
        self.feed = {self.session.get_inputs()[0].name: image}
        self.kinds, self.form, self.runs = kinds, form, -1

    def run(self) -> None:
        self.session.run(None, self.feed)
        self.runs += 1

    def profile(self) -> OpProfile:
        with open(self.session.end_profiling()) as f:
            events = json.load(f)
        profile = OpProfile(self.runtime, self.form)
        seen = collections.Counter()
        for event in events:
            if event.get('cat') != 'Node' or not event['name'].endswith('_kernel_time'):
                continue
            name, op = event['name'][:-len('_kernel_time')], event['args']['op_name']
            seen[name] += 1
            if seen[name] == 1:  # the warm-up run
                continue
            row = attribute(name, op, self.kinds)
            profile.us[row] += event['dur'] / self.runs
            profile.nodes[row] += seen[name] == 2
        return profile


class OpenVinoProfiler:
    """``model`` compiled as the benchmark compiles it (float32, latency) with OpenVINO's
    performance counters on; :meth:`run` once per profiled run (the first, warming up, is left
    out), then :meth:`profile`."""
    runtime = 'openvino'

    def __init__(self, model, image: np.ndarray, kinds: Dict[str, str], form: str,
                 threads: int) -> None:
        from ..deploy.openvino_export import compile_openvino
        self.request = compile_openvino(model, threads, perf_count=True).create_infer_request()
        self.image, self.kinds, self.runs = image, kinds, -1
        self.totals = OpProfile(self.runtime, form)

    def run(self) -> None:
        self.request.infer(self.image)
        self.runs += 1
        if self.runs == 0:  # the warm-up run
            return
        for counter in self.request.profiling_info:
            seconds = counter.real_time.total_seconds()
            if seconds <= 0:  # fused into a neighbour, or not executed
                continue
            row = attribute(counter.node_name, counter.node_type, self.kinds)
            self.totals.us[row] += seconds * 1e6
            self.totals.nodes[row] += self.runs == 1

    def profile(self) -> OpProfile:
        profile = OpProfile(self.runtime, self.totals.form)
        profile.us.update({r: us / self.runs for r, us in self.totals.us.items()})
        profile.nodes.update(self.totals.nodes)
        return profile


class ExecuTorchProfiler:
    """A ``.pte`` loaded with ExecuTorch's event tracer on; :meth:`run` once per profiled run (the
    first, warming up, is left out), then :meth:`profile`."""
    runtime = 'executorch'

    def __init__(self, path: str, image: np.ndarray, form: str, threads: int,
                 folder: str) -> None:
        from executorch.extension.pybindings.portable_lib import _load_for_executorch

        from ..deploy.executorch_export import set_threads
        set_threads(threads)
        self.module = _load_for_executorch(path, enable_etdump=True)
        self.image, self.form, self.folder, self.runs = torch.from_numpy(image), form, folder, -1

    def run(self) -> None:
        self.module.run_method('forward', (self.image, ))
        self.runs += 1

    def profile(self) -> OpProfile:
        from executorch.devtools import Inspector
        path = osp.join(self.folder, f'{self.form}.etdp')
        self.module.write_etdump_result_to_file(path)
        profile = OpProfile(self.runtime, self.form)
        for block in Inspector(etdump_path=path).event_blocks:
            for event in block.events:
                # loading events have one time, every run's events one per run
                times = event.perf_data.raw[1:] if event.perf_data is not None else []
                if not times or event.name in ENCLOSING_EVENTS:
                    continue
                row = xnnpack_row(event.name)
                profile.us[row] += sum(times) * 1e3 / self.runs  # the Inspector's ms
                profile.nodes[row] += 1
        return profile


def profile_alternating(profilers: Sequence, runs: int) -> List[OpProfile]:
    """Each profiler's warm-up and then ``runs`` profiled runs, the profilers taking turns run by
    run (so that the machine's drift touches each alike), and their profiles."""
    for _ in range(runs + 1):
        for profiler in profilers:
            profiler.run()
    return [profiler.profile() for profiler in profilers]


def profile_model(module: nn.Module, runtimes: Sequence[str], input_size: Tuple[int, int],
                  runs: int, threads: int, log: Callable[[str], None] = print
                  ) -> List[Tuple[OpProfile, OpProfile]]:
    """(fp32, int8) profiles of a classifier's forward ``module`` (normalised input) in each
    runtime: the files the benchmark times, its int8 ones calibrated as its ``--quantize``."""
    from ..deploy.runtime import write_runtime_file
    from .benchmark import calibration_batches
    unknown = [r for r in runtimes if r not in RUNTIMES]
    if unknown:
        raise InputError(f'cannot profile {unknown}; choose from {RUNTIMES}')
    module = module.eval()
    example = torch.randn(1, 3, *input_size, generator=torch.Generator().manual_seed(0))
    image = example.numpy()
    calibrations = dict(fp32=None, int8=calibration_batches(1, input_size))
    pairs = []
    with tempfile.TemporaryDirectory() as tmp:
        for runtime in runtimes:
            log(f'{runtime}: exporting and quantizing')
            files, profilers = {}, []
            for form, calibration in calibrations.items():
                folder = osp.join(tmp, runtime, form)
                os.makedirs(folder)
                files[form] = write_runtime_file(module, runtime, example, calibration, folder)
            # convolutions by structure, from the fp32 ONNX file (ExecuTorch: XNNPACK's names)
            kinds = onnx_conv_kinds(files['fp32']) if runtime != 'executorch' else {}
            for form, made in files.items():
                folder = osp.join(tmp, runtime, form)
                if runtime == 'onnxruntime':
                    profilers.append(OnnxRuntimeProfiler(made, image, kinds, form, threads,
                                                         folder))
                elif runtime == 'openvino':
                    profilers.append(OpenVinoProfiler(made, image, kinds, form, threads))
                else:
                    profilers.append(ExecuTorchProfiler(made, image, form, threads, folder))
            pairs.append(tuple(profile_alternating(profilers, runs)))
    return pairs


def format_pair(fp32: OpProfile, int8: OpProfile) -> List[str]:
    """A markdown table of one runtime, after a line with the totals: each row's fp32 and int8
    time, its share of the run and the int8 speed-up (where both files have as many of its
    nodes), slowest fp32 rows first."""
    rows = sorted(set(fp32.us) | set(int8.us), key=lambda r: (-fp32.us.get(r, 0),
                                                               -int8.us.get(r, 0), r))
    lines = [f'{fp32.runtime}: fp32 {fp32.total / 1e3:.2f} ms, int8 {int8.total / 1e3:.2f} ms '
             f'({fp32.total / int8.total:.2f}x), summed kernel times per run',
             '', '| operator | nodes fp32 / int8 | fp32 us (share) | int8 us (share) | '
             'int8 speed-up |', '|---|---|---|---|---|']
    for row in rows:
        a, b = fp32.us.get(row, 0.0), int8.us.get(row, 0.0)
        # a speed-up only where both files have the row's nodes one for one
        same = fp32.nodes.get(row, 0) == int8.nodes.get(row, 0)
        speed = f'{a / b:.2f}x' if a and b and same else ''
        lines.append(f'| {row} | {fp32.nodes.get(row, 0)} / {int8.nodes.get(row, 0)} | '
                     f'{a:.0f} ({100 * a / fp32.total:.0f}%) | {b:.0f} '
                     f'({100 * b / int8.total:.0f}%) | {speed} |')
    return lines
