"""Data exchanged with an inference engine, independent of any backend or of LSP.

Every figure in `Metrics` comes from the engine's own accounting (Ollama's final
NDJSON line, an OpenAI `usage` block, or the embedded model's tokenizer); nothing here
is estimated from text length.  `to_json()` methods produce the camelCase shapes that
the CLI's `--json` output and the LSP commands share (public interface: keep keys).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

EngineKind = Literal["ollama", "openai", "anthropic", "embedded"]
Capability = str  # "completion", "insert", "tools", "thinking", "vision", "embedding", ...
JsonDict = dict[str, Any]


@dataclass(frozen=True)
class ModelInfo:
    """One installed model, as `/api/tags` lists it, enriched by `/api/show` when known."""

    name: str
    size_bytes: int | None = None
    parameters: int | None = None  # exact count from model_info["general.parameter_count"]
    context_length: int | None = None  # model_info["<arch>.context_length"]
    family: str | None = None
    quantization: str | None = None
    capabilities: tuple[Capability, ...] = ()
    parameter_size: str | None = None  # Ollama's human string, e.g. "7.6B"
    digest: str | None = None
    modified_at: str | None = None
    # Ollama "cloud" models (`remote_host`, e.g. https://ollama.com:443) are listed like
    # local ones but run elsewhere: prompts sent to them leave this machine.
    remote_host: str | None = None
    # The user named this very model in the engine's own settings (the embedded engine's
    # `embedded.modelPath`): it is the default whenever no `model` is set.
    configured: bool = False

    @property
    def is_remote(self) -> bool:
        return bool(self.remote_host)

    def has(self, capability: Capability) -> bool:
        return capability in self.capabilities

    def to_json(self) -> JsonDict:
        return {
            "name": self.name,
            "sizeBytes": self.size_bytes,
            "parameters": self.parameters,
            "contextLength": self.context_length,
            "family": self.family,
            "quantization": self.quantization,
            "capabilities": list(self.capabilities),
        }


@dataclass(frozen=True)
class RunningModel:
    """A model loaded in memory (`/api/ps`)."""

    name: str
    size_bytes: int | None = None
    size_vram: int | None = None
    expires_at: str | None = None
    context_length: int | None = None

    def to_json(self) -> JsonDict:
        return {
            "name": self.name,
            "sizeBytes": self.size_bytes,
            "sizeVram": self.size_vram,
            "expiresAt": self.expires_at,
            "contextLength": self.context_length,
        }


@dataclass(frozen=True)
class GenerationOptions:
    """Sampling options; `None` means "leave the engine's default" and is not sent."""

    temperature: float | None = None
    num_predict: int | None = None
    num_ctx: int | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    top_p: float | None = None

    def to_ollama(self) -> JsonDict:
        """The `options` object of Ollama's native API (`stop` must be a JSON array)."""
        out: JsonDict = {}
        if self.temperature is not None:
            out["temperature"] = self.temperature
        if self.top_p is not None:
            out["top_p"] = self.top_p
        if self.num_predict is not None:
            out["num_predict"] = self.num_predict
        if self.num_ctx is not None:
            out["num_ctx"] = self.num_ctx
        if self.stop:
            out["stop"] = list(self.stop)
        if self.seed is not None:
            out["seed"] = self.seed
        return out


KeepAlive = str | float | int | None


def keep_alive_seconds(value: KeepAlive) -> float | None:
    """Ollama's keep_alive in seconds; None means "forever" (a negative value) or unreadable.

    One reading for the completion scheduler and the doctor. Unset is Ollama's default, 5 min.

    >>> keep_alive_seconds("30m"), keep_alive_seconds(90), keep_alive_seconds("1h30m")
    (1800.0, 90.0, 5400.0)
    >>> keep_alive_seconds(-1) is None, keep_alive_seconds("90"), keep_alive_seconds(None)
    (True, 90.0, 300.0)
    """
    if value is None:
        return 300.0
    if isinstance(value, (int, float)):
        return None if value < 0 else float(value)
    text = value.strip()
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
    parts = re.findall(r"(-?\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)", text)
    if not parts:
        try:
            number = float(text)
        except ValueError:
            return None
        return None if number < 0 else number
    total = sum(float(number) * units[unit] for number, unit in parts)
    return None if total < 0 else total


