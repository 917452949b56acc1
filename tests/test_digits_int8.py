"""scikit-learn's digits as an ImageNet-style folder, and tools/misc/digits_int8.py: RapidNet-Ti
trained on it through tools/train.py, then held-out top-1 in fp32 and int8 per runtime."""
import os

import numpy as np
import pytest
from PIL import Image
from tool_helpers import load_tool

from rapidnet_mm.datasets.digits import make_digits_folder
from rapidnet_mm.deploy.cpu_features import cpu_features


def test_digits_folder_is_a_stratified_deterministic_split(tmp_path):
    counts = make_digits_folder(str(tmp_path / 'a'), size=16)
    assert counts == {'train': 1438, 'val': 359}
    val = {c: sorted(os.listdir(tmp_path / 'a' / 'val' / str(c))) for c in range(10)}
    train = {c: sorted(os.listdir(tmp_path / 'a' / 'train' / str(c))) for c in range(10)}
    assert all(35 <= len(v) <= 37 for v in val.values())  # 20% of 174-183 scans per digit
    assert not any(set(val[c]) & set(train[c]) for c in range(10))
    image = Image.open(tmp_path / 'a' / 'val' / '0' / val[0][0])
    assert image.size == (16, 16) and image.mode == 'RGB'
    pixels = np.asarray(image)
    assert pixels.max() > 200 and pixels.min() < 30  # a scan of ink on paper, scaled to 0-255
    make_digits_folder(str(tmp_path / 'b'), size=16)
    for c in range(10):
        assert sorted(os.listdir(tmp_path / 'b' / 'val' / str(c))) == val[c]
    with pytest.raises(ValueError, match='give 8 or more'):
        make_digits_folder(str(tmp_path / 'c'), size=4)


@pytest.mark.slow
def test_digits_int8_trains_and_measures_held_out_accuracy(tmp_path, capsys):
    """Two epochs (the shipped command trains twelve) and two runtimes, to stay near 3 min."""
    tool = load_tool('misc/digits_int8')
    out = tmp_path / 'table.md'
    assert tool.main(['--work-dir', str(tmp_path), '--epochs', '2', '--formats', 'onnx',
                      'openvino', '--out', str(out)]) == 0
    table = out.read_text().splitlines()
    assert table[0].startswith('PyTorch fp32 top-1: ') and table[0].endswith(
        '% on 359 held-out images')
    reference = float(table[0].split(': ')[1].split('%')[0])
    assert reference >= 80  # learnt: chance is 10%
    assert table[-2:] == ['', f'CPU: {cpu_features().describe()}']
    rows = [r.split(' | ') for r in table[4:-2]]
    assert [r[0] for r in rows] == ['| ONNX Runtime', '| OpenVINO']
    for _, fp32, int8, drop, _ in rows:
        assert float(fp32) == pytest.approx(reference, abs=0.3)  # fp32 files equal PyTorch
        assert float(drop) == pytest.approx(float(fp32) - float(int8), abs=0.01)
        # on every x86-64 CPU: without VNNI, full 8-bit ONNX weights lost 5.85 points here
        assert float(drop) <= 2
    assert os.path.exists(tmp_path / 'train' / 'epoch_2.pth')
