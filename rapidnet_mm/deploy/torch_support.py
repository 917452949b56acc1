"""Deployment features that need a newer torch than the oldest one rapidnet_mm supports (2.1),
and the one-line refusal elsewhere."""
import torch
from torch.torch_version import TorchVersion

from .export_module import ExportError

# Measured: torch 2.2.2 runs the export modules (convolution, linear, matmul, batch norm) in FP16
# on CPU; torch 2.1.2 has no half-precision CPU kernel for any of them.
CPU_FP16_TORCH = '2.2'


def require_torch(minimum: str, feature: str, reason: str) -> None:
    """Refuse ``feature`` on a torch older than ``minimum``.

    Args:
        minimum: The oldest torch release that has what ``feature`` uses, e.g. '2.2'.
        feature: What is refused, for the user (e.g. '--format coreml').
        reason: What it uses that older torch lacks.

    Raises:
        ExportError: one line naming the feature, the torch it needs and why.
    """
    if TorchVersion(torch.__version__) < minimum:
        raise ExportError(f'{feature} needs torch >= {minimum} ({reason}); this is torch '
                          f'{torch.__version__}: upgrade torch, or choose another format')
