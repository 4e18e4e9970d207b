"""How every `aethel.*` command is run: arguments, errors, cancellation, one response.

`command(server, name)` registers an async handler that receives the one argument
object (`arguments[0]`, a dict) and returns a JSON-able result.  Around it:
- `$/cancelRequest` cancels the handler's task (see `cancellation.py`), so the engine
  stream closes at once;
- `UserError` (bad arguments, unknown document, empty selection...) becomes a JSON-RPC
  InvalidParams error whose message says what to do;
- an `EngineError` becomes a RequestFailed error with the engine's own sentence (which
  names the host and the fix), and updates `aethel/status`;
- a cancel from the progress UI (`window/workDoneProgress/cancel`) becomes a
  RequestCancelled error, so the request still gets exactly one response.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from lsprotocol import types
from pygls.exceptions import JsonRpcException

from aethel_lsp.engine.errors import EngineError
from aethel_lsp.lsp.cancellation import link_request_cancellation, outer_request_future
from aethel_lsp.lsp.session import AethelServer

log = logging.getLogger(__name__)

INVALID_PARAMS = -32602
REQUEST_FAILED = -32803  # LSP: the request was valid but failed
REQUEST_CANCELLED = -32800

Args = dict[str, Any]
Handler = Callable[[AethelServer, Args], Awaitable[Any]]
H = TypeVar("H", bound=Handler)


class UserError(Exception):
    """The request cannot be served as sent; the message tells the user what to do."""


def command_args(raw: tuple[Any, ...]) -> Args:
    """`arguments[0]` as a dict ({} when absent); anything else is a clear error."""
    if not raw or raw[0] is None:
        return {}
    first = raw[0]
    if isinstance(first, dict):
        return first
    raise UserError(
        "Arguments must be one object in arguments[0], e.g. "
        '[{"uri": "file:///a.py", "range": {...}}]; got ' + repr(first)[:80]
    )


def require_str(args: Args, key: str, *, optional: bool = False) -> str:
    value = args.get(key)
    if value is None and optional:
        return ""
    if not isinstance(value, str) or (not value.strip() and not optional):
        raise UserError(f"Argument `{key}` must be a non-empty string.")
    return value


def command(server: AethelServer, name: str) -> Callable[[H], H]:
    """Register `fn` as the handler of command `name` (see the module docstring)."""

    def decorate(fn: H) -> H:
        @server.command(name)
        async def handler(ls: AethelServer, *raw: Any) -> Any:
            link_request_cancellation(ls.protocol)
            outer = outer_request_future(ls.protocol)
            ls.ensure_fresh_config()
            try:
                return await fn(ls, command_args(raw))
            except UserError as exc:
                raise JsonRpcException(ls.redact(str(exc)), INVALID_PARAMS) from exc
            except EngineError as exc:
                ls.engine_failed(exc)
                raise JsonRpcException(ls.redact(str(exc)), REQUEST_FAILED) from exc
            except asyncio.CancelledError:
                if outer is None or outer.cancelled():
                    raise  # $/cancelRequest: pygls has already answered -32800
                # Cancelled from the progress UI: answer the request ourselves.
                task = asyncio.current_task()
                if task is not None and hasattr(task, "uncancel"):
                    with contextlib.suppress(Exception):
                        task.uncancel()
                ls.log(f"{name} cancelled by the user.", types.MessageType.Info)
                raise JsonRpcException(f"{name} was cancelled.", REQUEST_CANCELLED) from None

        return fn

    return decorate
