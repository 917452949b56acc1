"""Where a weights file comes from: a local path, a file of a Hugging Face Hub repository, or
any other http(s) URL. :func:`fetch_checkpoint` turns each into a local file, for every reader of
weights in the package (``read_checkpoint``, the training checks, timm's ``pretrained``).

- Hub files (``https://huggingface.co/<owner>/<repo>/resolve/<revision>/<path>``, its ``blob``
  page, or ``hf://<owner>/<repo>[@<revision>]/<path>``) are downloaded by ``huggingface_hub``:
  its cache (``HF_HOME``/``HF_HUB_CACHE``), resumed transfers, mirrors (``HF_ENDPOINT``; a URL of
  the mirror's host is a Hub URL too), ``HF_HUB_OFFLINE`` and tokens (``HF_TOKEN``, ``hf auth
  login``). A transfer lands in the cache under its final name only when complete.
- Other http(s) URLs are downloaded where mmengine's own http loader puts them
  (``<torch hub dir>/checkpoints/<file name>``), into a temporary file renamed when all of it
  has arrived. mmengine's loader itself is not called: it unpickles with a plain ``torch.load``
  (our safe loader reads the file instead) and keeps a transfer cut short under the final name.

Every failure is a :class:`CheckpointDownloadError` whose message is one line naming the cause
and the fix.
"""
import os
import os.path as osp
import re
from dataclasses import dataclass
from typing import Dict, Optional
from urllib.parse import unquote, urlsplit

from ..errors import MissingFileError, RapidNetError

HUB_HOSTS = ('huggingface.co', 'hf.co')
HUB_URL = 'https://huggingface.co'
# The authors' weights (repository SLDGroup/RapidNet, branch main): kind -> variant -> path.
AUTHORS_REPO = 'SLDGroup/RapidNet'
AUTHORS_REVISION = 'main'
AUTHORS_FILES: Dict[str, Dict[str, str]] = {
    'classification': {'ti': 'RapidNet_Ti.pth', 's': 'RapidNet_S.pth', 'm': 'RapidNet_M.pth',
                       'b': 'RapidNet_B.pth'},
    'detection': {'m': 'Detection/RapidNet_M_Detection.pth',
                  'b': 'Detection/RapidNet_B_Detection.pth'},
    'segmentation': {'m': 'Semantic_Segmentation/RapidNet_M_Sem_Seg.pth',
                     'b': 'Semantic_Segmentation/RapidNet_B_Sem_Seg.pth'},
}
LOCAL_COPY = 'pass the path of a local copy instead of the URL'
_HUB_PATH = re.compile(r'/(?P<repo>[^/]+/[^/]+)/(?:resolve|blob)/(?P<revision>[^/]+)/(?P<path>.+)')
_HF_URI = re.compile(r'hf://(?P<repo>[^/@]+/[^/@]+)(?:@(?P<revision>[^/]+))?/(?P<path>.+)')
# Exceptions of an HTTP client (httpx, requests, urllib3, http.client) that end a body early.
_CUT_SHORT = ('RemoteProtocolError', 'ChunkedEncodingError', 'IncompleteRead', 'ProtocolError',
              'ReadError', 'ReadTimeout', 'ContentTooShortError', 'IncompleteDownload')


class CheckpointDownloadError(RapidNetError, ValueError):
    """A weights file that cannot be fetched; the message is one line with the fix."""


@dataclass(frozen=True)
class HubFile:
    """A file of a Hugging Face Hub model repository."""
    repo_id: str
    filename: str
    revision: str = 'main'

    @property
    def url(self) -> str:
        """The file's canonical download URL on huggingface.co."""
        return f'{HUB_URL}/{self.repo_id}/resolve/{self.revision}/{self.filename}'


def authors_url(kind: str, arch: str) -> str:
    """The Hub URL of the authors' ``kind`` ('classification', 'detection', 'segmentation')
    weights of RapidNet-``arch``."""
    try:
        path = AUTHORS_FILES[kind][arch]
    except KeyError:
        raise KeyError(f'the authors published no {kind} weights of RapidNet-{arch}; they have '
                       f'{ {k: sorted(v) for k, v in AUTHORS_FILES.items()} }') from None
    return HubFile(AUTHORS_REPO, path, AUTHORS_REVISION).url


def is_remote(spec: str) -> bool:
    """Whether ``spec`` is a URL (``scheme://...``) rather than a local path."""
    return '://' in str(spec)


def _mirror_host() -> Optional[str]:
    """The host of ``HF_ENDPOINT`` as huggingface_hub read it, if that is not huggingface.co."""
    if not os.environ.get('HF_ENDPOINT'):
        return None
    from huggingface_hub import constants
    return urlsplit(constants.ENDPOINT).netloc or None


