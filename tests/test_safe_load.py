"""Checkpoint loading runs no code from the file on every torch: rapidnet_mm's restricted
unpickler (torch < 2.5) admits exactly tensors, the authors' argparse.Namespace and mmengine's
checkpoint types; mmengine's loaders are weights-only on torch < 2.6; and deployment features that
need a newer torch refuse in one line."""
import argparse
import collections
import functools
import http.server
import os
import pathlib
import pickle
import subprocess
import threading

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner import CheckpointLoader
from torch.torch_version import TorchVersion

from rapidnet_mm import compat
from rapidnet_mm.checkpoints import CheckpointLayoutError
from rapidnet_mm.checkpoints.loading import read_checkpoint
from rapidnet_mm.checkpoints.safe_load import (AUTHORS_GLOBALS, TORCH_HAS_SAFE_GLOBALS,
                                               safe_torch_load, restricted_pickle_module)
from rapidnet_mm.deploy.export_module import ExportError
from rapidnet_mm.deploy.torch_support import CPU_FP16_TORCH, require_torch
from cls_helpers import PYTHON
from tool_helpers import ROOT

pytestmark = pytest.mark.core


class Payload:
    """A pickle that creates ``marker`` when unpickled by an unrestricted unpickler."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return open, (self.marker, 'w')


def authors_like() -> dict:
    return {'state_dict': {'w': torch.arange(6.).reshape(2, 3)}, 'epoch': 299,
            'args': argparse.Namespace(model='RapidNet_Ti', lr=2e-3)}


def mmengine_like() -> dict:
    hub = HistoryBuffer()
    hub.update(0.5)
    hub.update(0.25)
    return {'state_dict': {'w': torch.ones(2, dtype=torch.float16)}, 'meta': {'iter': 2},
            'message_hub': {'log_scalars': {'train/loss': hub},
                            'runtime_info': {'seed': np.int64(7), 'arr': np.arange(3.)}},
            # what pickle protocol 2 spells through constructors (mmdet's files hold a Counter)
            'plain': [collections.Counter('aab'), {1, 2}, b'\x00\xff', bytearray(b'x'), 1j]}


def restricted_load(path, extra=()):
    """Always the restricted unpickler, whatever this torch has."""
    return torch.load(path, map_location='cpu', weights_only=False,
                      pickle_module=restricted_pickle_module(extra))


@pytest.mark.parametrize('zipfile', [True, False], ids=['zip', 'legacy'])
def test_restricted_unpickler_admits_authors_and_mmengine_files(tmp_path, zipfile):
    path = tmp_path / 'ckpt.pth'
    torch.save(authors_like(), path, _use_new_zipfile_serialization=zipfile)
    loaded = restricted_load(path, AUTHORS_GLOBALS)
    assert loaded['args'] == argparse.Namespace(model='RapidNet_Ti', lr=2e-3)
    assert torch.equal(loaded['state_dict']['w'], torch.arange(6.).reshape(2, 3))
    with pytest.raises(pickle.UnpicklingError, match='refused to unpickle argparse.Namespace'):
        restricted_load(path)  # Namespace only when asked for

    torch.save(mmengine_like(), path, _use_new_zipfile_serialization=zipfile)
    loaded = restricted_load(path)
    buffer = loaded['message_hub']['log_scalars']['train/loss']
    assert buffer.data[0].tolist() == [0.5, 0.25] and buffer.mean() == 0.375
    assert loaded['message_hub']['runtime_info']['seed'] == 7
    assert loaded['message_hub']['runtime_info']['arr'].tolist() == [0., 1., 2.]
    assert loaded['state_dict']['w'].dtype == torch.float16
    assert loaded['plain'] == [collections.Counter(a=2, b=1), {1, 2}, b'\x00\xff',
                               bytearray(b'x'), 1j]


@pytest.mark.parametrize('loader', ['restricted', 'ours', 'read_checkpoint', 'mmengine'])
def test_pickle_payload_is_refused_and_never_runs(tmp_path, loader):
    marker = tmp_path / 'payload-ran'
    path = tmp_path / 'evil.pth'
    torch.save({'meta': Payload(str(marker)), **authors_like()}, path)  # the payload first
    load = dict(restricted=lambda p: restricted_load(p, AUTHORS_GLOBALS),
                ours=lambda p: safe_torch_load(p, extra=AUTHORS_GLOBALS),
                read_checkpoint=read_checkpoint,
                mmengine=lambda p: CheckpointLoader.load_checkpoint(p, map_location='cpu'))[loader]
    # the unpicklers name the refused global (io.open); read_checkpoint shows one line
    expected = 'cannot read' if loader == 'read_checkpoint' else 'open'
    with pytest.raises((pickle.UnpicklingError, CheckpointLayoutError), match=expected):
        load(str(path))
    assert not marker.exists()


def test_other_types_are_refused_by_name(tmp_path):
    ckpt = authors_like()
    ckpt['args'].output_dir = pathlib.PurePosixPath('/results')
    torch.save(ckpt, tmp_path / 'other.pth')
    with pytest.raises(pickle.UnpicklingError, match='pathlib.PurePosixPath'):
        restricted_load(tmp_path / 'other.pth', AUTHORS_GLOBALS)
    with pytest.raises(pickle.UnpicklingError, match='PurePosixPath'):
        safe_torch_load(tmp_path / 'other.pth', extra=AUTHORS_GLOBALS)


def test_the_loader_for_this_torch():
    # torch >= 2.5 scopes its own allow-list; older torch gets the restricted unpickler
    assert TORCH_HAS_SAFE_GLOBALS == (TorchVersion(torch.__version__) >= '2.5')
    # torch < 2.6 unpickles anything by default: mmengine's loaders are replaced there
    replaced = TorchVersion(torch.__version__) < '2.6'
    assert (CheckpointLoader._schemes[''] is compat.load_from_local_weights_only) == replaced
    assert (CheckpointLoader._schemes['https://'] is compat.load_from_http_weights_only) == replaced


@pytest.fixture
def weights_only_mmengine(monkeypatch):
    """mmengine's loaders as rapidnet_mm sets them on torch < 2.6, on any torch."""
    monkeypatch.setattr(CheckpointLoader, '_schemes', dict(CheckpointLoader._schemes))
    compat.load_mmengine_checkpoints_weights_only()


