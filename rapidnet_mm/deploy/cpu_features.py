"""The CPU a measurement ran on, with the instruction-set features that decide int8 behaviour:
AVX2, AVX-512, VNNI (AVX512-VNNI or AVX-VNNI) and AMX on x86-64.

The features matter because x86-64 int8 kernels that multiply uint8 activations by int8 weights
(ONNX Runtime's U8S8) add pairs of products into int16 on CPUs without VNNI, and that sum
saturates when the weights use all 8 bits; with VNNI (or AMX) they accumulate in int32.

Read from ``/proc/cpuinfo`` (Linux): neither torch nor the runtimes report VNNI or AMX, and the
project needs no CPU-identification package for this one job. Elsewhere the features are
reported as unknown, never guessed.
"""
import os.path as osp
import platform
from dataclasses import dataclass
from typing import FrozenSet, List

CPUINFO = '/proc/cpuinfo'
VNNI_FLAGS = ('avx512_vnni', 'avx_vnni')
AMX_FLAGS = ('amx_int8', 'amx_tile')


@dataclass(frozen=True)
class CpuFeatures:
    """One CPU's name, architecture and instruction-set flags.

    Args:
        name: The model name the OS gives (e.g. ``'AMD EPYC'``).
        machine: ``platform.machine()`` (``'x86_64'``, ``'aarch64'``, ...).
        flags: The flags of ``/proc/cpuinfo`` (empty where they could not be read).
    """
    name: str
    machine: str
    flags: FrozenSet[str]

    @property
    def x86(self) -> bool:
        return self.machine.lower() in ('x86_64', 'amd64', 'i686', 'i386')

    @property
    def known(self) -> bool:
        """Whether the flags were read."""
        return bool(self.flags)

    @property
    def avx2(self) -> bool:
        return 'avx2' in self.flags

    @property
    def avx512(self) -> bool:
        return 'avx512f' in self.flags

    @property
    def vnni(self) -> bool:
        return any(f in self.flags for f in VNNI_FLAGS)

    @property
    def amx(self) -> bool:
        return any(f in self.flags for f in AMX_FLAGS)

    def feature_names(self) -> List[str]:
        """The int8-relevant features present, e.g. ``['AVX2', 'AVX-512', 'VNNI']``."""
        present = (('AVX2', self.avx2), ('AVX-512', self.avx512), ('VNNI', self.vnni),
                   ('AMX', self.amx))
        return [name for name, has in present if has]

    @property
    def int16_accumulation(self) -> bool:
        """Whether this is an x86-64 CPU whose U8S8 int8 kernels sum product pairs in int16
        (no VNNI, no AMX): full-range int8 weights can saturate there."""
        return self.x86 and self.known and not (self.vnni or self.amx)

    def describe(self) -> str:
        """``'AMD EPYC (x86_64; AVX2, AVX-512, VNNI)'``, or the features marked unknown."""
        if not self.known:
            return f'{self.name} ({self.machine}; instruction-set features unknown)'
        if not self.x86:
            return f'{self.name} ({self.machine})'
        features = ', '.join(self.feature_names()) or 'no AVX2'
        if not self.vnni and not self.amx:
            features += ', no VNNI'
        return f'{self.name} ({self.machine}; {features})'


def parse_cpuinfo(text: str, machine: str) -> CpuFeatures:
    """The first processor of a ``/proc/cpuinfo`` text."""
    name, flags = '', frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(':')
        key = key.strip().lower()
        if key in ('model name', 'cpu model', 'hardware') and not name:
            name = value.strip()
        elif key in ('flags', 'features') and not flags:
            flags = frozenset(value.split())
    return CpuFeatures(name or platform.processor() or machine, machine, flags)


def cpu_features(path: str = CPUINFO) -> CpuFeatures:
    """This machine's CPU (features unknown where ``path`` cannot be read)."""
    machine = platform.machine()
    if not osp.isfile(path):
        return CpuFeatures(platform.processor() or machine, machine, frozenset())
    with open(path, encoding='utf-8', errors='replace') as f:
        return parse_cpuinfo(f.read(), machine)


__all__ = ['CpuFeatures', 'cpu_features', 'parse_cpuinfo']