@dataclass(frozen=True)
class WireRequest:
    """A request exactly as a backend put it on the wire: which endpoint, and the body.

    Reported through a request's `on_send` callback at the moment it is sent, so the
    request inspector records what the engine received, not what we asked the backend
    for (an OpenAI-compatible server gets no `keep_alive`, `think` or `num_ctx`).
    """

    endpoint: str  # "generate" / "chat" (Ollama), "chat" / "completions" (OpenAI API)
    path: str  # the URL path on the server, e.g. "/api/generate", "/v1/chat/completions"
    body: JsonDict


SendObserver = Callable[[WireRequest], None]


@dataclass(frozen=True)
class GenerateRequest:
    """A single-prompt generation (`/api/generate`); `suffix` asks for fill-in-the-middle."""

    model: str
    prompt: str
    system: str | None = None
    suffix: str | None = None
    raw: bool = False
    options: GenerationOptions = field(default_factory=GenerationOptions)
    keep_alive: KeepAlive = None
    think: bool | None = False  # code tasks do not want hidden reasoning tokens
    # Which document asks (a URI), so a provider with several endpoints keeps sending it
    # to the same one while healthy (prompt-cache locality); never sent upstream.
    affinity: str | None = None
    # Told what was actually sent (the inspector); not part of the request's identity.
    on_send: SendObserver | None = field(default=None, compare=False, repr=False)
    # Ollama's (deprecated) token state of an earlier reply, to continue from; sent only
    # by the Ollama backend and only when not empty.  The other backends have no such field.
    context: tuple[int, ...] = ()

    def sent(self, wire: WireRequest) -> None:
        """Backends call this once per request they put on the wire."""
        if self.on_send is not None:
            self.on_send(wire)


@dataclass(frozen=True)
class ChatMessage:
    role: Literal["system", "user", "assistant", "tool"]
    content: str


@dataclass(frozen=True)
class ChatRequest:
    """A conversation (`/api/chat`)."""

    model: str
    messages: tuple[ChatMessage, ...]
    options: GenerationOptions = field(default_factory=GenerationOptions)
    keep_alive: KeepAlive = None
    think: bool | None = False
    affinity: str | None = None  # see GenerateRequest
    on_send: SendObserver | None = field(default=None, compare=False, repr=False)

    def sent(self, wire: WireRequest) -> None:
        """Backends call this once per request they put on the wire."""
        if self.on_send is not None:
            self.on_send(wire)


@dataclass(frozen=True)
class FallbackNote:
    """A provider of the fallback chain that did not serve, and why (a sentence)."""

    provider: str
    reason: str

    def to_json(self) -> JsonDict:
        return {"provider": self.provider, "reason": self.reason}


@dataclass(frozen=True)
class Metrics:
    """What one generation cost, from the engine's own numbers plus client-measured TTFT.

    `provider` names who served ("local" = the configured engine), `cost_usd` is the
    price of the engine's own token counts (None: no price known, or counts unknown), and
    `fallback_from` lists the providers of the fallback chain tried before, with reasons.
    """

    model: str
    prompt_tokens: int | None = None
    tokens_generated: int | None = None
    time_to_first_token_ms: float | None = None  # measured by the client
    latency_ms: float | None = None  # wall time seen by the client
    load_ms: float | None = None
    tokens_per_second: float | None = None  # eval_count / eval_duration * 1e9
    done_reason: str | None = None
    total_duration_ms: float | None = None  # engine-side total
    eval_duration_ms: float | None = None  # engine-side time spent generating
    # prompt tokens the engine reused from its prompt cache (llama.cpp's `cache_n`);
    # not part of the JSON shapes
    cached_prompt_tokens: int | None = None
    provider: str | None = None
    cost_usd: float | None = None
    fallback_from: tuple[FallbackNote, ...] = ()
    # Where a provider's request was served, and the endpoints that failed before it
    # (for the request inspector and logs; not part of the `generate` JSON shape).
    endpoint: str | None = None
    endpoint_failures: tuple[str, ...] = ()

    def to_json(self, text: str | None = None) -> JsonDict:
        """The CLI's generate shape; `text` is included when given."""
        out: JsonDict = {}
        if text is not None:
            out["text"] = text
        out.update(
            {
                "model": self.model,
                "promptTokens": self.prompt_tokens,
                "tokensGenerated": self.tokens_generated,
                "timeToFirstTokenMs": _round(self.time_to_first_token_ms),
                "latencyMs": _round(self.latency_ms),
                "loadMs": _round(self.load_ms),
                "tokensPerSecond": _round(self.tokens_per_second),
                "doneReason": self.done_reason,
                "provider": self.provider or "local",
                "costUsd": None if self.cost_usd is None else round(self.cost_usd, 6),
                "fallbackFrom": [note.to_json() for note in self.fallback_from],
            }
        )
        return out

    def summary(self) -> str:
        """One human line, e.g. `212 tokens · 4.1 s · 51.7 tok/s`.

        A count or speed the engine did not report reads "unknown", never 0:
        `unknown tokens · 0.4 s · unknown tok/s`.
        """
        tokens = "unknown" if self.tokens_generated is None else str(self.tokens_generated)
        seconds = (self.latency_ms or 0.0) / 1000.0
        rate = (f"{self.tokens_per_second:.1f}" if self.tokens_per_second is not None
                else "unknown")
        line = f"{tokens} tokens · {seconds:.1f} s · {rate} tok/s"
        if self.cost_usd is not None:
            line += f" · {format_usd(self.cost_usd)}"
        if self.provider and self.provider != "local":
            line += f" · via {self.provider}"
        return line


