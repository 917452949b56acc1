"""Core ML predictions timed per compute unit (``--benchmark N``): macOS only, where Core ML runs
predictions; elsewhere a one-line refusal before anything is built.
"""
import statistics
import sys
import time
from typing import Callable, Dict, Sequence

from ..errors import RapidNetError

COMPUTE_UNITS = ('ALL', 'CPU_AND_NE', 'CPU_AND_GPU', 'CPU_ONLY')


class NeedsMacOS(RapidNetError, RuntimeError):
    """Core ML prediction runs only on macOS: a request refused on other systems."""


def check_benchmark_platform() -> None:
    if sys.platform != 'darwin':
        raise NeedsMacOS(f'--benchmark needs macOS: Core ML runs predictions only there (this '
                         f'is {sys.platform}); export here and benchmark on a Mac, or on the '
                         'iPhone with Xcode (docs/deployment.md)')


def benchmark_coreml(path: str, runs: int, warmup: int = 20,
                     compute_units: Sequence[str] = COMPUTE_UNITS,
                     log: Callable[[str], None] = print) -> Dict[str, float]:
    """Median latency in ms over ``runs`` predictions after ``warmup``, per compute-unit setting.

    Raises:
        NeedsMacOS: anywhere but macOS.
    """
    check_benchmark_platform()
    import coremltools as ct
    from PIL import Image
    spec = ct.utils.load_spec(path)
    image_type = spec.description.input[0].type.imageType
    image = Image.new('RGB', (image_type.width, image_type.height), (124, 116, 104))
    results = {}
    for unit in compute_units:
        model = ct.models.MLModel(path, compute_units=getattr(ct.ComputeUnit, unit))
        for _ in range(warmup):
            model.predict({'image': image})
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            model.predict({'image': image})
            times.append((time.perf_counter() - start) * 1e3)
        results[unit] = statistics.median(times)
        log(f'  {unit:<12} median {results[unit]:.3f} ms over {runs} runs (after {warmup} '
            'warm-up runs)')
    return results
