"""llama.cpp server's native request bodies and streamed answers, as pure functions.

Three endpoints generate: `/completion` (a raw prompt), `/infill` (prefix + suffix, for
models whose vocabulary has fill-in-the-middle tokens) and `/v1/chat/completions` (the
model's own chat template). All three stream server-sent events (`data: {...}`); the
last event carries llama.cpp's `timings`, which become `Metrics` as they are — token
counts and milliseconds measured by the server, never estimated here.

Every body asks for `cache_prompt` (the slot keeps the prompt's KV cache, so the next
request pays only for the tokens that changed) and `return_progress` (prompt-evaluation
progress events, shown while a long first prompt is read).
"""

from __future__ import annotations

from dataclasses import dataclass

from aethel_lsp.engine.types import GenerationOptions, JsonDict, Metrics

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "PromptProgress",
    "StreamEvent",
    "chat_body",
    "completion_body",
    "infill_body",
    "metrics_from_final",
    "read_event",
]

# `num_predict` unset: bounded, because a small model caught in a loop would fill the
# whole context; an explicit negative value still means "until the context is full".
DEFAULT_MAX_TOKENS = 1024
# Ollama's sampling defaults, so that switching engines does not change the answers' style.
_DEFAULTS: JsonDict = {"temperature": 0.8, "top_p": 0.9, "top_k": 40, "min_p": 0.0,
                       "repeat_penalty": 1.1}
_DONE_REASONS = {"eos": "stop", "word": "stop", "limit": "length"}


def _sampling(options: GenerationOptions) -> JsonDict:
    body: JsonDict = dict(_DEFAULTS)
    if options.temperature is not None:
        body["temperature"] = options.temperature
    if options.top_p is not None:
        body["top_p"] = options.top_p
    if options.seed is not None:
        body["seed"] = options.seed
    if options.stop:
        body["stop"] = list(options.stop)
    wanted = DEFAULT_MAX_TOKENS if options.num_predict is None else options.num_predict
    body["n_predict"] = -1 if wanted < 0 else wanted
    body.update(stream=True, cache_prompt=True, return_progress=True)
    return body


def completion_body(prompt: str, options: GenerationOptions) -> JsonDict:
    """`POST /completion`: the prompt as-is (special tokens in it are parsed)."""
    return {"prompt": prompt, **_sampling(options)}


def infill_body(prefix: str, suffix: str, options: GenerationOptions) -> JsonDict:
    """`POST /infill`: llama.cpp lays out the model's own FIM tokens around the two parts."""
    return {"input_prefix": prefix, "input_suffix": suffix, **_sampling(options)}


def chat_body(messages: list[JsonDict], options: GenerationOptions) -> JsonDict:
    """`POST /v1/chat/completions`, streamed with the usage/timings event at the end."""
    body = _sampling(options)
    body["max_tokens"] = body.pop("n_predict")
    return {"messages": messages, "stream_options": {"include_usage": True}, **body}


@dataclass(frozen=True)
class PromptProgress:
    """How far the server is in reading the prompt (tokens), from `prompt_progress`."""

    total: int
    cached: int
    processed: int
    time_ms: float


@dataclass(frozen=True)
class StreamEvent:
    """One streamed event, whatever the endpoint: new text, progress, or the final figures."""

    text: str = ""
    progress: PromptProgress | None = None
    final: JsonDict | None = None  # the event that carries `timings`
    finish_reason: str | None = None


def read_event(data: JsonDict) -> StreamEvent:
    """Normalize a `/completion`, `/infill` or chat-completions event."""
    progress = _progress(data.get("prompt_progress"))
    choices = data.get("choices")
    if isinstance(choices, list):  # OpenAI-shaped chat chunk
        text = ""
        reason = None
        for choice in choices:
            if isinstance(choice, dict):
                delta = choice.get("delta")
                if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                    text += delta["content"]
                if isinstance(choice.get("finish_reason"), str):
                    reason = choice["finish_reason"]
        final = data if isinstance(data.get("timings"), dict) else None
        return StreamEvent(text, progress, final, reason)
    content = data.get("content")
    text = content if isinstance(content, str) else ""
    final = data if data.get("stop") is True else None
    return StreamEvent(text, progress, final, _stop_type(data) if final else None)


def _stop_type(data: JsonDict) -> str | None:
    stop_type = data.get("stop_type")
    return _DONE_REASONS.get(stop_type, stop_type) if isinstance(stop_type, str) else None


def _progress(value: object) -> PromptProgress | None:
    if not isinstance(value, dict):
        return None
    return PromptProgress(_int(value.get("total")), _int(value.get("cache")),
                          _int(value.get("processed")), _float(value.get("time_ms")) or 0.0)


def metrics_from_final(final: JsonDict, *, model: str, finish_reason: str | None,
                       ttft_ms: float | None, latency_ms: float,
                       load_ms: float | None) -> Metrics:
    """`Metrics` from the server's `timings`: prompt tokens are the cached plus the newly
    read ones (what the model saw), the rate is llama.cpp's own `predicted_per_second`."""
    timings = final.get("timings")
    timings = timings if isinstance(timings, dict) else {}
    cached = _int(timings.get("cache_n"))
    read = _int(timings.get("prompt_n"))
    prompt_ms = _float(timings.get("prompt_ms"))
    predicted_ms = _float(timings.get("predicted_ms"))
    engine_ms = (prompt_ms or 0.0) + (predicted_ms or 0.0) if timings else None
    reason = finish_reason or ("length" if final.get("truncated") else "stop")
    return Metrics(
        model=model,
        prompt_tokens=cached + read if timings else None,
        tokens_generated=_int(timings.get("predicted_n")) if timings else None,
        time_to_first_token_ms=ttft_ms,
        latency_ms=latency_ms,
        load_ms=load_ms,
        tokens_per_second=_float(timings.get("predicted_per_second")),
        done_reason=reason,
        total_duration_ms=engine_ms,
        eval_duration_ms=predicted_ms,
        cached_prompt_tokens=cached if timings else None,
    )


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