def format_usd(amount: float) -> str:
    """A cost a person can read: cents for cents, more digits for fractions of a cent.

    >>> format_usd(0.0), format_usd(0.000123), format_usd(0.0421), format_usd(2.5)
    ('$0.00', '$0.000123', '$0.042', '$2.50')
    """
    if amount == 0 or amount >= 1:
        return f"${amount:.2f}"
    if amount >= 0.01:
        return f"${amount:.3f}"
    return f"${amount:.3g}" if amount >= 0.001 else f"${amount:.6f}"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


@dataclass(frozen=True)
class Chunk:
    """One piece of a streamed generation; the last one has `done=True` and `metrics`."""

    text: str = ""
    thinking: str = ""
    done: bool = False
    metrics: Metrics | None = None
    context: tuple[int, ...] = ()  # final chunk of an Ollama generate: see GenerateResult


@dataclass(frozen=True)
class GenerateResult:
    text: str
    metrics: Metrics
    thinking: str = ""
    # Ollama's token state after this reply (`/api/generate` without `raw`), which a later
    # request can send back as `GenerateRequest.context`; empty where there is none.
    context: tuple[int, ...] = ()

    def to_json(self) -> JsonDict:
        return self.metrics.to_json(self.text)


@dataclass(frozen=True)
class PullProgress:
    """One line of `/api/pull`: status, and byte counts while a layer downloads."""

    status: str
    digest: str | None = None
    total: int | None = None
    completed: int | None = None

    @property
    def percentage(self) -> int | None:
        if not self.total:
            return None
        return max(0, min(100, int(100 * (self.completed or 0) / self.total)))

    def to_json(self) -> JsonDict:
        return {
            "status": self.status,
            "digest": self.digest,
            "total": self.total,
            "completed": self.completed,
            "percentage": self.percentage,
        }


@dataclass(frozen=True)
class EngineStatus:
    """Is an engine serving, where, and if not, why (a sentence a person can act on)."""

    available: bool
    host: str
    engine: EngineKind
    version: str | None = None
    models: tuple[ModelInfo, ...] = ()
    running: tuple[RunningModel, ...] = ()
    error: str | None = None
    reason: str | None = None  # why this engine was chosen (engine = "auto")
    offline: bool = False  # nothing answered at `host` (as opposed to answering badly)

    @property
    def state(self) -> Literal["available", "offline", "error"]:
        if self.available:
            return "available"
        return "offline" if self.offline else "error"

    def to_json(self) -> JsonDict:
        return {
            "available": self.available,
            "host": self.host,
            "engine": self.engine,
            "version": self.version,
            "models": [m.to_json() for m in self.models],
            "running": [r.to_json() for r in self.running],
            "error": self.error,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class EngineTimeouts:
    """How long to wait in each phase of a request, in seconds.

    A first token can take a minute (the engine may be loading a model from disk), while a
    stall between two tokens means something is wrong, hence separate budgets.
    """

    connect_s: float = 3.0
    first_token_s: float = 120.0
    between_tokens_s: float = 30.0
    # The whole request, however lively: an engine that never stops streaming (or drips
    # a body byte by byte) is stopped here.  Model downloads are exempt (hours).
    total_s: float = 600.0
