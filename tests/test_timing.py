"""rapidnet_mm/timing.py: the interleaved timing the benchmark and the int8 report share (no
speed is asserted)."""
import pytest

from rapidnet_mm.timing import summarize, time_interleaved

pytestmark = pytest.mark.core


def test_summarize_median_and_quartiles():
    t = summarize([5.0, 1.0, 4.0, 2.0, 3.0])
    assert (t.median_ms, t.q1_ms, t.q3_ms, t.runs) == (3.0, 1.5, 4.5, 5)


def test_time_interleaved_runs_each_form_alike():
    calls = []
    fns = {name: (lambda n=name: calls.append(n)) for name in ('train', 'deploy')}
    result = time_interleaved(fns, warmup=2, runs=3)
    assert calls.count('train') == calls.count('deploy') == 5
    assert calls[4:] == ['train', 'deploy', 'deploy', 'train', 'train', 'deploy']  # rotating
    assert set(result) == {'train', 'deploy'} and result['train'].runs == 3
