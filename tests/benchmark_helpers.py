"""Shared by tests/test_deploy_benchmark*.py: tiny modules for the benchmark's worker processes
(importable there, so they travel with the pickled subjects) and subjects with synthetic timings
for its report."""
from typing import Dict, Optional

import torch
import torch.nn as nn

from rapidnet_mm.analysis.subjects import Accuracy, Subject
from rapidnet_mm.timing import Timing


class TinyNet(nn.Module):
    """A convolution and a pooled linear layer: a classifier small enough to time in tests."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).mean((2, 3)))


class UntraceableNet(TinyNet):
    """:class:`TinyNet` whose forward refuses to be traced: every runtime that traces or exports
    it fails, as a peer's unsupported operator would, while eager runs it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_tracing():
            raise RuntimeError('this operator cannot be exported\n(second line of the message)')
        return super().forward(x)


def tiny_subject(name: str, deploy: nn.Module) -> Subject:
    train = TinyNet()
    deploy.load_state_dict(train.state_dict())
    return Subject(name, 'classifier', dict(train=train.eval(), deploy=deploy.eval()),
                   dict(train=79, deploy=79))


def timed_subject(name: str, latencies: Dict[str, float], top1: Optional[float] = None,
                  failures: Optional[Dict[str, str]] = None) -> Subject:
    """A subject as :func:`~rapidnet_mm.analysis.benchmark.measure` leaves it, with the given
    batch-1 median latencies (ms) per label, exact outputs, and an optional top-1."""
    accuracy = Accuracy(top1, 224, 'synthetic') if top1 is not None else None
    subject = Subject(name, 'classifier', {}, dict(train=1_000_000, deploy=900_000), accuracy,
                      macs=10**8)
    subject.results[1] = {n: Timing(ms, ms * 0.9, ms * 1.1, 10) for n, ms in latencies.items()}
    subject.diffs = {n: 1e-7 if not n.endswith('-int8') else 1e-2 for n in latencies}
    if failures:
        subject.failures[1] = dict(failures)
    return subject
