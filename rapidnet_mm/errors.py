"""The base of every expected error of rapidnet_mm, and the generic ones.

An expected error is a request the package refuses with a message that names the problem and the
fix: a bad config or setting, weights that do not fit, bad input, a refused export, a failed
download, an output that cannot be written. Each derives from :class:`RapidNetError`, so a
library caller catches all of them with ``except RapidNetError`` (or ``except Exception``: none
is a ``SystemExit``), and the tools turn exactly these into one ``error:`` line and exit status
2 (:func:`rapidnet_mm.cli.run_tool`). Anything else is a bug or an environment failure and keeps
its traceback. Classes keep a second base (``ValueError``, ``OSError``, ...) where callers catch
that.

This module imports nothing of the package, so every layer may raise these.
"""

DEBUG_ENV = 'RAPIDNET_MM_DEBUG'  # =1: expected errors keep their full traceback, as --debug


class RapidNetError(Exception):
    """An expected error: its message is one line for the user, naming the problem and the fix
    (a list of keys may follow on indented lines)."""


class InputError(RapidNetError, ValueError):
    """An argument or option value a function cannot take (out of range, not applicable)."""


class MissingFileError(RapidNetError, FileNotFoundError):
    """An input file (checkpoint, image, ...) that does not exist."""


class OutputError(RapidNetError, OSError):
    """An output path whose folder cannot be created or written."""
