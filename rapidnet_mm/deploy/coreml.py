"""Core ML export (ML program), a report that works without macOS, and an on-Mac benchmark.

The exported model takes an image named ``image`` (8-bit, the channel order the model was
trained on); Core ML's per-channel image bias subtracts the mean and the per-channel ``1/std``
is folded into the first convolution (see ``export_module``): exact ImageNet normalisation,
where Core ML's single image ``scale`` could only approximate three different stds.
"""
import os
import os.path as osp
import shutil
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from ..errors import RapidNetError
from ..models.mldc import MultiLevelDeformableConv
from .coreml_compress import (check_compression, compress_mlmodel, format_psnr, min_psnr_for,
                              package_psnr, save_atomically)
from .export_module import (ExportError, Numerics, check_numerics, describe, output_names,
                            prepare_export)
from .normalization import InputNormalization
from .photos import sample_images
from .torch_support import CPU_FP16_TORCH, require_torch

PRECISIONS = ('fp16', 'fp32')
# ML programs need iOS 15 or newer; names as in coremltools' ct.target.
MIN_TARGETS = ('iOS15', 'iOS16', 'iOS17', 'iOS18', 'iOS26')

# Ops we treat as Neural-Engine friendly: those that Apple's public guidance on the Neural
# Engine and Xcode performance reports of mobile backbones (RapidNet's peers) show running there.
# A checklist, not a guarantee: shapes, data types and the OS decide; the device's performance
# report is the authority. ``conv`` with a dilation other than 1 is reported separately.
ANE_FRIENDLY_OPS = frozenset({
    'const', 'cast', 'conv', 'linear', 'matmul', 'add', 'sub', 'mul', 'gelu', 'relu',
    'sigmoid', 'silu', 'clip', 'reduce_mean', 'avg_pool', 'max_pool', 'reshape', 'transpose',
    'concat', 'softmax', 'layer_norm', 'batch_norm', 'upsample_nearest_neighbor',
    'upsample_bilinear',
    # compressed weights (--compress): decompressed when the model loads, not run per image
    'constexpr_affine_dequantize', 'constexpr_lut_to_dense', 'constexpr_blockwise_shift_scale',
})
COMPUTE_UNITS = ('ALL', 'CPU_AND_NE', 'CPU_AND_GPU', 'CPU_ONLY')


def check_options(precision: str, min_target: str) -> None:
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
    """What :func:`export_coreml` did: the package, the traced module's numerics, the report."""
    path: str
    numerics: Numerics
    report: 'CoreMLReport'
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


def check_request(precision: str = 'fp16', min_target: str = 'iOS16',
                  compress: Optional[str] = None, min_psnr: Optional[float] = None,
                  benchmark: Optional[int] = None, metadata: Optional[dict] = None) -> None:
    """Refuse options that cannot work together, before a model is built (the arguments of
    :func:`export_coreml`)."""
    require_torch(CPU_FP16_TORCH, '--format coreml',
                  "it checks the model's FP16 numerics on CPU, in half-precision kernels")
    check_options(precision, min_target)
    check_compression(compress, precision, min_target, MIN_TARGETS)
    check_min_psnr(compress, min_psnr)
    if benchmark is not None:
        if benchmark < 1:
            raise ExportError('--benchmark N needs N >= 1')
        check_benchmark_platform()


