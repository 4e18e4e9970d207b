"""A fake OpenAI-compatible server, in the flavours real ones differ in, on 127.0.0.1.

    with FakeOpenAI(flavor="llamacpp") as gpu1, FakeOpenAI() as gpu2:   # two endpoints
        gpu1.inject(Fault.http(429, retry_after="1"))
        ... point a provider with hosts [gpu1.url + "/v1", gpu2.url + "/v1"] at them ...

    python -m tests.fakes.openai --flavor deepseek --port 0      # for people

Flavours and what each is based on:
- "openai" (OpenAI's API reference, chat/create and the streaming guide): SSE
  `data: {chat.completion.chunk}` lines ending in `data: [DONE]`; `usage` only when
  the request asks for `stream_options.include_usage`, then in one extra chunk whose
  `choices` is empty; errors `{"error": {"message", "type", "param", "code"}}`;
  429 `rate_limit_exceeded` with `retry-after` (seconds) and `x-ratelimit-*` headers.
- "vllm" (vLLM's OpenAI-compatible server): like "openai", usage as asked; errors
  `{"object": "error", "message", "type", "param", "code"}`.
- "deepseek" (DeepSeek's API docs, context caching): like "openai", and `usage`
  also has `prompt_cache_hit_tokens` / `prompt_cache_miss_tokens`.
- "llamacpp" (llama.cpp's tools/server README, as observed in issue 19): ignores
  `stream_options`, so a stream has no `usage`; the last chunk carries `timings`
  (`prompt_n`, `prompt_ms`, `predicted_n`, `predicted_ms`, `predicted_per_second`);
  `POST /tokenize` counts; errors `{"error": {"code", "message", "type"}}`, and a prompt
  over the context is HTTP 400 `exceed_context_size_error`.
`GET /v1/models` lists `{"object": "list", "data": [{"id", "object": "model", ...}]}` in all.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any, Literal

from tests.fakes.hosted import (
    JSON_CT,
    SSE_CT,
    FakeHostedApi,
    Fault,
    RecordedRequest,
    RecordedStream,
    Reply,
    compact,
    split_tokens,
)
from tests.fakes.http import Exchange, serve_until_signal

Flavor = Literal["openai", "vllm", "deepseek", "llamacpp"]
FLAVORS: tuple[Flavor, ...] = ("openai", "vllm", "deepseek", "llamacpp")
RATE_LIMIT_MESSAGE = ("Rate limit reached for requests per min (RPM): Limit 3, Used 3, "
                      "Requested 1. Please try again in 1s.")
CONTEXT_MESSAGE = ("the request exceeds the available context size, try increasing it")


class FakeOpenAI(FakeHostedApi):
    """One OpenAI-compatible endpoint; start several for a provider with several hosts."""

    label = "fake OpenAI-compatible server"

    def __init__(self, *, flavor: Flavor = "openai", models: Sequence[str] = ("coder",),
                 api_key: str | None = None, context_size: int = 4096,
                 cache_hit_tokens: int = 0, host: str = "127.0.0.1", port: int = 0,
                 token_delay: float = 0.0) -> None:
        super().__init__(host=host, port=port, token_delay=token_delay)
        self.flavor = flavor
        self.models = list(models)
        self.api_key = api_key
        self.context_size = context_size
        self.cache_hit_tokens = cache_hit_tokens  # deepseek: prompt_cache_hit_tokens

    # -- routing --------------------------------------------------------------------------
    async def dispatch(self, ex: Exchange, rec: RecordedRequest) -> None:
        path = rec.path.rstrip("/")
        routes = {"/v1/models": "GET", "/v1/chat/completions": "POST",
                  "/v1/completions": "POST"}
        if self.flavor == "llamacpp":
            routes["/tokenize"] = "POST"
        if path not in routes:
            await self.error(ex, 404, "not_found_error", f"File Not Found: {path}")
            return
        if rec.method != routes[path]:
            await self.error(ex, 405, "invalid_request_error", "Method Not Allowed")
            return
        if not await self._auth_ok(ex, rec):
            return
        fault = self.take_fault(path)
        if fault is not None and await self._pre_fault(ex, fault):
            return
        if path == "/v1/models":
            await self._json(ex, {"object": "list", "data": [self._model(m) for m in
                                                             self.models]})
        elif path == "/tokenize":
            content = rec.json.get("content") if isinstance(rec.json, dict) else None
            await self._json(ex, {"tokens": list(range(len(split_tokens(str(content or "")))))})
        else:
            await self._completion(ex, rec, fault, chat=path.endswith("chat/completions"))

    async def _auth_ok(self, ex: Exchange, rec: RecordedRequest) -> bool:
        if self.api_key is None or rec.headers.get("authorization") == f"Bearer {self.api_key}":
            return True
        await self.error(ex, 401, "invalid_request_error", "Incorrect API key provided.",
                         code="invalid_api_key")
        return False

    async def _status_fault(self, ex: Exchange, fault: Fault) -> None:
        headers: dict[str, str] = {}
        if fault.retry_after is not None:
            headers["retry-after"] = fault.retry_after
            headers["x-ratelimit-reset-requests"] = f"{fault.retry_after}s"
        kind = fault.error_type or ("requests" if fault.status == 429 else "server_error")
        code = "rate_limit_exceeded" if fault.status == 429 else None
        message = fault.message or (RATE_LIMIT_MESSAGE if fault.status == 429
                                    else "The server had an error processing your request.")
        await self.error(ex, fault.status, kind, message, code=code, headers=headers)

    def _error_event(self, fault: Fault) -> bytes:
        return _data({"error": {"message": fault.message or "model crashed",
                                "type": fault.error_type or "server_error", "code": 500}})

    def _model(self, name: str) -> dict[str, Any]:
        owner = {"llamacpp": "llamacpp", "vllm": "vllm", "deepseek": "deepseek"}.get(
            self.flavor, "system")
        return {"id": name, "object": "model", "created": 1_764_000_000, "owned_by": owner}

    # -- responders -----------------------------------------------------------------------
    async def _json(self, ex: Exchange, body: Any, status: int = 200) -> None:
        await ex.send(status, compact(body), JSON_CT)

    async def error(self, ex: Exchange, status: int, kind: str, message: str, *,
                    code: str | None = None, headers: dict[str, str] | None = None) -> None:
        body: dict[str, Any]
        if self.flavor == "vllm":
            body = {"object": "error", "message": message, "type": kind, "param": None,
                    "code": status}
        elif self.flavor == "llamacpp":
            body = {"error": {"code": status, "message": message, "type": kind}}
        else:
            body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
        await ex.send(status, compact(body), JSON_CT, headers)

    # -- generations ----------------------------------------------------------------------
    async def _completion(self, ex: Exchange, rec: RecordedRequest, fault: Fault | None, *,
                         chat: bool) -> None:
        body = rec.json
        if not isinstance(body, dict):
            await self.error(ex, 400, "invalid_request_error", "Invalid request body")
            return
        if self.flavor != "llamacpp" and body.get("model") not in self.models:
            await self.error(ex, 404, "invalid_request_error",
                             f"The model `{body.get('model')}` does not exist.",
                             code="model_not_found")
            return
        prompt_tokens = _prompt_words(body, chat)
        if self.flavor == "llamacpp" and prompt_tokens > self.context_size:
            await self.error(ex, 400, "exceed_context_size_error", CONTEXT_MESSAGE)
            return
        reply = self.take_reply()
        record = self.open_stream(rec)
        try:
            await self._stream(ex, record, body, reply, fault, chat, prompt_tokens)
        finally:
            self.close_stream(ex, record)

    def _usage(self, reply: Reply, prompt_tokens: int, generated: int) -> dict[str, Any]:
        prompt = reply.input_tokens if reply.input_tokens is not None else prompt_tokens
        completion = reply.output_tokens if reply.output_tokens is not None else generated
        usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                                 "total_tokens": prompt + completion}
        if self.flavor == "deepseek":
            hit = min(self.cache_hit_tokens, prompt)
            usage["prompt_cache_hit_tokens"] = hit
            usage["prompt_cache_miss_tokens"] = prompt - hit
        return usage

    async def _stream(self, ex: Exchange, record: RecordedStream, body: dict[str, Any],
                      reply: Reply, fault: Fault | None, chat: bool, prompt_tokens: int) -> None:
        tokens = reply.token_list()
        finish = reply.stop_reason or "stop"
        limit = body.get("max_tokens")
        if isinstance(limit, int) and len(tokens) > limit:
            tokens, finish = tokens[:limit], "length"
        started = time.perf_counter()
        await self.pause(ex, reply.first_token_delay)
        ex.start_stream(200, SSE_CT)
        delay = reply.token_delay if reply.token_delay is not None else self.token_delay
        model = str(body.get("model") or "")
        for index, token in enumerate(tokens):
            await self._mid_stream_fault(ex, record, fault, index)
            delta = {"role": "assistant", "content": token} if index == 0 else {"content": token}
            await self.send_event(ex, record, _data(_chunk(model, chat, delta, None, token)),
                                  token=True)
            await self.pause(ex, delay)
        await self._mid_stream_fault(ex, record, fault, len(tokens))
        last = _chunk(model, chat, {}, finish, "")
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        usage = self._usage(reply, prompt_tokens, len(tokens))
        if self.flavor == "llamacpp":
            last["timings"] = _timings(usage, elapsed_ms)
        await self.send_event(ex, record, _data(last))
        wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        if wants_usage and self.flavor != "llamacpp":
            await self.send_event(ex, record, _data(
                {**_chunk(model, chat, {}, None, ""), "choices": [], "usage": usage}))
        await self.send_event(ex, record, b"data: [DONE]\n\n")
        record.completed = True
        await ex.end_stream()


def _data(obj: dict[str, Any]) -> bytes:
    return b"data: " + compact(obj) + b"\n\n"


def _chunk(model: str, chat: bool, delta: dict[str, Any], finish: str | None,
           text: str) -> dict[str, Any]:
    created = int(time.time())
    if chat:
        return {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return {"id": "cmpl-fake", "object": "text_completion", "created": created, "model": model,
            "choices": [{"index": 0, "text": text, "finish_reason": finish}]}


def _timings(usage: dict[str, Any], elapsed_ms: float) -> dict[str, Any]:
    predicted = int(usage["completion_tokens"])
    predicted_ms = max(elapsed_ms, 1.0)
    return {"prompt_n": usage["prompt_tokens"], "prompt_ms": 1.5,
            "predicted_n": predicted, "predicted_ms": predicted_ms,
            "predicted_per_second": predicted / predicted_ms * 1000.0}


def _prompt_words(body: dict[str, Any], chat: bool) -> int:
    if chat:
        messages = body.get("messages") or []
        text = " ".join(str(m.get("content") or "") for m in messages if isinstance(m, dict))
    else:
        text = f"{body.get('prompt') or ''} {body.get('suffix') or ''}"
    return max(1, len(text.split()))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.openai",
                                     description="A fake OpenAI-compatible server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--flavor", choices=FLAVORS, default="openai")
    parser.add_argument("--models", nargs="*", default=["coder"])
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--token-delay", type=float, default=0.02)
    args = parser.parse_args(argv)
    fake = FakeOpenAI(flavor=args.flavor, models=args.models, api_key=args.api_key,
                      host=args.host, port=args.port, token_delay=args.token_delay)
    return serve_until_signal(fake, f"fake {args.flavor} server listening on {{url}}/v1")

if __name__ == "__main__":
    raise SystemExit(main())
