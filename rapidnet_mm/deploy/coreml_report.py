"""The facts about a saved Core ML package that can be read without macOS: its type, target,
inputs and outputs, weights by data type, size, ops, dilated convolutions and the ops outside
the Neural-Engine-friendly list (``CoreMLReport``, printed after every Core ML export).
"""
import os
import os.path as osp
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

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
