"""The authors' ImageNet learning-rate curve as an mmengine parameter scheduler.

The authors' DeiT-derived ``main.py`` builds timm's ``CosineLRScheduler`` (``t_initial=300``,
``lr_min=1e-5``, ``warmup_t=20``, ``warmup_lr_init=1e-6``, ``warmup_prefix=False``) and, as DeiT
does, calls ``lr_scheduler.step(epoch)`` after each epoch with the index of the epoch that has
just finished. So epoch ``e`` trains at timm's ``lr(max(e - 1, 0))``: the linear warm-up over
``t < 20`` overrides the start of a cosine that spans all 300 epochs, and the whole curve lags one
epoch (epochs 0 and 1 both run at 1e-6).

Our own because no composition of mmengine's schedulers gives these values: mmengine's cosines
(``CosineAnnealingLR``, ``CosineRestartLR``, ``OneCycleLR``) all start at phase 0 where they
begin, while timm's is already at phase 20/300 where its warm-up ends, and mmengine's schedulers
that overlap multiply their factors rather than letting the warm-up override the cosine.
"""
import math
from typing import List

from mmengine.optim.scheduler.lr_scheduler import LRSchedulerMixin
from mmengine.optim.scheduler.param_scheduler import INF, _ParamScheduler
from mmengine.registry import PARAM_SCHEDULERS


class TimmCosineParamScheduler(_ParamScheduler):
    """timm's ``CosineLRScheduler`` (one cycle, ``warmup_prefix=False``) per epoch, read
    ``epoch_lag`` epochs late.

    The value at step ``s`` (counted from ``begin``) is timm's at ``t = max(s - epoch_lag, 0)``:
    ``warmup_value_init + t * (peak - warmup_value_init) / warmup_t`` while ``t < warmup_t``,
    else ``value_min + (peak - value_min) * (1 + cos(pi * t / t_initial)) / 2`` up to
    ``t_initial``, then ``value_min``. The peak is each parameter group's value when the
    scheduler is built (after ``--auto-scale-lr`` scaled it); ``value_min`` and
    ``warmup_value_init`` are absolute, as in timm.

    Args:
        optimizer: The optimizer (wrapper).
        param_name: The parameter to schedule.
        t_initial: Length of the cosine, in epochs (warm-up included).
        value_min: Value at the end of the cosine.
        warmup_t: Epochs of linear warm-up, which override the cosine's start.
        warmup_value_init: Value at the start of the warm-up.
        epoch_lag: How many epochs late the curve is read; 1 is DeiT's ``step(epoch)`` after
            each epoch, 0 reads it at the epoch being trained.
        begin, end, last_step, by_epoch, verbose: As every mmengine parameter scheduler; only
            ``by_epoch=True`` is timm's per-epoch stepping.
    """

    def __init__(self, optimizer, param_name: str, t_initial: int, value_min: float = 0.,
                 warmup_t: int = 0, warmup_value_init: float = 0., epoch_lag: int = 1,
                 begin: int = 0, end: int = INF, last_step: int = -1, by_epoch: bool = True,
                 verbose: bool = False) -> None:
        if t_initial <= 0 or not 0 <= warmup_t < t_initial:
            raise ValueError(f'need t_initial > warmup_t >= 0, got t_initial={t_initial}, '
                             f'warmup_t={warmup_t}')
        if epoch_lag < 0:
            raise ValueError(f'epoch_lag must be >= 0, got {epoch_lag}')
        if not by_epoch:
            raise ValueError('TimmCosineLR steps per epoch as timm does (by_epoch=True); its '
                             't_initial, warmup_t and epoch_lag are counted in epochs')
        self.t_initial = t_initial
        self.value_min = value_min
        self.warmup_t = warmup_t
        self.warmup_value_init = warmup_value_init
        self.epoch_lag = epoch_lag
        super().__init__(optimizer, param_name, begin=begin, end=end, last_step=last_step,
                         by_epoch=by_epoch, verbose=verbose)

    def timm_value(self, peak: float, t: int) -> float:
        """timm's value at epoch ``t`` for a group whose base value is ``peak`` (its
        expressions, in its order)."""
        if t < self.warmup_t:
            return self.warmup_value_init + t * ((peak - self.warmup_value_init) / self.warmup_t)
        if t >= self.t_initial:  # timm's cycle_limit=1: after the cycle, the minimum
            return self.value_min
        return self.value_min + 0.5 * (peak - self.value_min) * (
            1 + math.cos(math.pi * t / self.t_initial))

    def _get_value(self) -> List[float]:
        t = max(self.last_step - self.epoch_lag, 0)
        return [self.timm_value(peak, t) for peak in self.base_values]


@PARAM_SCHEDULERS.register_module()
class TimmCosineLR(LRSchedulerMixin, TimmCosineParamScheduler):
    """:class:`TimmCosineParamScheduler` of the learning rate: ``value_min`` is timm's
    ``lr_min`` and ``warmup_value_init`` its ``warmup_lr_init``.

    The recipe (configs/cls/rapidnet_ti_in1k.py)::

        dict(type='TimmCosineLR', t_initial=300, value_min=1e-5, warmup_t=20,
             warmup_value_init=1e-6, epoch_lag=1, by_epoch=True, begin=0, end=300)
    """


__all__ = ['TimmCosineLR', 'TimmCosineParamScheduler']
