"""The ImageNet configs train at the authors' learning rate, epoch by epoch: timm's
CosineLRScheduler(t_initial=300, lr_min=1e-5, warmup_t=20, warmup_lr_init=1e-6,
warmup_prefix=False) stepped as the authors' DeiT script steps it (``step(epoch)`` after each
epoch), for all 300 epochs, at the configs' peak and at ``--auto-scale-lr`` peaks."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import PARAM_SCHEDULERS, DefaultScope
from timm.scheduler import CosineLRScheduler
from tool_helpers import ROOT

import rapidnet_mm  # noqa: F401  (registers TimmCosineLR)

pytestmark = pytest.mark.core  # also run in the torch 2.1 stack

# Every config that claims the authors' recipe (the ablations and deploy forms inherit it).
RECIPE_CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs/cls/rapidnet_*_in1k.py'))
                        + glob.glob(osp.join(ROOT, 'configs/cls/ablation/*.py'))
                        + glob.glob(osp.join(ROOT, 'configs/cls/deploy/*.py')))
AUTHORS_SCHEDULE = dict(t_initial=300, lr_min=1e-5, warmup_t=20, warmup_lr_init=1e-6,
                        warmup_prefix=False)
EPOCHS = 300
# --auto-scale-lr: 128 images per GPU on 1, 8, 16 (the configs' 2048) and 32 GPUs
SCALES = [128 / 2048, 8 * 128 / 2048, 1.0, 32 * 128 / 2048]


def one_parameter_optimizer(lr: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def authors_curve(peak: float, epochs: int = EPOCHS) -> list:
    """The lr of each epoch in the authors' main.py: timm's scheduler, ``step(epoch)`` after
    training epoch ``epoch``."""
    optimizer = one_parameter_optimizer(peak)
    scheduler = CosineLRScheduler(optimizer, **AUTHORS_SCHEDULE)
    lrs = []
    for epoch in range(epochs):
        lrs.append(optimizer.param_groups[0]['lr'])
        scheduler.step(epoch)
    return lrs


def config_curve(cfg: Config, peak: float, epochs: int = EPOCHS) -> list:
    """The lr of each epoch under the config's param_scheduler, stepped as mmengine's
    ParamSchedulerHook steps by-epoch schedulers (built at the start, stepped after each
    epoch)."""
    optimizer = one_parameter_optimizer(peak)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        schedulers = [PARAM_SCHEDULERS.build(dict(s, optimizer=optimizer))
                      for s in cfg.param_scheduler]
    assert all(s.by_epoch for s in schedulers)
    lrs = []
    for _ in range(epochs):
        lrs.append(optimizer.param_groups[0]['lr'])
        optimizer.step()
        for scheduler in schedulers:
            scheduler.step()
    return lrs


def max_relative_difference(a: list, b: list) -> float:
    return max(abs(x - y) / abs(y) for x, y in zip(a, b))


def test_the_authors_curve_as_the_issue_states_it():
    """The reference itself: epochs 0 and 1 at 1e-6, the warm-up reaching 20/20 of it at epoch
    21, then timm's cosine read one epoch late."""
    import math
    peak = 4e-3
    lrs = authors_curve(peak)
    assert lrs[0] == lrs[1] == 1e-6
    assert lrs[2] == pytest.approx(1e-6 + (peak - 1e-6) / 20, rel=1e-12)
    cosine = [1e-5 + 0.5 * (peak - 1e-5) * (1 + math.cos(math.pi * t / 300)) for t in range(300)]
    assert lrs[21] == pytest.approx(cosine[20], rel=1e-12)  # 98.9% of the peak
    assert lrs[161] == pytest.approx(cosine[160], rel=1e-12)  # 0.448 of the peak
    assert lrs[299] == pytest.approx(cosine[298], rel=1e-12)


@pytest.mark.parametrize('path', RECIPE_CONFIGS, ids=lambda p: osp.relpath(p, ROOT))
def test_every_epoch_matches_timm(path):
    cfg = Config.fromfile(path)
    assert cfg.train_cfg.max_epochs == EPOCHS and cfg.auto_scale_lr.base_batch_size == 2048
    for scale in SCALES:
        peak = cfg.optim_wrapper.optimizer.lr * scale
        ours, authors = config_curve(cfg, peak), authors_curve(peak)
        assert len(ours) == len(authors) == EPOCHS
        assert max_relative_difference(ours, authors) <= 1e-9, scale


def test_recipe_configs_are_all_found():
    names = {osp.relpath(p, ROOT) for p in RECIPE_CONFIGS}
    assert len([n for n in names if n.startswith('configs/cls/rapidnet_')]) == 4
    assert len([n for n in names if '/deploy/' in n]) == 4
    assert len([n for n in names if '/ablation/' in n]) == len(
        glob.glob(osp.join(ROOT, 'configs/cls/ablation/*.py'))) == 9


def test_repvit_imagenet_configs_claim_no_schedule():
    """The RepViT ImageNet configs are evaluation only: no training schedule to compare."""
    for path in glob.glob(osp.join(ROOT, 'configs/repvit/*_in1k.py')):
        cfg = Config.fromfile(path)
        assert cfg.get('param_scheduler') is None and cfg.get('train_cfg') is None, path


def test_mmengine_runner_trains_each_epoch_at_that_lr(tmp_path):
    """Through a real Runner: --auto-scale-lr's scaling happens before the scheduler is built,
    and each epoch's iterations run at the authors' value for that epoch."""
    from mmengine.hooks import Hook
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    class Toy(BaseModel):

        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(1))

        def forward(self, inputs, data_samples=None, mode='tensor'):
            loss = (self.weight * inputs).sum()
            return dict(loss=loss) if mode == 'loss' else loss

    class RecordLr(Hook):

        def __init__(self):
            self.lrs = []

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            self.lrs.append((runner.epoch, runner.optim_wrapper.get_lr()['lr'][0]))

    cfg = Config.fromfile(osp.join(ROOT, 'configs/cls/rapidnet_s_in1k.py'))
    record = RecordLr()
    epochs, batch = 4, 2
    runner = Runner(
        model=Toy(), work_dir=str(tmp_path),
        train_dataloader=dict(dataset=[dict(inputs=torch.tensor(1.0))] * 4, batch_size=batch,
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=cfg.optim_wrapper.optimizer.lr)),
        param_scheduler=cfg.param_scheduler, auto_scale_lr=dict(cfg.auto_scale_lr, enable=True),
        train_cfg=dict(by_epoch=True, max_epochs=epochs), custom_hooks=[record],
        default_hooks=dict(checkpoint=None, logger=None), default_scope='mmpretrain')
    runner.train()
    peak = cfg.optim_wrapper.optimizer.lr * batch / 2048
    expected = authors_curve(peak, epochs)
    assert [e for e, _ in record.lrs] == [0, 0, 1, 1, 2, 2, 3, 3]  # two iterations per epoch
    for epoch, lr in record.lrs:
        assert lr == pytest.approx(expected[epoch], rel=1e-12), (epoch, lr, expected)
    assert expected[0] == expected[1] == 1e-6 and expected[3] > expected[2] > 1e-6
