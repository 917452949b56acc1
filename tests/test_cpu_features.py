"""The CPU named in int8 reports and benchmark tables: its int8-relevant features read from
/proc/cpuinfo texts of the CPU classes the int8 scheme must serve."""
import pytest

from rapidnet_mm.deploy.cpu_features import CpuFeatures, cpu_features, parse_cpuinfo

pytestmark = pytest.mark.core

BASE = 'fpu sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma bmi1 bmi2'
ZEN2 = f'processor\t: 0\nmodel name\t: AMD EPYC 7B12\nflags\t\t: {BASE} avx2 sha_ni\n\n' \
       f'processor\t: 1\nmodel name\t: AMD EPYC 7B12\nflags\t\t: {BASE} avx2 sha_ni\n'
SKYLAKE = f'model name\t: Intel Xeon Gold 6148\nflags\t\t: {BASE} avx2 avx512f avx512bw\n'
ZEN4 = f'model name\t: AMD EPYC\nflags\t\t: {BASE} avx2 avx512f avx512bw avx512_vnni\n'
ALDER = f'model name\t: 12th Gen Intel Core i7\nflags\t\t: {BASE} avx2 avx_vnni\n'
SAPPHIRE = (f'model name\t: Intel Xeon Platinum 8480\nflags\t\t: {BASE} avx2 avx512f avx512_vnni '
            'amx_tile amx_int8 amx_bf16\n')
GRAVITON = 'processor\t: 0\nBogoMIPS\t: 243.75\nFeatures\t: fp asimd asimddp sve\n'


@pytest.mark.parametrize('text,features,saturates,described', [
    (ZEN2, ['AVX2'], True, 'AMD EPYC 7B12 (x86_64; AVX2, no VNNI)'),
    (SKYLAKE, ['AVX2', 'AVX-512'], True, 'Intel Xeon Gold 6148 (x86_64; AVX2, AVX-512, no VNNI)'),
    (ZEN4, ['AVX2', 'AVX-512', 'VNNI'], False, 'AMD EPYC (x86_64; AVX2, AVX-512, VNNI)'),
    (ALDER, ['AVX2', 'VNNI'], False, '12th Gen Intel Core i7 (x86_64; AVX2, VNNI)'),
    (SAPPHIRE, ['AVX2', 'AVX-512', 'VNNI', 'AMX'], False,
     'Intel Xeon Platinum 8480 (x86_64; AVX2, AVX-512, VNNI, AMX)'),
])
def test_x86_features_and_int16_accumulation(text, features, saturates, described):
    cpu = parse_cpuinfo(text, 'x86_64')
    assert cpu.known and cpu.x86
    assert cpu.feature_names() == features
    assert cpu.int16_accumulation is saturates
    assert cpu.describe() == described


def test_arm_and_unknown_cpus_are_not_called_saturating():
    arm = parse_cpuinfo(GRAVITON, 'aarch64')
    assert arm.known and not arm.x86 and arm.feature_names() == []
    assert not arm.int16_accumulation
    assert arm.describe().endswith('(aarch64)')
    unknown = CpuFeatures('cpu', 'x86_64', frozenset())
    assert not unknown.known and not unknown.int16_accumulation
    assert unknown.describe() == 'cpu (x86_64; instruction-set features unknown)'


def test_this_machine(tmp_path):
    here = cpu_features()
    assert here.describe().startswith(here.name)
    missing = cpu_features(str(tmp_path / 'none'))
    assert not missing.known and 'features unknown' in missing.describe()
    (tmp_path / 'cpuinfo').write_text(ZEN2)
    assert cpu_features(str(tmp_path / 'cpuinfo')).flags == parse_cpuinfo(ZEN2, '').flags
