"""A stand-in for the Hugging Face Hub on 127.0.0.1, for tests that must not touch the internet.

It answers the Hub's download scheme, ``HEAD`` and ``GET`` of
``/<owner>/<repo>/resolve/<revision>/<path>``, with what ``huggingface_hub`` needs
(``X-Repo-Commit``, ``ETag``, ``Content-Length``; ``X-Error-Code`` on a 404; ``Range`` requests
answered with 206), and plain files under ``/plain/<name>`` for URLs that are not the Hub's.
The ``hub`` fixture starts it in a thread on a free port and points ``HF_ENDPOINT``, ``HF_HOME``
and ``TORCH_HOME`` of this process at it and at the test's own folders.
"""
import hashlib
import importlib
import io
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Optional, Tuple
from urllib.parse import unquote, urlsplit

import pytest
import torch

COMMIT = 'c0ffee' + '0' * 34  # the one commit every repository of the stand-in is at
# Variables that would make huggingface_hub look elsewhere than the stand-in and the test's cache.
HF_VARIABLES = ('HF_ENDPOINT', 'HF_HOME', 'HF_HUB_CACHE', 'HUGGINGFACE_HUB_CACHE', 'HF_HUB_OFFLINE',
                'TRANSFORMERS_OFFLINE', 'HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN', 'TORCH_HOME',
                'HF_HUB_DISABLE_PROGRESS_BARS')


def checkpoint_bytes(obj) -> bytes:
    """What ``torch.save(obj, file)`` writes."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


class HubStandIn:
    """The server and what it serves.

    Attributes:
        files: ``{(repo_id, path): bytes}`` served at revision ``main`` (or :data:`COMMIT`).
        plain: ``{name: bytes}`` served at ``/plain/<name>``.
        cut: ``{(repo_id, path) or name: n}``: the next ``n`` GETs of that file send half of it
            and close the connection although ``Content-Length`` promised all of it.
        requests: ``(method, path, headers)`` of every request, in order.
    """

    def __init__(self) -> None:
        self.files: Dict[Tuple[str, str], bytes] = {}
        self.plain: Dict[str, bytes] = {}
        self.cut: Dict[object, int] = {}
        self.requests: List[Tuple[str, str, dict]] = []
        self._server = ThreadingHTTPServer(('127.0.0.1', 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f'http://127.0.0.1:{self._server.server_address[1]}'

    def add(self, repo_id: str, path: str, obj) -> bytes:
        """Serve ``obj`` (bytes, or anything ``torch.save`` writes) as ``path`` of ``repo_id``."""
        data = obj if isinstance(obj, bytes) else checkpoint_bytes(obj)
        self.files[(repo_id, path)] = data
        return data

    def downloads(self, path_suffix: str) -> int:
        """How many GETs asked for a path ending with ``path_suffix``."""
        return sum(1 for method, path, _ in self.requests
                   if method == 'GET' and path.endswith(path_suffix))

    def start(self) -> 'HubStandIn':
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _lookup(self, path: str) -> Tuple[int, dict, Optional[bytes], object]:
        """(status, headers, body, key) for a request path."""
        parts = urlsplit(path).path.split('/')
        if len(parts) >= 3 and parts[1] == 'plain':
            name = unquote('/'.join(parts[2:]))
            if name not in self.plain:
                return 404, {}, None, None
            return 200, {'ETag': f'"{hashlib.sha256(self.plain[name]).hexdigest()}"'}, \
                self.plain[name], name
        if len(parts) < 6 or parts[3] != 'resolve':
            return 404, {'X-Error-Code': 'RepoNotFound'}, None, None
        repo_id, revision, file_path = '/'.join(parts[1:3]), unquote(parts[4]), unquote(
            '/'.join(parts[5:]))
        if not any(repo == repo_id for repo, _ in self.files):
            return 404, {'X-Error-Code': 'RepoNotFound',
                         'X-Error-Message': 'Repository not found'}, None, None
        if revision not in ('main', COMMIT):
            return 404, {'X-Error-Code': 'RevisionNotFound',
                         'X-Error-Message': 'Invalid rev id'}, None, None
        headers = {'X-Repo-Commit': COMMIT}
        data = self.files.get((repo_id, file_path))
        if data is None:
            headers.update({'X-Error-Code': 'EntryNotFound',
                            'X-Error-Message': 'Entry not found'})
            return 404, headers, None, None
        headers['ETag'] = f'"{hashlib.sha256(data).hexdigest()}"'
        return 200, headers, data, (repo_id, file_path)

    def _handler(self):
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args):  # quiet
                pass

            def _answer(self, send_body: bool) -> None:
                standin.requests.append((self.command, self.path, dict(self.headers)))
                status, headers, data, key = standin._lookup(self.path)
                start = 0
                if data is not None and send_body and self.headers.get('Range'):
                    start = int(self.headers['Range'].split('=')[1].split('-')[0])
                    status = 206
                    headers['Content-Range'] = f'bytes {start}-{len(data) - 1}/{len(data)}'
                body = (data or b'')[start:]
                cut = send_body and data is not None and standin.cut.get(key, 0) > 0
                if cut:
                    standin.cut[key] -= 1
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header('Content-Length', str(len(body)))
                if cut:
                    self.send_header('Connection', 'close')
                self.end_headers()
                if not send_body:
                    return
                if cut:
                    self.wfile.write(body[:len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def do_HEAD(self):
                self._answer(send_body=False)

            def do_GET(self):
                self._answer(send_body=True)

        return Handler


def reload_huggingface_hub_environment() -> None:
    """Make huggingface_hub read the environment again, as a new process would: it reads
    ``HF_ENDPOINT``, ``HF_HOME``, ``HF_HUB_OFFLINE`` ... once, into ``huggingface_hub.constants``,
    when it is imported (by timm, on ``import rapidnet_mm``). huggingface_hub 2.x (the pinned
    release) looks them up there at each call; 0.x copied the endpoint elsewhere at import, so
    with 0.x only a new process sees a new ``HF_ENDPOINT``."""
    import huggingface_hub.constants
    importlib.reload(huggingface_hub.constants)


class HubEnvironment:
    """Set huggingface_hub's environment variables for this process, and put them back."""

    def __init__(self) -> None:
        self._saved = {name: os.environ.get(name) for name in HF_VARIABLES}

    def set(self, **values: Optional[str]) -> None:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        reload_huggingface_hub_environment()

    def restore(self) -> None:
        self.set(**self._saved)


@pytest.fixture
def hub(tmp_path):
    """A running :class:`HubStandIn`, reached through ``HF_ENDPOINT``, with a Hugging Face home
    and a torch hub folder of the test's own (tools run in a subprocess inherit them).
    ``hub.env.set(...)`` sets more variables (e.g. ``HF_HUB_OFFLINE``)."""
    server = HubStandIn().start()
    env = HubEnvironment()
    values = {name: None for name in HF_VARIABLES}
    values.update(HF_ENDPOINT=server.endpoint, HF_HOME=str(tmp_path / 'hf_home'),
                  TORCH_HOME=str(tmp_path / 'torch_home'), HF_HUB_DISABLE_PROGRESS_BARS='1')
    env.set(**values)
    server.env = env
    try:
        yield server
    finally:
        env.restore()
        server.stop()
