"""The JSON-RPC protocol of aethel-lsp: pygls' LSP protocol, with every request answered.

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

Uses pygls private members (`_send_response`, `_shutdown`, `_send_handler_result`,
`_request_futures`, `_send_data`), all only here;
`tests/unit/test_rpc.py` fails if a pygls release renames them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from lsprotocol import types
from pygls.exceptions import (
    JsonRpcException,
    JsonRpcInvalidParams,
    JsonRpcInvalidRequest,
    JsonRpcMethodNotFound,
)
from pygls.protocol import LanguageServerProtocol

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

    def _knows(self, method: str) -> bool:
        return method in self.fm.features or method in self.fm.builtin_features

    def answer_error(self, msg_id: Any, error: JsonRpcException) -> None:
        """Send one error response for request `msg_id` (pygls private API)."""
        self._send_response(msg_id, error=error.to_response_error())