def parse_hub_location(spec: str) -> Optional[HubFile]:
    """The Hub file ``spec`` names, or None when it is not a Hub location.

    Args:
        spec: ``hf://<owner>/<repo>[@<revision>]/<path>``, or an http(s) URL of huggingface.co
            (or of the ``HF_ENDPOINT`` mirror's host) of the form
            ``/<owner>/<repo>/resolve|blob/<revision>/<path>`` (a query such as
            ``?download=true`` is ignored).
    """
    spec = str(spec)
    m = _HF_URI.fullmatch(spec)
    if m:
        return HubFile(m['repo'], m['path'], unquote(m['revision'] or 'main'))
    parts = urlsplit(spec)
    if parts.scheme not in ('http', 'https'):
        return None
    host = parts.netloc.lower()
    if host.startswith('www.'):
        host = host[4:]
    if host not in HUB_HOSTS and host != _mirror_host():
        return None
    m = _HUB_PATH.fullmatch(parts.path)
    if m is None:
        return None
    return HubFile(m['repo'], unquote(m['path']), unquote(m['revision']))


def fetch_checkpoint(spec: str, instead: str = LOCAL_COPY,
                     cache_dir: Optional[str] = None) -> str:
    """The local file ``spec`` names, downloading it first when it is a URL.

    Call it when the file itself is wanted (e.g. mmengine's ``load_from``); for its contents
    call :func:`rapidnet_mm.checkpoints.loading.read_checkpoint`.

    Args:
        spec: A local path, a Hub location (see :func:`parse_hub_location`) or another http(s)
            URL.
        instead: How to give a local copy instead, for the error messages (e.g. the
            ``--cfg-options`` that sets the path).
        cache_dir: For Hub files: huggingface_hub's cache folder instead of its default.

    Returns:
        The path of the local file (in huggingface_hub's or torch hub's cache for URLs).

    Raises:
        MissingFileError: a local path with no file (a FileNotFoundError).
        CheckpointDownloadError: a URL that cannot be fetched (one line: cause and fix).
    """
    spec = str(spec)
    hub_file = parse_hub_location(spec)
    if hub_file is not None:
        return _fetch_from_hub(hub_file, spec, instead, cache_dir)
    if is_remote(spec):
        scheme = urlsplit(spec).scheme
        if scheme not in ('http', 'https'):
            raise CheckpointDownloadError(
                f'{spec}: weights are read from local paths, http(s) URLs and '
                f'hf://<owner>/<repo>/<path>, not {scheme}://; {instead}')
        return _fetch_url(spec, instead)
    if not osp.isfile(spec):
        raise MissingFileError(f'checkpoint not found: {spec}')
    return spec


def _chain(err: BaseException):
    """``err`` and the exceptions it was raised from, outermost first."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0].strip() if text else type(err).__name__


def _cut_short(err: BaseException) -> Optional[BaseException]:
    """The exception in ``err``'s chain that says a transfer ended early, if any."""
    for e in _chain(err):
        if type(e).__name__ in _CUT_SHORT or 'Consistency check failed' in str(e):
            return e
    return None


