"""The server's stderr (the editor's server log): every line passes the redactor.

Nothing in the package configures logging, so warnings would go to Python's last-resort
handler, and an uncaught exception to the default excepthook, both unredacted.  `serve`
installs these two instead, bound to the server's redactor (the current key values).
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable
from types import TracebackType

Redact = Callable[[str], str]


class RedactingFormatter(logging.Formatter):
    """`%(message)s` (with any traceback), minus the known key values."""

    def __init__(self, redact: Redact) -> None:
        super().__init__("%(message)s")
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(super().format(record))


def install(redact: Redact) -> None:
    """Route warnings and uncaught exceptions to stderr through `redact`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(RedactingFormatter(redact))
    logging.getLogger().addHandler(handler)

    def excepthook(
        kind: type[BaseException], value: BaseException, tb: TracebackType | None
    ) -> None:
        sys.stderr.write(redact("".join(traceback.format_exception(kind, value, tb))))

    sys.excepthook = excepthook
