"""ExecuTorch export (``.pte``): one file for Android and iOS, delegated to XNNPACK (the CPU
kernels for ARM and x86) or to Core ML.

Pipeline: the export module of the other file formats (mean subtracted in the graph, 1/std
folded into the first conv) -> ``torch.export`` -> ``to_edge_transform_and_lower`` with the
delegate's partitioner -> ``.pte``. An XNNPACK file is then run with ExecuTorch's Python runtime
on this CPU (the same XNNPACK kernels) and compared with PyTorch by the rule of the ONNX export.
A Core ML-delegated file runs on Apple devices only: here the exported program that was lowered
is checked in PyTorch instead.

``--quantize int8``: PT2E with ExecuTorch's XNNPACK quantizer (symmetric, weights per output
channel), calibrated on the calibration images, then lowered like the fp32 program.
"""
import importlib
import logging
import os.path as osp
from dataclasses import dataclass, field
from importlib import metadata
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from .comparison import ExportedFileCheck, as_list
from .export_module import ExportError
from .int8 import Int8Report
from .nearest import nearest_as_transposed_conv
from .pipeline import Exporter, Runner

# The versions measured and tested here beside torch 2.14.1 (requirements/stack.txt pins them).
EXECUTORCH_VERSION = '1.5.1'
TORCHAO_VERSION = '0.18.0'
TESTED_TORCH = '2.14.1'
DELEGATES = ('xnnpack', 'coreml')
# The runtime's name of each delegate's backend.
BACKENDS = {'xnnpack': 'XnnpackBackend', 'coreml': 'CoreMLBackend'}
INSTALL = (f'pip install executorch=={EXECUTORCH_VERSION} torchao=={TORCHAO_VERSION} (or the '
           'deploy extra: pip install -e .[deploy])')


