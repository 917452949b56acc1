"""Wall-clock timing shared by the benchmark (``analysis/``) and the int8 latency report
(``deploy/``): interleaved calls, so that a machine shared with other work slows every form
alike, summarised as median and interquartile range."""
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence


@dataclass
class Timing:
    """Per-call wall time in milliseconds over ``runs`` timed calls."""
    median_ms: float
    q1_ms: float
    q3_ms: float
    runs: int

    def format(self) -> str:
        return f'{self.median_ms:.2f} [{self.q1_ms:.2f}-{self.q3_ms:.2f}]'


def summarize(times_ms: Sequence[float]) -> Timing:
    ordered = sorted(times_ms)
    if len(ordered) >= 4:
        q1, _, q3 = statistics.quantiles(ordered, n=4)
    else:
        q1, q3 = ordered[0], ordered[-1]
    return Timing(statistics.median(ordered), q1, q3, len(ordered))


def time_interleaved(fns: Dict[str, Callable[[], object]], warmup: int, runs: int,
                     synchronize: Callable[[], None] = lambda: None) -> Dict[str, Timing]:
    """Time each callable ``runs`` times after ``warmup`` calls, interleaving them."""
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    synchronize()
    times: Dict[str, List[float]] = {n: [] for n in names}
    for i in range(runs):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            fns[name]()
            synchronize()
            times[name].append((time.perf_counter() - start) * 1e3)
    return {n: summarize(t) for n, t in times.items()}