def export_coreml(model: nn.Module, task: str, input_size: Tuple[int, int],
                  norm: InputNormalization, out: str, dilated_as_dense: bool = False,
                  log: Callable[[str], None] = print, precision: str = 'fp16',
                  min_target: str = 'iOS16', compress: Optional[str] = None,
                  min_psnr: Optional[float] = None, benchmark: Optional[int] = None,
                  metadata: Optional[Dict[str, str]] = None) -> CoreMLExport:
    """Check, reparameterise, trace, compare with PyTorch, convert, save and report.

    Args:
        model: An eval-mode model with a RapidNet backbone (training or deploy form).
        task: 'classifier' or 'backbone'.
        input_size: Fixed ``(H, W)``, multiples of 32.
        norm: The model's input normalisation.
        out: Path of the ``.mlpackage`` to write.
        dilated_as_dense: Rewrite dilated convs as dense ones (for an on-device A/B).
        log: Progress printer.
        precision: 'fp16' (default, what the Neural Engine computes in) or 'fp32'.
        min_target: Minimum deployment target, 'iOS16' by default.
        compress: None, or a key of ``coreml_compress.COMPRESSIONS`` ('int8', 'palette6',
            'palette4'): compress the FP16 package's weights.
        min_psnr: PSNR floor (dB) for the compressed package (default: per mode).
        benchmark: macOS only: time this many predictions per compute unit after saving.
        metadata: Extra user-defined metadata for the package.

    Raises:
        ExportError: bad settings or a model that cannot be exported, before any conversion;
            a traced module that does not match the PyTorch model; a compressed package below
            the PSNR floor (then nothing is written at ``out``).
    """
    check_request(precision, min_target, compress, min_psnr, benchmark)
    module = prepare_export(model, task, input_size, norm, dilated_as_dense)
    check_coreml_convertible(module)
    names = output_names(model, task)
    sizes = describe(module)
    log(f'export module: {sizes["params"]:,} parameters, {sizes["dilated_convs"]} dilated convs; '
        f'tracing at {input_size[0]}x{input_size[1]}')
    example = torch.zeros(1, 3, *input_size)
    with torch.no_grad():
        traced = torch.jit.trace(module, example)
    numerics = check_numerics(model, task, traced, module, norm, names, input_size)
    log('traced module vs PyTorch model:\n' + numerics.format())
    if not numerics.ok():
        raise ExportError('the traced module does not reproduce the PyTorch model (see above); '
                          'not converting')
    log(f'converting to a Core ML ML program ({precision}, minimum target {min_target}) ...')
    meta = dict(task=task, input_size=f'{input_size[0]}x{input_size[1]}',
                dilated_as_dense=str(dilated_as_dense), normalization=(
                    f'image bias -mean {list(norm.mean)}; 1/std {list(norm.std)} folded into '
                    'the first conv'))
    meta.update(metadata or {})
    if compress is not None:
        meta['compression'] = compress
    mlmodel = convert(traced, input_size, norm, names, precision, min_target, meta)
    images = sample_images(input_size, norm.channel_order)

    def evaluate(label: str, path: str) -> List[float]:
        values = package_psnr(path, module, model, task, norm, images, precision == 'fp16')
        log(format_psnr(label, names, values, len(images)))
        return values

    scores = {}
    if compress is None:
        mlmodel.save(out)
        scores[precision] = evaluate(precision, out)
    else:
        scores[precision] = _evaluate_saved(mlmodel, out, lambda p: evaluate(precision, p))
        log(f'compressing the weights ({compress}) ...')
        scores[compress] = _save_compressed(compress_mlmodel(mlmodel, compress), out,
                                            lambda p: evaluate(compress, p),
                                            *min_psnr_for(compress, min_psnr), compress)
    latency = {}
    if benchmark:
        log(f'benchmark: {benchmark} predictions per compute unit')
        latency = benchmark_coreml(out, benchmark, log=log)
    return CoreMLExport(out, numerics, coreml_report(out, sizes['params']), sizes['params'],
                        sizes['dilated_convs'], scores, latency)


