"""The one export pipeline every format runs, and the hooks by which a format differs.

The steps, in order (:func:`run_export`): prepare the module -> reference outputs -> write into
a staging folder -> load with the runtime -> compare -> (calibrate -> quantize -> evaluate the
quantized file) -> move into place -> report. The request itself is checked before the model is
built (``formats.check_request``, driven by the format table).

A format is an entry of ``formats.FORMATS`` (its :class:`Format`: suffix, options, tolerance)
plus a subclass of :class:`Exporter` in its own module that overrides the hooks: ``write`` and
``load`` always; ``runner`` (its name in the report); ``check_options``, ``defaults``; for
``--quantize int8`` ``quantizer``, ``int8_runner``, ``quantize`` and ``notes``; and, where the
format is checked in another way (Core ML), ``prepare``, ``run``, ``compare``, ``calibrate``,
``evaluate`` and ``result``.
"""
import importlib
import os
import os.path as osp
import shutil
import tempfile
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn as nn

from . import int8
from .comparison import ExportedFileCheck, check_exported_file, check_image, reference_outputs
from .export_module import ExportError, ExportModule, describe, output_names, prepare_export
from .int8 import Int8Report
from .normalization import InputNormalization

Runner = Callable[[torch.Tensor], List[torch.Tensor]]


@dataclass(frozen=True)
class Format:
    """An export format: one entry of ``formats.FORMATS``.

    Attributes:
        title: Its name for people.
        suffix: What ``--out`` must end with.
        exporter: ``'module.Class'``: its :class:`Exporter` subclass in this package, imported
            only when the format is asked for (so that a missing optional package concerns only
            its own format).
        options: Its own options, by their keyword names.
        int8: Whether it offers ``--quantize int8`` (the options ``int8.INT8_OPTIONS``).
        tolerance: How far the file's outputs may be from PyTorch's, relative to the
            reference's largest magnitude.
        refused: Options of other formats that this one refuses with a reason of its own
            (option keyword -> the rest of the error line), instead of the generic one.
    """
    title: str
    suffix: str
    exporter: str
    options: Tuple[str, ...] = ()
    int8: bool = False
    tolerance: float = 1e-4
    refused: Tuple[Tuple[str, str], ...] = ()

    @property
    def all_options(self) -> Tuple[str, ...]:
        return self.options + (int8.INT8_OPTIONS if self.int8 else ())

    def exporter_class(self) -> type:
        module, name = self.exporter.rsplit('.', 1)
        return getattr(importlib.import_module(f'{__package__}.{module}'), name)


@dataclass
class FileExport(ExportedFileCheck):
    """A written file's check against PyTorch (the fp32 file's), and with ``--quantize`` the
    int8 report."""
    int8: Optional[Int8Report] = None


