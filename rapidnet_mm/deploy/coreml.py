"""Core ML export (ML program) through the export pipeline.

The exported model takes an image named ``image`` (8-bit, the channel order the model was
trained on); Core ML's per-channel image bias subtracts the mean and the per-channel ``1/std``
is folded into the first convolution (see ``export_module``): exact ImageNet normalisation,
where Core ML's single image ``scale`` could only approximate three different stds.

Core ML runs predictions on macOS only, so the pipeline's steps take this form: the written
step traces the module and checks the trace (FP32 and FP16) against PyTorch before converting;
the run step loads the weights stored in the saved package into the export module in PyTorch
(:func:`~.coreml_compress.package_runner`), and the comparison is their PSNR against the FP32
model on photographs; ``--compress`` is the quantize step (weights only, no calibration),
measured the same way against its PSNR floor. The report (:mod:`.coreml_report`) reads the
package without macOS; ``--benchmark`` (:mod:`.coreml_benchmark`) needs macOS.
"""
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn

from ..models.mldc import MultiLevelDeformableConv
from .coreml_benchmark import benchmark_coreml, check_benchmark_platform
from .coreml_compress import (check_compression, compress_mlmodel, format_psnr, min_psnr_for,
                              package_runner)
from .coreml_report import CoreMLReport, coreml_report
from .comparison import Numerics, check_numerics, psnr, reference_outputs
from .export_module import ExportError, ExportModule
from .normalization import InputNormalization
from .photos import sample_images
from .pipeline import Exporter, Runner
from .torch_support import CPU_FP16_TORCH, require_torch

PRECISIONS = ('fp16', 'fp32')
# ML programs need iOS 15 or newer; names as in coremltools' ct.target.
MIN_TARGETS = ('iOS15', 'iOS16', 'iOS17', 'iOS18', 'iOS26')


def check_precision_and_target(precision: str, min_target: str) -> None:
    """Refuse bad settings before anything is built or converted."""
    if precision not in PRECISIONS:
        raise ExportError(f'unknown precision {precision!r}; choose one of {PRECISIONS}')
    if min_target not in MIN_TARGETS:
        raise ExportError(f'unknown or too old minimum target {min_target!r}; ML programs need '
                          f'one of {MIN_TARGETS}')


def check_coreml_convertible(module: nn.Module) -> None:
    """Refuse layers Core ML has no op for (the deformable-conv ablation)."""
    deformable = [n for n, m in module.named_modules() if isinstance(m, MultiLevelDeformableConv)]
    if deformable:
        raise ExportError(f'Core ML has no deformable convolution ({deformable[0]} and '
                          f'{len(deformable) - 1} more): the deformable ablation cannot be '
                          'exported')


def convert(traced: torch.jit.ScriptModule, input_size: Tuple[int, int],
            norm: InputNormalization, names: List[str], precision: str = 'fp16',
            min_target: str = 'iOS16', metadata: Optional[Dict[str, str]] = None):
    """Convert a traced export module (pixels minus mean in) to a Core ML ML program.

    Returns:
        The ``coremltools.models.MLModel`` (not yet saved).
    """
    import coremltools as ct
    h, w = input_size
    image = ct.ImageType(name='image', shape=(1, 3, h, w), scale=1.0,
                         bias=[-m for m in norm.mean],
                         color_layout=getattr(ct.colorlayout, norm.channel_order))
    mlmodel = ct.convert(
        traced, inputs=[image], outputs=[ct.TensorType(name=n) for n in names],
        convert_to='mlprogram',
        compute_precision=(ct.precision.FLOAT16 if precision == 'fp16'
                           else ct.precision.FLOAT32),
        minimum_deployment_target=getattr(ct.target, min_target))
    mlmodel.input_description['image'] = (
        f'{norm.channel_order} image {w}x{h}; normalised inside the model: minus mean '
        f'{list(norm.mean)} (image bias), divided by std {list(norm.std)} (folded into the first '
        'convolution)')
    for name in names:
        mlmodel.output_description[name] = (
            'class logits (mean of head and dist_head)' if name == 'logits' else
            f'backbone feature map at stride {name[len("feat_s"):]}')
    for key, value in (metadata or {}).items():
        mlmodel.user_defined_metadata[key] = str(value)
    return mlmodel


@dataclass
class CoreMLExport:
    """What a Core ML export did: the package, the traced module's numerics, the report."""
    path: str
    numerics: Numerics
    report: CoreMLReport
    params: int
    dilated_convs: int
    # PSNR (dB) per output against the FP32 PyTorch model on sample_images(), per package:
    # the precision ('fp16'/'fp32'), and the --compress mode when there is one.
    psnr: Dict[str, List[float]] = field(default_factory=dict)
    # --benchmark: median latency (ms) per compute unit, measured on macOS.
    latency_ms: Dict[str, float] = field(default_factory=dict)

    def format(self) -> str:
        return self.report.format()


def check_min_psnr(compress: Optional[str], min_psnr: Optional[float]) -> None:
    if min_psnr is not None and compress is None:
        raise ExportError('--min-psnr is the floor for a compressed package; add --compress '
                          'int8|palette6|palette4 or drop --min-psnr')