def _evaluate_saved(mlmodel, out: str, evaluate: Callable[[str], List[float]]) -> List[float]:
    """Evaluate ``mlmodel`` saved under a temporary name, then delete it."""
    tmp = save_atomically(mlmodel, out)
    try:
        return evaluate(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _save_compressed(mlmodel, out: str, evaluate: Callable[[str], List[float]], floor: float,
                     source: str, compress: str) -> List[float]:
    """Save the compressed package under a temporary name, evaluate it, and move it to ``out``
    only when every output's PSNR reaches ``floor``; otherwise delete it and raise."""
    tmp = save_atomically(mlmodel, out)
    try:
        values = evaluate(tmp)
        worst = min(values)
        if not worst >= floor:  # also catches NaN
            raise ExportError(f'the {compress} package reaches only {worst:.1f} dB PSNR against '
                              f'the FP32 model, below the {floor:g} dB floor ({source}); nothing '
                              f'was written to {out}: choose a milder --compress or lower '
                              '--min-psnr')
        if osp.isdir(out):
            shutil.rmtree(out)
        os.replace(tmp, out)
        return values
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _walk_ops(block) -> List:
    ops = []
    for op in block.operations:
        ops.append(op)
        for inner in op.blocks:
            ops.extend(_walk_ops(inner))
    return ops


def _int_values(op) -> Optional[List[int]]:
    value = op.attributes['val'].immediateValue if 'val' in op.attributes else None
    if value is None or not value.HasField('tensor') or not value.tensor.HasField('ints'):
        return None
    return list(value.tensor.ints.values)


def _numel(tensor_type) -> int:
    n = 1
    for dim in tensor_type.dimensions:
        n *= dim.constant.size
    return n


def _feature_type(feature) -> str:
    kind = feature.type.WhichOneof('Type')
    if kind == 'imageType':
        from coremltools.proto import FeatureTypes_pb2
        it = feature.type.imageType
        space = FeatureTypes_pb2.ImageFeatureType.ColorSpace.Name(it.colorSpace)
        return f'image {it.width}x{it.height} {space}'
    if kind == 'multiArrayType':
        from coremltools.proto import FeatureTypes_pb2
        mt = feature.type.multiArrayType
        dtype = FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Name(mt.dataType)
        return f'multiarray {"x".join(map(str, mt.shape))} {dtype}'
    return kind or 'unknown'


def package_bytes(path: str) -> int:
    """Total size of the files in a .mlpackage directory (or of a file)."""
    if osp.isfile(path):
        return osp.getsize(path)
    return sum(osp.getsize(osp.join(root, f)) for root, _, files in os.walk(path) for f in files)


@dataclass
class CoreMLReport:
    """The facts about a saved Core ML package that can be read without macOS."""
    path: str
    model_type: str
    spec_version: int
    min_target: str
    inputs: List[Tuple[str, str, str]]  # name, type, description
    outputs: List[Tuple[str, str, str]]
    op_histogram: Counter
    weights_by_dtype: Dict[str, int]
    size_bytes: int
    dilated_convs: int
    metadata: Dict[str, str] = field(default_factory=dict)
    expected_params: Optional[int] = None

    @property
    def weight_count(self) -> int:
        return sum(self.weights_by_dtype.values())

    @property
    def bytes_per_weight(self) -> float:
        return self.size_bytes / max(self.weight_count, 1)

    @property
    def non_ane_ops(self) -> Dict[str, int]:
        return {op: n for op, n in self.op_histogram.items() if op not in ANE_FRIENDLY_OPS}

    def format(self) -> str:
        lines = [f'Core ML report: {self.path}',
                 f'  model type: {self.model_type}, specification version {self.spec_version} '
                 f'(minimum target {self.min_target})']
        for kind, feats in (('input', self.inputs), ('output', self.outputs)):
            for name, typ, desc in feats:
                lines.append(f'  {kind} {name!r}: {typ}' + (f' - {desc}' if desc else ''))
        total = self.weight_count
        lines.append('  weights: ' + ', '.join(
            f'{n:,} {dtype} ({100 * n / max(total, 1):.2f}%)'
            for dtype, n in sorted(self.weights_by_dtype.items(), key=lambda kv: -kv[1])))
        if self.expected_params is not None:
            lines.append(f'  PyTorch export module parameters: {self.expected_params:,}')
        lines.append(f'  package size: {self.size_bytes:,} bytes = {self.bytes_per_weight:.3f} '
                     'bytes per weight (FP16 ~2, FP32 ~4; int8 ~1, palette6 ~0.75, palette4 ~0.5 '
                     'plus the uncompressed small tensors)')
        ops = ', '.join(f'{op} {n}' for op, n in self.op_histogram.most_common() if op != 'const')
        lines.append(f'  ops ({sum(self.op_histogram.values()) - self.op_histogram["const"]} '
                     f'besides {self.op_histogram["const"]} const): {ops}')
        lines.append(f'  dilated convs: {self.dilated_convs}'
                     + (' (a suspected Neural Engine fallback; compare with --dilated-as-dense '
                        'on the device)' if self.dilated_convs else ''))
        outside = self.non_ane_ops
        lines.append('  ops outside the Neural-Engine-friendly list: '
                     + (', '.join(f'{op} {n}' for op, n in sorted(outside.items()))
                        if outside else 'none'))
        return '\n'.join(lines)


def coreml_report(path: str, expected_params: Optional[int] = None) -> CoreMLReport:
    """Read a saved Core ML package's specification (no macOS needed) and summarise it."""
    import coremltools as ct
    from coremltools.proto import MIL_pb2
    if not osp.exists(path):
        raise FileNotFoundError(f'no Core ML package at {path}')
    spec = ct.utils.load_spec(path)
    model_type = spec.WhichOneof('Type')
    targets = [t.name for t in ct.target if t.name.startswith('iOS')
               and t.value == spec.specificationVersion]
    ops: List = []
    if model_type == 'mlProgram':
        for function in spec.mlProgram.functions.values():
            for block in function.block_specializations.values():
                ops.extend(_walk_ops(block))
    histogram = Counter(op.type for op in ops)
    consts = {op.outputs[0].name: op for op in ops if op.type == 'const'}
    weights: Counter = Counter()
    compressed = [op for op in ops if op.type.startswith('constexpr_')]
    # a compressed weight counts once, under its op; its look-up table or scales are not weights
    parts = {arg.name for op in compressed for arg_list in op.inputs.values()
             for arg in arg_list.arguments}
    for op in compressed:
        weights[op.type] += _numel(op.outputs[0].type.tensorType)
    for name, op in consts.items():
        ttype = op.outputs[0].type.tensorType
        dtype = MIL_pb2.DataType.Name(ttype.dataType)
        if name not in parts and ttype.rank >= 1 and dtype.startswith(('FLOAT', 'BFLOAT')):
            weights[dtype] += _numel(ttype)
    dilated = 0
    for op in ops:
        if op.type == 'conv' and 'dilations' in op.inputs:
            source = consts.get(op.inputs['dilations'].arguments[0].name)
            values = _int_values(source) if source is not None else None
            dilated += bool(values and max(values) > 1)
    desc = spec.description
    return CoreMLReport(
        path=path, model_type=model_type, spec_version=spec.specificationVersion,
        min_target=targets[0] if targets else 'unknown',
        inputs=[(f.name, _feature_type(f), f.shortDescription) for f in desc.input],
        outputs=[(f.name, _feature_type(f), f.shortDescription) for f in desc.output],
        op_histogram=histogram, weights_by_dtype=dict(weights), size_bytes=package_bytes(path),
        dilated_convs=dilated, metadata=dict(desc.metadata.userDefined),
        expected_params=expected_params)


class NeedsMacOS(RapidNetError, RuntimeError):
    """Core ML prediction runs only on macOS: a request refused on other systems."""


def check_benchmark_platform() -> None:
    if sys.platform != 'darwin':
        raise NeedsMacOS(f'--benchmark needs macOS: Core ML runs predictions only there (this '
                         f'is {sys.platform}); export here and benchmark on a Mac, or on the '
                         'iPhone with Xcode (docs/deployment.md)')


def benchmark_coreml(path: str, runs: int, warmup: int = 20,
                     compute_units: Sequence[str] = COMPUTE_UNITS,
                     log: Callable[[str], None] = print) -> Dict[str, float]:
    """Median latency in ms over ``runs`` predictions after ``warmup``, per compute-unit setting.

    Raises:
        NeedsMacOS: anywhere but macOS.
    """
    check_benchmark_platform()
    import coremltools as ct
    from PIL import Image
    spec = ct.utils.load_spec(path)
    image_type = spec.description.input[0].type.imageType
    image = Image.new('RGB', (image_type.width, image_type.height), (124, 116, 104))
    results = {}
    for unit in compute_units:
        model = ct.models.MLModel(path, compute_units=getattr(ct.ComputeUnit, unit))
        for _ in range(warmup):
            model.predict({'image': image})
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            model.predict({'image': image})
            times.append((time.perf_counter() - start) * 1e3)
        results[unit] = statistics.median(times)
        log(f'  {unit:<12} median {results[unit]:.3f} ms over {runs} runs (after {warmup} '
            'warm-up runs)')
    return results
