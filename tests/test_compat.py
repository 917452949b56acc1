"""mmengine checkpoints load and resume through mmengine's own loader, weights only, nothing
more: on torch >= 2.6 through torch's weights_only default, on older torch through rapidnet_mm's
replacement of mmengine's loader (rapidnet_mm.compat)."""
import argparse
import pickle

import pytest
import torch
import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import CheckpointLoader, Runner
from torch.torch_version import TorchVersion

import rapidnet_mm  # noqa: F401  (applies the fix)


class ToyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 1)

    def forward(self, inputs, labels=None, mode='tensor'):
        out = self.linear(torch.stack(inputs))
        if mode == 'loss':
            return dict(loss=((out.squeeze(1) - torch.stack(labels))**2).mean())
        return out


class ToyDataset(torch.utils.data.Dataset):

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return dict(inputs=torch.full((4, ), float(i)), labels=torch.tensor(float(i % 3)))


class RecordIters(Hook):

    def __init__(self):
        self.seen = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.seen.append(runner.iter)


def make_runner(work_dir, resume=False, max_iters=2, hooks=()):
    return Runner(
        model=ToyModel(), work_dir=str(work_dir),
        train_dataloader=dict(dataset=ToyDataset(), sampler=dict(type='DefaultSampler',
                                                                 shuffle=False),
                              batch_size=2, num_workers=0),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=list(hooks), resume=resume, default_scope='mmengine')


@pytest.mark.core
def test_resume_from_mmengine_checkpoint(tmp_path):
    runner = make_runner(tmp_path)
    runner.train()
    ckpt = tmp_path / 'iter_2.pth'
    assert ckpt.exists()
    # the loader mmengine's resume and load_from use must accept its own checkpoint
    state = CheckpointLoader.load_checkpoint(str(ckpt), map_location='cpu')
    assert 'message_hub' in state and state['meta']['iter'] == 2
    recorder = RecordIters()
    resumed = make_runner(tmp_path, resume=True, max_iters=4, hooks=[recorder])
    resumed.train()
    assert recorder.seen == [2, 3]  # continued after the checkpoint, did not restart
    assert resumed.iter == 4
    # the resumed message hub still computes its statistics (defaults re-registered)
    loss = resumed.message_hub.get_scalar('train/loss')
    assert loss.mean() == pytest.approx(sum(loss.data[0]) / len(loss.data[0]))
    assert loss.min() <= loss.max()


@pytest.mark.core
def test_other_pickled_types_are_still_refused(tmp_path):
    path = tmp_path / 'foreign.pth'
    torch.save({'args': argparse.Namespace(lr=1.0)}, path)
    with pytest.raises(pickle.UnpicklingError, match='argparse.Namespace'):
        CheckpointLoader.load_checkpoint(str(path), map_location='cpu')


@pytest.mark.skipif(TorchVersion(torch.__version__) < '2.6',
                    reason="torch < 2.6's plain torch.load unpickles anything; rapidnet_mm makes "
                    "mmengine's loader weights-only instead (test above)")
def test_torchs_own_default_refuses_other_types(tmp_path):
    path = tmp_path / 'foreign.pth'
    torch.save({'args': argparse.Namespace(lr=1.0)}, path)
    with pytest.raises(pickle.UnpicklingError, match='Namespace'):
        torch.load(path)
