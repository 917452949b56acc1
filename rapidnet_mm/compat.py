"""Narrow fixes for running OpenMMLab 2.x on current PyTorch, applied on import."""
import torch


def allow_mmengine_checkpoint_globals() -> None:
    """Let ``torch.load(weights_only=True)`` (the default since torch 2.6, used plainly by
    mmengine's ``load_checkpoint`` and resume) read mmengine's own checkpoints.

    mmengine pickles its message hub (``HistoryBuffer`` with numpy arrays and scalars) into
    ``meta``. Exactly those types are allowed; everything else stays refused.
    """
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer
    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar
    allowed = [HistoryBuffer, _reconstruct, scalar, np.ndarray, np.dtype]
    # numpy >= 1.25 pickles dtypes as instances of their per-type classes (numpy.dtypes.*).
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        allowed += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith('DType')]
    torch.serialization.add_safe_globals(allowed)


allow_mmengine_checkpoint_globals()
