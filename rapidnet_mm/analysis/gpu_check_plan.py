"""What every stage of the GPU check (:mod:`rapidnet_mm.analysis.gpu_check`) gets and gives:
the sizes of a run (:class:`Plan`), the report it fills, and the failure of a check."""
import datetime
import time
from dataclasses import dataclass
from typing import Dict, Optional

ARCHS = ('ti', 's', 'm', 'b')


@dataclass
class Plan:
    """Sizes of one check: the full one on CUDA, or the tiny CPU rehearsal."""
    det_iters: int = 30
    det_batch: int = 2
    det_scale: tuple = (1333, 800)   # mmdet (w, h)
    det_images: int = 32
    det_image_size: int = 256
    seg_iters: int = 30
    seg_batch: int = 8
    seg_crop: Optional[int] = None   # None: the recipe's 512
    seg_images: int = 32
    seg_image_sizes: tuple = (256, 512)
    cls_epochs: int = 3
    cls_batch: int = 128
    cls_per_class: int = 320         # 4 classes x 320 = 1280 images = 10 iterations of 128
    cls_size: Optional[int] = None   # None: the recipe's 224
    warmup_iters: int = 5
    workers: Optional[int] = None    # None: each config's own
    infer_batch: int = 256
    infer_size: int = 224
    infer_warmup: int = 10
    infer_runs: int = 50             # benchmark.measure times max(5, runs // 5) at batch > 1
    infer_archs: tuple = ARCHS
    infer_peers: Optional[tuple] = None  # None: all of subjects.PEERS
    backbone_batch: int = 2


REHEARSAL = Plan(det_iters=2, det_batch=2, det_scale=(128, 128), det_images=4, det_image_size=128,
                 seg_iters=3, seg_batch=2, seg_crop=64, seg_images=4, seg_image_sizes=(65, 128),
                 cls_epochs=2, cls_batch=4, cls_per_class=2, cls_size=64, warmup_iters=1,
                 workers=0, infer_batch=2, infer_size=64, infer_warmup=1, infer_runs=5,
                 infer_archs=('ti', ), infer_peers=('mobilenetv2_140', ))


class Report:
    """Everything the check found, written as JSON and markdown; every substitution recorded."""

    def __init__(self, rehearsal: bool) -> None:
        self.data: dict = dict(
            mode='cpu-rehearsal' if rehearsal else 'cuda',
            date=datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
            substitutions=[], stages={})

    def substitute(self, text: str) -> None:
        print(f'substitution (CPU rehearsal): {text}', flush=True)
        self.data['substitutions'].append(text)

    @property
    def stages(self) -> Dict[str, dict]:
        return self.data['stages']

    @property
    def passed(self) -> bool:
        return not any(s['status'] == 'failed' for s in self.stages.values())


@dataclass
class Context:
    """What every stage gets: the mode, its sizes, a folder for data and logs, the report."""
    rehearsal: bool
    plan: Plan
    work_dir: str
    report: Report


def log(message: str) -> None:
    print(f'[gpu_check {time.strftime("%H:%M:%S")}] {message}', flush=True)


class CheckFailed(Exception):
    """A check that ran and did not hold; ``details`` go into the report."""

    def __init__(self, message: str, details: Optional[dict] = None) -> None:
        super().__init__(message)
        self.details = details or {}