def test_mmengine_local_loader_is_weights_only(tmp_path, weights_only_mmengine, monkeypatch):
    torch.save(mmengine_like(), tmp_path / 'ok.pth')
    loaded = CheckpointLoader.load_checkpoint(str(tmp_path / 'ok.pth'), map_location='cpu')
    assert loaded['meta'] == {'iter': 2}
    marker = tmp_path / 'payload-ran'
    torch.save({'meta': Payload(str(marker))}, tmp_path / 'evil.pth')
    with pytest.raises(pickle.UnpicklingError, match='open'):
        CheckpointLoader.load_checkpoint(str(tmp_path / 'evil.pth'), map_location='cpu')
    assert not marker.exists()
    with pytest.raises(FileNotFoundError, match='missing.pth can not be found'):
        CheckpointLoader.load_checkpoint(str(tmp_path / 'missing.pth'))
    # torch's own switch for trusted files lifts it, as it lifts torch >= 2.6's default
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    torch.save({'args': argparse.Namespace(lr=1.0)}, tmp_path / 'trusted.pth')
    loaded = CheckpointLoader.load_checkpoint(str(tmp_path / 'trusted.pth'))
    assert loaded['args'].lr == 1.0


@pytest.fixture
def http_folder(tmp_path):
    """(folder, url): a folder served over HTTP on 127.0.0.1."""
    served = tmp_path / 'served'
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f'http://127.0.0.1:{server.server_address[1]}'
    server.shutdown()
    thread.join()


def test_mmengine_http_loader_is_weights_only(tmp_path, http_folder, weights_only_mmengine):
    served, url = http_folder
    hub_dir = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / 'hub'))
    try:
        torch.save(mmengine_like(), served / 'ok.pth')
        loaded = CheckpointLoader.load_checkpoint(f'{url}/ok.pth', map_location='cpu')
        assert loaded['meta'] == {'iter': 2}
        assert (tmp_path / 'hub' / 'checkpoints' / 'ok.pth').is_file()  # torch's hub cache
        marker = tmp_path / 'payload-ran'
        torch.save({'meta': Payload(str(marker))}, served / 'evil.pth')
        with pytest.raises(pickle.UnpicklingError, match='open'):
            CheckpointLoader.load_checkpoint(f'{url}/evil.pth', map_location='cpu')
        assert not marker.exists()
    finally:
        torch.hub.set_dir(hub_dir)


def test_a_too_old_torch_is_refused_in_one_line(monkeypatch):
    monkeypatch.setattr(torch, '__version__', TorchVersion('2.1.2+cu121'))
    with pytest.raises(ExportError) as err:
        require_torch('2.2', '--format coreml', 'half-precision kernels on CPU')
    assert str(err.value) == ('--format coreml needs torch >= 2.2 (half-precision kernels on '
                              'CPU); this is torch 2.1.2+cu121: upgrade torch, or choose another '
                              'format')
    monkeypatch.setattr(torch, '__version__', TorchVersion('2.2.0'))
    require_torch('2.2', '--format coreml', 'half-precision kernels on CPU')


@pytest.mark.slow
def test_coreml_export_on_torch_without_cpu_fp16_is_one_error_line(tmp_path):
    # the command line, on a torch that reports 2.1.2 (the real one where it is that old)
    out = tmp_path / 'model.mlpackage'
    script = ("import runpy, sys, torch\n"
              "from torch.torch_version import TorchVersion\n"
              "torch.__version__ = TorchVersion('2.1.2')\n"
              "sys.argv = sys.argv[1:]\n"
              "runpy.run_path(sys.argv[0], run_name='__main__')\n")
    result = subprocess.run(
        [PYTHON, '-c', script, 'tools/deployment/export.py', 'configs/cls/rapidnet_ti_in1k.py',
         '--format', 'coreml', '--out', str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
        env=dict(os.environ, PYTHONWARNINGS='ignore'))
    assert result.returncode == 2, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
    assert errors == [f'error: --format coreml needs torch >= {CPU_FP16_TORCH} (it checks the '
                      "model's FP16 numerics on CPU, in half-precision kernels); this is torch "
                      '2.1.2: upgrade torch, or choose another format'], result.stderr
    assert 'Traceback' not in result.stderr
    assert not out.exists()
