"""Known third-party console noise, filtered by exact message; every other warning stays.

Measured on the pinned stack (setuptools 80, coremltools 8 on Linux):

- mmengine's ``is_installed`` (run when a config names an ``mmdet::`` base) imports and then
  reloads ``pkg_resources``; setuptools warns ``pkg_resources is deprecated as an API`` both
  times, once attributed to mmengine and once to importlib, on every run of every tool.
- Importing coremltools on Linux logs ``Failed to load _ML...Proxy: No module named
  'coremltools.libcoremlpython'`` eight times on its ``coremltools`` logger: the native runtime
  only exists on macOS, which the Core ML exporter already says itself when it matters.
"""
import logging
import re
import warnings

PKG_RESOURCES_MESSAGE = r'pkg_resources is deprecated as an API'
COREMLTOOLS_PROXY_MESSAGE = re.compile(r"Failed to load _ML\w*Proxy: No module named "
                                       r"'coremltools\.libcoremlpython'")


class _DropCoremlProxyFailures(logging.Filter):
    """Drops coremltools' records about its macOS-only native proxies, passes all others."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not COREMLTOOLS_PROXY_MESSAGE.match(record.getMessage())


def quiet_known_noise() -> None:
    """Install both filters (idempotent); called when ``rapidnet_mm`` is imported."""
    # `message` matches the start of the text; the category keeps other UserWarnings.
    warnings.filterwarnings('ignore', message=PKG_RESOURCES_MESSAGE, category=UserWarning)
    logger = logging.getLogger('coremltools')  # the one logger all coremltools modules use
    if not any(isinstance(f, _DropCoremlProxyFailures) for f in logger.filters):
        logger.addFilter(_DropCoremlProxyFailures())
