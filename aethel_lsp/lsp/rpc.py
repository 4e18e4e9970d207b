"""The JSON-RPC protocol of aethel-lsp: pygls' LSP protocol, with every request answered
and bounded memory.

JSON-RPC and LSP promise that each request gets exactly one response.  pygls 2 breaks
that in two cases, which this subclass fixes:
- a request whose `params` do not match the method's type fails while the message is
  decoded, so its id is lost: pygls shows "Error in server: Invalid Params" to the user
  and never answers.  Here the request is answered with InvalidParams (-32602), and the
  client's mistake is only logged.
- after `shutdown`, pygls silently drops requests; LSP says they must fail with
  InvalidRequest (-32600) until `exit`, so a client waiting for an answer never hangs.
It also keeps expected failures quiet: a handler's `JsonRpcException` (a bad selection,
Ollama not running) is our own sentence for the user, answered as an error response and
logged in one line; pygls would log a 40-line traceback and report it as a server error.

Every outgoing message also passes the server's redactor (`_send_data`), so no key
value leaves in any message, whichever code path wrote the text.

pygls 2.1 also keeps things it never forgets (pygls #607, #608), so a server that lives
for days would grow by kilobytes per message:
- `_request_futures` gets the future of every notification and of every step of a
  built-in generator handler (didOpen, didChange, executeCommand, ...) under a fresh
  uuid, and only request ids are ever removed: here each entry is dropped when its
  future is done;
- `_result_types` keeps the result type of a request we sent until a *successful*
  response: here it is dropped when the request's future is done (error, cancel);
- `progress.tokens` keeps every work-done progress token: `lsp/progress.py` drops its
  own tokens when the progress ends.

Uses pygls private members (`_send_response`, `_shutdown`, `_send_handler_result`,
`_send_data`, `_execute_handler`, `_request_futures`, `_result_types`), all only here
and in `cancellation.py`;
`tests/unit/test_rpc.py` fails if a pygls release renames or reshapes them.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Generator
from concurrent.futures import Future
from typing import Any

from lsprotocol import types
from pygls.exceptions import (
    JsonRpcException,
    JsonRpcInvalidParams,
    JsonRpcInvalidRequest,
    JsonRpcMethodNotFound,
)
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method

from aethel_lsp.engine.redaction import Redactor

log = logging.getLogger(__name__)


class UnparsableRequest:
    """Stands in for a request whose params could not be decoded (keeps its id)."""

    jsonrpc = "2.0"

    def __init__(self, msg_id: Any, method: str, cause: BaseException) -> None:
        self.id = msg_id
        self.method = method
        self.cause = cause


def _is_request(data: Any) -> bool:
    return (
        isinstance(data, dict)
        and "id" in data
        and isinstance(data.get("method"), str)
        and "result" not in data
        and "error" not in data
    )


class AethelProtocol(LanguageServerProtocol):
    # Set by the server: the redactor that knows the current key values.
    redactor_source: Callable[[], Redactor] | None = None

    def _send_data(self, data: Any) -> None:
        """Every outgoing message (results, errors, progress, messages, logs) loses any
        known key value here, whatever path produced the text (pygls private API)."""
        redactor = self.redactor_source() if self.redactor_source and data else None
        if redactor:
            plain = json.loads(json.dumps(data, default=self._serialize_message))
            data = redactor.known_value(plain)
        super()._send_data(data)

    def structure_message(self, data: dict[str, Any]) -> Any:
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            if _is_request(data):
                return UnparsableRequest(data["id"], data["method"], exc.__cause__ or exc)
            raise

    def handle_message(self, message: Any) -> None:
        if isinstance(message, UnparsableRequest) and not self._knows(message.method):
            self.answer_error(message.id, JsonRpcMethodNotFound.of(message.method))
            return
        if isinstance(message, UnparsableRequest):
            detail = str(message.cause).splitlines()[0][:200] if str(message.cause) else ""
            log.warning(
                "Invalid params for %s (request %r): %s", message.method, message.id, detail
            )
            self.answer_error(
                message.id,
                JsonRpcInvalidParams(
                    f"Invalid params for {message.method}: they do not match the LSP "
                    f"specification of this method ({detail or 'cannot be decoded'})."
                ),
            )
            return
        method = getattr(message, "method", None)
        if (
            getattr(self, "_shutdown", False)
            and method is not None
            and method != types.EXIT
            and getattr(message, "id", None) is not None
        ):
            self.answer_error(
                message.id,
                JsonRpcInvalidRequest(
                    f"The server is shutting down: {method} refused (only `exit` is accepted)."
                ),
            )
            return
        super().handle_message(message)

    def _send_handler_result(self, future: Any, *, msg_id: Any) -> None:
        """Answer a finished request; an expected error is one log line, not a traceback."""
        exc = None if future.cancelled() else future.exception()
        if not isinstance(exc, JsonRpcException):
            super()._send_handler_result(future, msg_id=msg_id)
            return
        self._request_futures.pop(msg_id, None)
        log.info("Request %r failed: %s", msg_id, str(exc).splitlines()[0][:300])
        self._send_response(msg_id, error=exc.to_response_error())

    # -- bounded bookkeeping (pygls #607/#608) -----------------------------------------

    def _execute_handler(
        self,
        msg_id: Any,
        handler: Callable[..., Any],
        callback: Callable[[Future[Any]], None],
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        super()._execute_handler(msg_id, handler, callback, args, kwargs)
        future = self._request_futures.get(msg_id)
        if future is not None:
            future.add_done_callback(lambda done: self._forget_future(msg_id, done))

    def send_request(
        self,
        method: str,
        params: Any | None = None,
        callback: Callable[[Any], None] | None = None,
        msg_id: Any = None,
    ) -> Future[Any]:
        msg_id = str(uuid.uuid4()) if msg_id is None else msg_id
        future = super().send_request(method, params, callback, msg_id)

        def forget(done: Future[Any]) -> None:
            self._result_types.pop(msg_id, None)
            self._forget_future(msg_id, done)

        future.add_done_callback(forget)
        return future

    def _forget_future(self, msg_id: Any, done: Any) -> None:
        """Drop `msg_id`'s entry if it is still `done` (ids are never reused)."""
        if self._request_futures.get(msg_id) is done:
            self._request_futures.pop(msg_id, None)

    @lsp_method(types.SHUTDOWN)
    def lsp_shutdown(self, *args: Any) -> Generator[Any, Any, None]:
        """pygls' shutdown, cancelling from a copy of the map: a cancelled future's
        callbacks remove its entry, which would break pygls' loop over the live map."""
        if (user_handler := self.fm.features.get(types.SHUTDOWN)) is not None:
            yield user_handler, args, None
        current_id = self.msg_id
        for msg_id, future in list(self._request_futures.items()):
            if msg_id != current_id and not future.done():
                future.cancel()
        self._shutdown = True
        return None

    def bookkeeping_sizes(self) -> dict[str, int]:
        """How many entries pygls' internal maps hold (the soak benchmark prints them)."""
        return {
            "request_futures": len(self._request_futures),
            "result_types": len(self._result_types),
            "progress_tokens": len(self.progress.tokens),
        }

    def _knows(self, method: str) -> bool:
        return method in self.fm.features or method in self.fm.builtin_features

    def answer_error(self, msg_id: Any, error: JsonRpcException) -> None:
        """Send one error response for request `msg_id` (pygls private API)."""
        self._send_response(msg_id, error=error.to_response_error())
