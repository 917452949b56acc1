"""Nearest-neighbour upsampling by a power-of-two factor as a depthwise transposed convolution,
rewritten in an exported program before it is lowered to XNNPACK.

XNNPACK's partitioner in ExecuTorch 1.5.1 takes no nearest-neighbour resize (its only resize is
``upsample_bilinear2d``), so an FPN's ``F.interpolate(..., mode='nearest')`` would run on
ExecuTorch's portable kernels between delegate calls. A transposed convolution with kernel and
stride ``f``, a kernel of ones per channel (groups = channels) and no bias copies each input pixel
into an ``f x f`` block: each output is one input times 1.0, the nearest-neighbour result exactly.

PyTorch picks the source pixel ``floor(dst * s)`` with ``s`` the float32 of ``1/f``. Only factors
that are powers of two are rewritten: there ``s`` is exact, so the source is ``dst // f`` as the
convolution's. Outputs of other sizes, other factors, or scales that disagree with the sizes stay
``upsample_nearest2d`` (and the export report names them as not delegated).
"""
from typing import Optional, Tuple

import torch

NEAREST = torch.ops.aten.upsample_nearest2d.vec


def _power_of_two(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


def exact_factors(node: torch.fx.Node) -> Optional[Tuple[int, int]]:
    """The (height, width) factors of an ``upsample_nearest2d.vec`` node that a transposed
    convolution computes exactly, or None.

    Args:
        node: A node of an exported program's graph (with its ``'val'`` metadata).
    """
    if node.op != 'call_function' or node.target != NEAREST:
        return None
    source, result = node.args[0].meta['val'], node.meta['val']
    if source.dim() != 4:
        return None
    (h, w), (out_h, out_w) = source.shape[-2:], result.shape[-2:]
    if out_h % h or out_w % w:
        return None
    factors = (out_h // h, out_w // w)
    if factors == (1, 1) or not all(_power_of_two(f) for f in factors):
        return None
    scales = node.args[2] if len(node.args) > 2 else None
    # PyTorch indexes by the scales when given: they must be the factors themselves
    if scales is not None and tuple(scales) != factors:
        return None
    return factors


def nearest_as_transposed_conv(program: torch.export.ExportedProgram) -> int:
    """Replace every exact nearest-neighbour upsampling of ``program`` (:func:`exact_factors`)
    by a depthwise transposed convolution with a ones kernel, in place.

    Args:
        program: A program from ``torch.export`` (fp32, or int8 from PT2E), not yet lowered.

    Returns:
        How many upsamplings were rewritten.
    """
    from executorch.backends.transforms.utils import create_constant_placeholder
    from torch.export.graph_signature import InputKind

    graph = program.graph_module.graph
    targets = [(node, exact_factors(node)) for node in graph.nodes]
    targets = [(node, factors) for node, factors in targets if factors is not None]
    if not targets:
        return 0
    user_inputs = {spec.arg.name for spec in program.graph_signature.input_specs
                   if spec.kind == InputKind.USER_INPUT}
    # constants must come before the program's own inputs
    first_input = next(n for n in graph.nodes if n.op == 'placeholder' and n.name in user_inputs)
    for node, factors in targets:
        source = node.args[0]
        channels, dtype = source.meta['val'].shape[1], source.meta['val'].dtype
        with graph.inserting_before(first_input):
            # one kernel per (channels, factors), shared by the upsamplings that match it
            ones = create_constant_placeholder(
                program, graph, f'nearest_ones_{channels}x{factors[0]}x{factors[1]}',
                InputKind.CONSTANT_TENSOR, torch.ones(channels, 1, *factors, dtype=dtype))
        with graph.inserting_before(node):
            conv = graph.call_function(torch.ops.aten.conv_transpose2d.input,
                                       (source, ones, None, list(factors), [0, 0], [0, 0],
                                        channels))
        conv.meta.update(node.meta)
        node.replace_all_uses_with(conv)
        graph.erase_node(node)
    program.graph_module.recompile()
    return len(targets)