def import_executorch() -> None:
    """Check that executorch and torchao are installed in the tested versions and load beside
    this torch.

    Raises:
        ExportError: one line naming the fix.
    """
    installed = {}
    for name in ('executorch', 'torchao'):
        try:
            installed[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            raise ExportError(f'{name} is not installed; {INSTALL}') from None
    if installed != {'executorch': EXECUTORCH_VERSION, 'torchao': TORCHAO_VERSION}:
        raise ExportError(f'executorch {installed["executorch"]} and torchao '
                          f'{installed["torchao"]} are installed; this exporter is tested with '
                          f'executorch {EXECUTORCH_VERSION} and torchao {TORCHAO_VERSION} beside '
                          f'torch {TESTED_TORCH}: {INSTALL}')
    # torchao's import logs a deprecation warning of torch's about one of its enums, on stderr
    pytree_log = logging.getLogger('torch.utils._pytree')
    level = pytree_log.level
    pytree_log.setLevel(logging.ERROR)
    try:
        importlib.import_module('executorch.exir')
        importlib.import_module('executorch.runtime')
    except (ImportError, OSError, AttributeError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ExportError(f'executorch {installed["executorch"]} does not load beside torch '
                          f'{torch.__version__} ({reason}); install the tested set: pip install '
                          f'torch=={TESTED_TORCH} executorch=={EXECUTORCH_VERSION} '
                          f'torchao=={TORCHAO_VERSION}') from None
    finally:
        pytree_log.setLevel(level)


def check_delegate(delegate: str) -> None:
    """Refuse a delegate this installation cannot lower to (XNNPACK: the runtime must have its
    backend too, since the file is run here)."""
    if delegate not in DELEGATES:
        raise ExportError(f'unknown --delegate {delegate!r}; choose one of {DELEGATES}')
    if delegate == 'xnnpack':
        from executorch.runtime import Runtime
        if not Runtime.get().backend_registry.is_available(BACKENDS[delegate]):
            raise ExportError('the installed ExecuTorch runtime has no XNNPACK backend; '
                              f'reinstall it from PyPI: {INSTALL}')
        return
    try:
        importlib.import_module('executorch.backends.apple.coreml.partition')
    except (ImportError, OSError) as err:
        raise ExportError(f'ExecuTorch\'s Core ML delegate is not available ({err}); pip install '
                          'coremltools==9.0') from None


def partitioner(delegate: str):
    """The delegate's ExecuTorch partitioner."""
    if delegate == 'coreml':
        from executorch.backends.apple.coreml.partition import CoreMLPartitioner
        return CoreMLPartitioner()
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    return XnnpackPartitioner()


@dataclass
class Delegation:
    """What was lowered to the delegate: its calls, how many operators went in, the operators
    left to ExecuTorch's portable kernels by name (the count of each), and how many
    nearest-neighbour upsamplings went in as transposed convolutions (:mod:`.nearest`)."""
    delegate: str
    calls: int
    delegated: int
    not_delegated: Dict[str, int] = field(default_factory=dict)
    nearest_as_conv: int = 0

    def format(self) -> str:
        line = (f'  delegated to {self.delegate}: {self.delegated} operators in {self.calls} '
                'delegate call(s); ')
        if not self.not_delegated:
            line += 'not delegated: none'
        else:
            line += 'NOT delegated: ' + ', '.join(f'{n} x{c}'
                                                  for n, c in self.not_delegated.items())
        if self.nearest_as_conv:
            line += (f'; {self.nearest_as_conv} nearest-neighbour upsampling(s) as depthwise '
                     'transposed convolutions')
        return line


def delegation(edge, delegate: str) -> Delegation:
    """ExecuTorch's own delegation summary of a lowered program (``get_delegation_info``);
    ``getitem`` (taking an output of a delegate call) is bookkeeping, not an operator."""
    from executorch.devtools.backend_debug import get_delegation_info
    info = get_delegation_info(edge.exported_program().graph_module)
    rest = {name: b.non_delegated for name, b in info.delegation_by_operator.items()
            if b.non_delegated and name != 'getitem'}
    return Delegation(delegate, info.num_delegated_subgraphs, info.num_delegated_nodes, rest)


def lower(program: torch.export.ExportedProgram, delegate: str, out: str) -> Delegation:
    """Lower an exported program to ``delegate`` and write the ``.pte`` to ``out``.

    For XNNPACK, which has no nearest-neighbour resize, the exact nearest upsamplings of
    ``program`` are first rewritten in place as transposed convolutions (:mod:`.nearest`). Only
    here: ONNX, OpenVINO, Core ML and TorchScript take the resize as it is, and the model itself
    is not touched.
    """
    from executorch.exir import to_edge_transform_and_lower
    rewritten = nearest_as_transposed_conv(program) if delegate == 'xnnpack' else 0
    edge = to_edge_transform_and_lower(program, partitioner=[partitioner(delegate)])
    summary = delegation(edge, delegate)
    summary.nearest_as_conv = rewritten
    with open(out, 'wb') as f:
        edge.to_executorch().write_to_file(f)
    return summary


def quantize_pt2e(module: nn.Module, example: torch.Tensor,
                  calibration: Sequence[torch.Tensor]) -> torch.export.ExportedProgram:
    """``module`` quantized to int8 by PT2E with the XNNPACK quantizer (symmetric, weights per
    output channel), calibrated on ``calibration`` (inputs shaped like ``example``), exported
    again."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer, get_symmetric_quantization_config)
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    quantizer = XNNPACKQuantizer()
    quantizer.set_global(get_symmetric_quantization_config(is_per_channel=True))
    prepared = prepare_pt2e(torch.export.export(module, (example, )).module(), quantizer)
    with torch.no_grad():
        for batch in calibration:
            prepared(batch)
    return torch.export.export(convert_pt2e(prepared), (example, ))


def set_threads(threads: int) -> None:
    """The thread count of ExecuTorch's thread pool (XNNPACK's kernels) in this process."""
    from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool
    _unsafe_reset_threadpool(threads)


def load_pte(path: str) -> Runner:
    """A ``.pte`` file's ``forward`` in ExecuTorch's Python runtime, as a function of one
    tensor returning the list of outputs."""
    from executorch.runtime import Runtime
    method = Runtime.get().load_program(path).load_method('forward')
    return lambda x: list(method.execute([x.contiguous()]))


def lower_module(module: nn.Module, example: torch.Tensor, out: str, delegate: str = 'xnnpack',
                 calibration: Optional[Sequence[torch.Tensor]] = None) -> Delegation:
    """``torch.export`` ``module`` at ``example``'s shape (quantized to int8 on ``calibration``,
    inputs shaped like ``example``, when given), lower it to ``delegate`` and write ``out``:
    what ``--format executorch`` and the benchmark's executorch runtime write."""
    with torch.no_grad():
        if calibration is None:
            program = torch.export.export(module, (example, ))
        else:
            program = quantize_pt2e(module, example, calibration)
    return lower(program, delegate, out)