class Exporter:
    """One export under way: the request, what the steps have made so far, and the hooks.

    The defaults are those of the file formats that run here (ONNX, OpenVINO, TorchScript,
    ExecuTorch): the module with the mean in the graph, the file run by its runtime and
    compared with PyTorch by :func:`~.export_module.check_exported_file`, and static int8
    measured by :func:`~.int8.evaluate_int8`.

    Args:
        spec: The format's table entry.
        model: An eval-mode model.
        task: 'classifier', 'backbone' or 'segmentor'.
        input_size: ``(H, W)``, multiples of 32.
        norm: The model's input normalisation, built into the exported graph.
        out: Where the file will be put (messages name it; the steps write into staging).
        dilated_as_dense: Rewrite dilated convolutions as dense ones.
        log: Progress printer.
        options: The format's options given (keyword -> value); ``defaults`` fill the rest.
    """
    #: The format's name in the 'exporting ... at HxW' line (:meth:`announce`).
    kind = ''
    #: The runtime that runs the fp32 file, as the comparison names it.
    runner = ''
    #: Default values of the format's options.
    defaults: Dict[str, object] = {}
    #: Subtract the mean inside the graph (False: the input pipeline does, as Core ML's image).
    mean_in_graph = True
    #: The quantizer and the runtime that runs the int8 file, as the int8 report names them.
    quantizer = ''
    int8_runner = ''

    def __init__(self, spec: Format, model: nn.Module, task: str, input_size: Tuple[int, int],
                 norm: InputNormalization, out: str, dilated_as_dense: bool = False,
                 log: Callable[[str], None] = print, **options) -> None:
        self.spec = spec
        self.model = model
        self.task = task
        self.input_size = tuple(input_size)
        self.norm = norm
        self.out = out
        self.dilated_as_dense = dilated_as_dense
        self.log = log
        self.options = self.with_defaults(options)
        self.module: Optional[ExportModule] = None
        self.names: List[str] = []
        self.params = 0
        self.dilated_convs = 0
        self._reference: Optional[List[torch.Tensor]] = None

    @classmethod
    def with_defaults(cls, options: Dict[str, object]) -> Dict[str, object]:
        """``options`` (None: not given) over the format's defaults."""
        given = {k: v for k, v in options.items() if v is not None}
        return {**cls.defaults, **given}

    # -- the request ------------------------------------------------------------------------

    @classmethod
    def check_options(cls, options: Dict[str, object]) -> None:
        """Refuse what this format cannot do with ``options`` (defaults filled in), before a
        model is built; e.g. an optional package that is missing."""

    @property
    def example(self) -> torch.Tensor:
        return torch.zeros(1, 3, *self.input_size)

    @property
    def image(self) -> torch.Tensor:
        """The image the file is checked on."""
        return check_image(self.task, self.input_size, self.norm)

    @property
    def reference(self) -> List[torch.Tensor]:
        """The PyTorch model's outputs for :attr:`image` (computed once)."""
        if self._reference is None:
            self._reference = reference_outputs(self.model, self.task, self.image, self.norm)
        return self._reference

    @property
    def quantized(self) -> Optional[str]:
        """The quantization asked for (``--quantize``), or None."""
        return self.options.get('quantize')

    # -- the steps --------------------------------------------------------------------------

    def prepare(self) -> None:
        """Build the export module (``model`` itself is left unchanged) and log its size."""
        self.module = prepare_export(self.model, self.task, self.input_size, self.norm,
                                     self.dilated_as_dense, mean_in_graph=self.mean_in_graph)
        self.check_module(self.module)
        self.names = output_names(self.model, self.task)
        sizes = describe(self.module)
        self.params, self.dilated_convs = sizes['params'], sizes['dilated_convs']
        self.log(f'export module: {self.params:,} parameters, {self.dilated_convs} dilated convs; '
                 f'{self.announce()}')

    def announce(self) -> str:
        """What the log line after the module's size says is done next."""
        return f'exporting {self.kind} at {self.input_size[0]}x{self.input_size[1]}'

    def check_module(self, module: ExportModule) -> None:
        """Refuse a module the format has no op for."""

    def write(self, path: str) -> None:
        """Write the (fp32) file of :attr:`module` to ``path`` (sidecar files beside it)."""
        raise NotImplementedError

    @classmethod
    def load(cls, path: str) -> Runner:
        """The file at ``path`` as a function of a pixel batch shaped like its input, returning
        the outputs as tensors (NotImplementedError: the format's files do not run here)."""
        raise NotImplementedError

    def run(self, path: str) -> Tuple[str, Runner]:
        """The runtime's name and the written file as a function (:meth:`load`)."""
        return self.runner, self.load(path)

    def compare(self, path: str, runner: str, run: Runner):
        """Compare the file's outputs with PyTorch's; raise ExportError beyond the tolerance."""
        with torch.no_grad():
            outputs = run(self.image)
        return check_exported_file(path, runner, self.names, self.reference, outputs,
                                   self.params, self.log, self.spec.tolerance)

    def calibrate(self) -> Optional[torch.Tensor]:
        """The calibration images (``--calib``, or the packaged photographs)."""
        calibration = int8.calibration_images(self.options.get('calib'), self.input_size,
                                              self.norm.channel_order)
        self.log(f'quantizing to int8 ({self.quantizer}) on {len(calibration)} images ...')
        return calibration

    def quantize(self, fp32_path: str, path: str, calibration: Optional[torch.Tensor]) -> None:
        """Write the quantized form of the fp32 file at ``fp32_path`` to ``path``."""
        raise ExportError(f'{self.spec.title} offers no quantization')

    def notes(self) -> List[str]:
        """The runtime's lines about its int8 scheme on this CPU, for the report."""
        return []

    def evaluate(self, fp32_path: str, path: str, run_fp32: Runner,
                 calibration: Optional[torch.Tensor]):
        """Measure the quantized file against the fp32 model, log it, and apply the floor."""
        return int8.evaluate_int8(
            self.model, self.task, self.norm, self.names, self.int8_runner, fp32_path, path,
            run_fp32, self.load(path), calibration, self.options.get('calib'), self.log,
            self.options.get('min_psnr'), self.options.get('min_pixel_agreement'),
            self.options.get('min_top1_agreement'), notes=self.notes())

    def result(self, path: str, check, quantized):
        """What :func:`run_export` returns, from the comparison and the quantized file's
        evaluation (None without quantization)."""
        return FileExport(**vars(check), int8=quantized)


def run_export(exporter: Exporter):
    """Run the pipeline: everything is written into a temporary folder beside ``out`` first
    and moved into place only when the checks pass, so a refused or failed export leaves
    neither a partial file nor a file that failed its check (and an existing ``out`` stays as
    it was).

    Returns:
        The format's result (with ``path`` set to ``out``).
    """
    out = exporter.out
    exporter.prepare()
    folder = osp.dirname(osp.abspath(out))
    os.makedirs(folder, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f'.{osp.basename(out)}.', dir=folder)
    try:
        staged = osp.join(staging, osp.basename(out))
        with tempfile.TemporaryDirectory() as work:
            quantized = exporter.quantized
            fp32_path = osp.join(work, 'fp32' + exporter.spec.suffix) if quantized else staged
            exporter.write(fp32_path)
            runner, run_fp32 = exporter.run(fp32_path)
            check = exporter.compare(staged, runner, run_fp32)
            report = None
            if quantized:
                calibration = exporter.calibrate()
                exporter.quantize(fp32_path, staged, calibration)
                report = exporter.evaluate(fp32_path, staged, run_fp32, calibration)
            result = exporter.result(staged, check, report)
        for name in sorted(os.listdir(staging)):
            target = osp.join(folder, name)
            if osp.isdir(target) and not osp.islink(target):
                shutil.rmtree(target)
            os.replace(osp.join(staging, name), target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _point_at(result, out)
    exporter.log(f'saved {out}')
    return result


def _point_at(result, out: str) -> None:
    """Replace the staging path in a result (and its Core ML or int8 report) by the final
    one."""
    for holder in (result, getattr(result, 'report', None), getattr(result, 'int8', None)):
        if holder is not None and hasattr(holder, 'path'):
            holder.path = out


__all__ = ['Exporter', 'FileExport', 'Format', 'Runner', 'run_export']