class CoreMLExporter(Exporter):
    """``--format coreml``: trace, check the trace, convert, save; the package's stored weights
    checked in PyTorch; ``--compress`` evaluated against its PSNR floor (nothing is put at
    ``out`` below it); ``--benchmark`` on macOS; the report."""
    defaults = dict(precision='fp16', min_target='iOS16')
    mean_in_graph = False  # Core ML's image bias subtracts the mean
    _photo_reference: Optional[List[torch.Tensor]] = None  # the FP32 model on the photographs

    @classmethod
    def check_options(cls, options: Dict[str, object]) -> None:
        require_torch(CPU_FP16_TORCH, '--format coreml',
                      "it checks the model's FP16 numerics on CPU, in half-precision kernels")
        precision, min_target = options['precision'], options['min_target']
        check_precision_and_target(precision, min_target)
        check_compression(options.get('compress'), precision, min_target, MIN_TARGETS)
        check_min_psnr(options.get('compress'), options.get('min_psnr'))
        benchmark = options.get('benchmark')
        if benchmark is not None:
            if benchmark < 1:
                raise ExportError('--benchmark N needs N >= 1')
            check_benchmark_platform()

    def check_module(self, module: ExportModule) -> None:
        check_coreml_convertible(module)

    def announce(self) -> str:
        return f'tracing at {self.input_size[0]}x{self.input_size[1]}'

    @property
    def quantized(self) -> Optional[str]:
        return self.options.get('compress')

    def write(self, path: str) -> None:
        with torch.no_grad():
            traced = torch.jit.trace(self.module, self.example)
        self.numerics = check_numerics(self.model, self.task, traced, self.module, self.norm,
                                       self.names, self.input_size)
        self.log('traced module vs PyTorch model:\n' + self.numerics.format())
        if not self.numerics.ok(self.spec.tolerance):
            raise ExportError('the traced module does not reproduce the PyTorch model (see '
                              'above); not converting')
        precision, min_target = self.options['precision'], self.options['min_target']
        self.log(f'converting to a Core ML ML program ({precision}, minimum target '
                 f'{min_target}) ...')
        norm, (h, w) = self.norm, self.input_size
        meta = dict(task=self.task, input_size=f'{h}x{w}',
                    dilated_as_dense=str(self.dilated_as_dense), normalization=(
                        f'image bias -mean {list(norm.mean)}; 1/std {list(norm.std)} folded '
                        'into the first conv'))
        meta.update(self.options.get('metadata') or {})
        if self.quantized is not None:
            meta['compression'] = self.quantized
        self.mlmodel = convert(traced, self.input_size, norm, self.names, precision, min_target,
                               meta)
        self.mlmodel.save(path)

    def run(self, path: str) -> Tuple[str, Runner]:
        if sys.platform != 'darwin':
            self.log('  Core ML runs predictions on macOS only: the package\'s stored weights '
                     'are run in PyTorch instead')
        precision = self.options['precision']
        return precision, package_runner(path, self.module, self.norm, precision == 'fp16')

    def compare(self, path: str, runner: str, run: Runner) -> Dict[str, List[float]]:
        """PSNR per output of the package against the FP32 model on photographs."""
        return {runner: self.package_psnr(runner, run)}

    def package_psnr(self, label: str, run: Runner) -> List[float]:
        images = sample_images(self.input_size, self.norm.channel_order)
        if self._photo_reference is None:
            self._photo_reference = reference_outputs(self.model, self.task, images, self.norm)
        values = [psnr(r, o) for r, o in zip(self._photo_reference, run(images))]
        self.log(format_psnr(label, self.names, values, len(images)))
        return values

    def calibrate(self) -> None:
        """Weight compression needs no calibration images."""
        return None

    def quantize(self, fp32_path: str, path: str, calibration: None) -> None:
        self.log(f'compressing the weights ({self.quantized}) ...')
        compress_mlmodel(self.mlmodel, self.quantized).save(path)

    def evaluate(self, fp32_path: str, path: str, run_fp32: Runner,
                 calibration: None) -> List[float]:
        compress = self.quantized
        values = self.package_psnr(compress, package_runner(path, self.module, self.norm, True))
        floor, source = min_psnr_for(compress, self.options.get('min_psnr'))
        worst = min(values)
        if not worst >= floor:  # also catches NaN
            raise ExportError(f'the {compress} package reaches only {worst:.1f} dB PSNR against '
                              f'the FP32 model, below the {floor:g} dB floor ({source}); nothing '
                              f'was written to {self.out}: choose a milder --compress or lower '
                              '--min-psnr')
        return values

    def result(self, path: str, check: Dict[str, List[float]],
               quantized: Optional[List[float]]) -> CoreMLExport:
        scores = dict(check)
        if quantized is not None:
            scores[self.quantized] = quantized
        latency = {}
        benchmark = self.options.get('benchmark')
        if benchmark:
            self.log(f'benchmark: {benchmark} predictions per compute unit')
            latency = benchmark_coreml(path, benchmark, log=self.log)
        return CoreMLExport(path, self.numerics, coreml_report(path, self.params), self.params,
                            self.dilated_convs, scores, latency)