def _fetch_from_hub(hub_file: HubFile, spec: str, instead: str,
                    cache_dir: Optional[str]) -> str:
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.utils import (EntryNotFoundError, GatedRepoError, HfHubHTTPError,
                                       LocalEntryNotFoundError, OfflineModeIsEnabled,
                                       RepositoryNotFoundError, RevisionNotFoundError)

    from ..version import __version__
    try:
        return hf_hub_download(repo_id=hub_file.repo_id, filename=hub_file.filename,
                               revision=hub_file.revision, cache_dir=cache_dir,
                               library_name='rapidnet_mm', library_version=__version__)
    except Exception as err:  # noqa: BLE001  (each failure becomes one line with its fix)
        repo, rev, name = hub_file.repo_id, hub_file.revision, hub_file.filename
        offline = bool(getattr(constants, 'HF_HUB_OFFLINE', False))
        if isinstance(err, (OfflineModeIsEnabled, LocalEntryNotFoundError)) and offline:
            cache = cache_dir or constants.HF_HUB_CACHE
            message = (f'{spec} is not in the Hugging Face cache ({cache}) and '
                       'HF_HUB_OFFLINE=1 forbids downloading it; run once without '
                       f'HF_HUB_OFFLINE to download it into the cache, or {instead}')
        elif isinstance(err, GatedRepoError) or (isinstance(err, HfHubHTTPError) and getattr(
                getattr(err, 'response', None), 'status_code', None) in (401, 403)):
            message = (f'{spec}: access to the Hub repository {repo} was refused; log in '
                       '(`hf auth login`) or set HF_TOKEN to a token that may read it, or '
                       f'{instead}')
        elif isinstance(err, RepositoryNotFoundError):
            message = (f'{spec}: there is no Hub repository {repo} (or it is private: log in '
                       f'or set HF_TOKEN); check the name, or {instead}')
        elif isinstance(err, RevisionNotFoundError):
            message = (f"{spec}: the Hub repository {repo} has no revision {rev!r}; name an "
                       f"existing branch, tag or commit (the authors' files are on 'main')")
        elif isinstance(err, EntryNotFoundError) and not isinstance(err, LocalEntryNotFoundError):
            known = ''
            if repo == AUTHORS_REPO:
                known = "; the authors' files are " + ', '.join(
                    path for files in AUTHORS_FILES.values() for path in files.values())
            message = (f'{spec}: the Hub repository {repo} has no file {name!r} at revision '
                       f'{rev!r} (404); check the path{known}')
        elif _cut_short(err) is not None:
            message = (f'the download of {spec} was cut short ({_first_line(_cut_short(err))}); '
                       'nothing was kept under its name: run again to retry (huggingface_hub '
                       f'resumes interrupted transfers), or download it elsewhere and {instead}')
        elif isinstance(err, LocalEntryNotFoundError):
            cause = list(_chain(err))[-1]
            message = (f'cannot reach {constants.ENDPOINT} to download {spec} '
                       f'({_first_line(cause)}); check the network (or HF_ENDPOINT for a '
                       f'mirror), or download the file elsewhere and {instead}')
        else:
            message = (f'downloading {spec} from the Hub failed ({type(err).__name__}: '
                       f'{_first_line(err)}); run again, or download it elsewhere and {instead}')
        raise CheckpointDownloadError(message) from err


def _fetch_url(url: str, instead: str) -> str:
    import urllib.error
    import urllib.request

    from torch.hub import get_dir
    name = osp.basename(urlsplit(url).path)
    if not name:
        raise CheckpointDownloadError(f'{url} names no file (its path ends with /); give the '
                                      f'URL of the weights file, or {instead}')
    folder = osp.join(get_dir(), 'checkpoints')  # where mmengine's http loader caches
    path = osp.join(folder, name)
    if osp.isfile(path):
        return path
    os.makedirs(folder, exist_ok=True)
    try:
        with urllib.request.urlopen(url) as response:
            _save_complete(response, path)
    except urllib.error.HTTPError as err:
        raise CheckpointDownloadError(f'{url}: HTTP {err.code} {err.reason}; check the URL, or '
                                      f'{instead}') from err
    except Exception as err:  # noqa: BLE001  (URLError, socket errors: one line with the fix)
        if _cut_short(err) is not None:
            raise CheckpointDownloadError(
                f'the download of {url} was cut short ({_first_line(_cut_short(err))}); nothing '
                f'was kept under its name: run again, or download it elsewhere and {instead}'
            ) from err
        cause = list(_chain(err))[-1]
        raise CheckpointDownloadError(
            f'cannot download {url} ({_first_line(cause)}); check the network and the URL, or '
            f'download the file elsewhere and {instead}') from err
    return path


class IncompleteDownload(OSError):
    """A response body shorter than its ``Content-Length``."""


def _save_complete(response, path: str) -> None:
    """Write ``response``'s body to ``path`` only once all of it has arrived.

    Our own because ``torch.hub.download_url_to_file`` (what mmengine's http loader calls) keeps
    a body cut short under the final name: ``http.client`` ends such a body without an error.
    """
    import shutil
    import tempfile
    expected = response.headers.get('Content-Length')
    fd, partial = tempfile.mkstemp(dir=osp.dirname(path), prefix=osp.basename(path) + '.',
                                   suffix='.partial')
    try:
        with os.fdopen(fd, 'wb') as f:
            shutil.copyfileobj(response, f, 1 << 20)
        size = osp.getsize(partial)
        if expected is not None and size != int(expected):
            raise IncompleteDownload(f'received {size} of {expected} bytes')
        os.chmod(partial, 0o644)  # mkstemp's 0600 would keep the cache private to this user
        os.replace(partial, path)
    finally:
        if osp.exists(partial):
            os.remove(partial)


__all__ = ['AUTHORS_FILES', 'AUTHORS_REPO', 'AUTHORS_REVISION', 'CheckpointDownloadError',
           'HubFile', 'LOCAL_COPY', 'authors_url', 'fetch_checkpoint', 'is_remote',
           'parse_hub_location']