@dataclass
class ExecuTorchExport:
    """A written ``.pte``: its size, what was delegated, and its check against PyTorch (the
    fp32 file's; with ``--quantize`` also the int8 report)."""
    path: str
    bytes: int
    delegation: Delegation
    check: Optional[ExportedFileCheck]
    int8: Optional[Int8Report] = None

    def format(self) -> str:
        return '\n'.join([f'  {self.path}: {self.bytes / 1e6:.2f} MB', self.delegation.format()]
                         + ([self.int8.format()] if self.int8 else []))


class ExecuTorchExporter(Exporter):
    """``--format executorch``: the module ``torch.export``-ed and lowered to ``delegate``; an
    XNNPACK file is run here and compared with PyTorch, a Core ML-delegated one (Apple devices
    only) is checked as the exported program in PyTorch. The program takes ``image`` (float32
    1x3xHxW pixel values 0-255 in the model's channel order) and returns the outputs
    :func:`~.export_module.output_names` names, in that order. ``--quantize int8`` (XNNPACK
    only): static int8, calibrated on ``--calib``."""
    runner = 'ExecuTorch (XNNPACK, fp32)'
    defaults = dict(delegate='xnnpack')
    quantizer = 'PT2E, XNNPACK quantizer'
    int8_runner = 'ExecuTorch (XNNPACK)'

    @classmethod
    def check_options(cls, options: Dict[str, object]) -> None:
        import_executorch()
        check_delegate(options['delegate'])
        if options.get('quantize') is not None and options['delegate'] == 'coreml':
            raise ExportError('--quantize int8 is the XNNPACK quantizer\'s int8; with --delegate '
                              'coreml compress the weights of a Core ML package instead (--format '
                              'coreml --compress int8), or drop --delegate coreml')

    @property
    def kind(self) -> str:
        return f'ExecuTorch ({self.options["delegate"]})'

    def write(self, path: str) -> None:
        delegate = self.options['delegate']
        self.log(f'lowering to {delegate} with ExecuTorch {EXECUTORCH_VERSION} ...')
        self.delegation = lower_module(self.module, self.example, path, delegate)
        self.log(self.delegation.format() + f'; file {osp.getsize(path) / 1e6:.2f} MB')

    @classmethod
    def load(cls, path: str) -> Runner:
        return load_pte(path)

    def run(self, path: str) -> Tuple[str, Runner]:
        if self.options['delegate'] != 'coreml':
            return super().run(path)
        self.log('  the Core ML delegate runs on Apple devices only (ExecuTorch\'s iOS/macOS '
                 'runtime): the .pte is not run here; checking the lowered program in PyTorch')
        with torch.no_grad():
            program = torch.export.export(self.module, (self.example, )).module()
        return 'the exported program (PyTorch)', lambda x: as_list(program(x))

    def quantize(self, fp32_path: str, path: str, calibration: torch.Tensor) -> None:
        self.delegation = lower_module(self.module, self.example, path,
                                       self.options['delegate'], list(calibration.split(1)))
        self.log(self.delegation.format() + ' (int8 program)')

    def result(self, path: str, check, quantized) -> ExecuTorchExport:
        return ExecuTorchExport(path, osp.getsize(path), self.delegation, check, quantized)
