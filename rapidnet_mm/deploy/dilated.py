"""Dilated convolutions rewritten as the equivalent dense convolutions.

A k x k kernel with dilation d samples a ((k-1)d+1)-wide window at every d-th position; a dense
kernel of that width holding the same taps at those positions and zeros between them computes
the same output. Dilated convolutions are a suspected Neural Engine fallback, so exporting both
forms lets users compare them on the device (the dense form costs more MACs: 25/9 for d=2 and
49/9 for d=3).
"""
import torch
import torch.nn as nn


@torch.no_grad()
def dense_equivalent(conv: nn.Conv2d) -> nn.Conv2d:
    """A dilation-1 Conv2d equal to ``conv``: its taps spread over the dilated window.

    Args:
        conv: A Conv2d with any dilation, zero padding.

    Raises:
        ValueError: a padding mode other than zeros (the rewrite keeps the padding amount, which
            is exact only for zero padding).
    """
    if conv.padding_mode != 'zeros':
        raise ValueError(f'cannot rewrite a dilated conv with padding_mode={conv.padding_mode!r}; '
                         'only zero padding keeps the dense form exact')
    (kh, kw), (dh, dw) = conv.kernel_size, conv.dilation
    size = ((kh - 1) * dh + 1, (kw - 1) * dw + 1)
    dense = nn.Conv2d(conv.in_channels, conv.out_channels, size, conv.stride, conv.padding,
                      1, conv.groups, bias=conv.bias is not None,
                      device=conv.weight.device, dtype=conv.weight.dtype)
    dense.weight.zero_()
    dense.weight[:, :, ::dh, ::dw] = conv.weight
    if conv.bias is not None:
        dense.bias.copy_(conv.bias)
    return dense


def dilated_to_dense(model: nn.Module) -> int:
    """Replace every Conv2d with dilation > 1 in ``model`` by its dense equivalent, in place.

    Returns:
        How many convolutions were rewritten.
    """
    targets = [(name, m) for name, m in model.named_modules()
               if name and isinstance(m, nn.Conv2d) and max(m.dilation) > 1]
    for name, conv in targets:
        parent_name, _, attr = name.rpartition('.')
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, dense_equivalent(conv))
    return len(targets)
