"""Narrow fixes for running OpenMMLab 2.x on current PyTorch, applied on import."""
import torch

# HistoryBuffer registers these itself whenever it is created or unpickled.
_DEFAULT_STATISTICS = ('min', 'max', 'current', 'mean')


def _history_buffer_state(self) -> dict:
    """``HistoryBuffer.__getstate__`` without the built-in statistics functions.

    mmengine pickles its four default statistics methods as ``getattr(HistoryBuffer, 'min')``
    etc.; allowing ``builtins.getattr`` in torch's weights-only unpickler would let a checkpoint
    reach arbitrary attributes, so we keep those references out of new checkpoints instead
    (``__setstate__`` re-registers the defaults). Custom statistics are still saved.
    """
    state = dict(self.__dict__)
    state.pop('statistics_methods', None)
    custom = {k: v for k, v in self._statistics_methods.items() if k not in _DEFAULT_STATISTICS}
    if custom:
        state['statistics_methods'] = custom
    return state


def allow_mmengine_checkpoint_globals() -> None:
    """Let ``torch.load(weights_only=True)`` (the default since torch 2.6, used plainly by
    mmengine's ``load_checkpoint`` and resume) read mmengine's own checkpoints.

    mmengine pickles its message hub (``HistoryBuffer`` with numpy arrays and scalars) into the
    checkpoint. Exactly those types are allowed; everything else stays refused. Checkpoints
    written before this fix (by mmengine on its own) also hold ``getattr`` references and stay
    refused by torch's default; load those only if you trust them.
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
    HistoryBuffer.__getstate__ = _history_buffer_state


allow_mmengine_checkpoint_globals()
