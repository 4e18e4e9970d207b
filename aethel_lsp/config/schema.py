"""The settings schema: every key of docs/configuration.md, its default and its check.

The table in docs/configuration.md is the contract (the VS Code extension mirrors it):
keys are camelCase, nested tables are dotted (`completion.maxTokens`).  Each field has
one parser that turns a raw JSON/TOML value into the typed value or raises
`InvalidValue` with a sentence a person can act on; resolution (`resolve.py`) uses it
to fall back field by field, so one bad value never takes the others down.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from aethel_lsp.config.provider_settings import ProviderConfig
from aethel_lsp.hosts import (
    is_loopback,
    is_loopback_base_url,
    normalize_openai_base_url,
    parse_ollama_host,
    strip_env_quotes,
)

EngineSetting = Literal["auto", "ollama", "openai", "embedded"]
LogLevel = Literal["error", "warning", "info", "debug"]

ENGINE_CHOICES: Final = ("auto", "ollama", "openai", "embedded")
LOG_LEVELS: Final = ("error", "warning", "info", "debug")
# Code actions that `actions.enabled` can name (also the action ids of features/code_actions).
ACTION_NAMES: Final = (
    "generateContract", "distillContract", "explain", "improve", "document", "fix"
)
DEFAULT_HOST: Final = "http://127.0.0.1:11434"
MAX_DISTILL_CANDIDATES: Final = 32  # the setting, the LSP argument and the CLI flag


class InvalidValue(ValueError):
    """A value of the wrong type or out of range; the message says what is expected."""


Parser = Callable[[Any], Any]


@dataclass(frozen=True)
class Field:
    """One setting: its public key, where it lives in `Settings`, default and parser."""

    key: str  # camelCase, dotted for nested tables: "completion.maxTokens"
    default: Any
    parse: Parser
    doc: str


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def p_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise InvalidValue(f"expected true or false, got {_describe(value)}")


def p_int(minimum: int, maximum: int | None = None) -> Parser:
    def parse(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidValue(f"expected a whole number, got {_describe(value)}")
        if isinstance(value, float):
            if not value.is_integer():
                raise InvalidValue(f"expected a whole number, got {_describe(value)}")
            value = int(value)
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
            raise InvalidValue(f"expected a number {bound}, got {value}")
        return int(value)

    return parse


def p_float(minimum: float, maximum: float) -> Parser:
    def parse(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidValue(f"expected a number, got {_describe(value)}")
        number = float(value)
        if math.isnan(number) or not minimum <= number <= maximum:
            raise InvalidValue(f"expected a number between {minimum} and {maximum}, got {value}")
        return number

    return parse


def p_str(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidValue(f"expected a string, got {_describe(value)}")
    return value.strip()


def p_choice(choices: tuple[str, ...]) -> Parser:
    def parse(value: Any) -> str:
        if value not in choices:
            options = ", ".join(f'"{c}"' for c in choices)
            raise InvalidValue(f"expected one of {options}, got {_describe(value)}")
        return str(value)

    return parse


def p_host(value: Any) -> str:
    """An Ollama host in any form `OLLAMA_HOST` accepts; checked here with the engine's
    own (pure) parser, so a host the engine could not use is a config issue, not a
    server left without an engine."""
    text = p_str(value)
    if not text or any(ch.isspace() for ch in text) or strip_env_quotes(text) != text:
        raise InvalidValue(
            f"expected a host such as http://127.0.0.1:11434, 127.0.0.1:11434 or :11434 "
            f"(no quotes or spaces inside the string), got {_describe(value)}"
        )
    try:
        parse_ollama_host(text)
    except ValueError as exc:
        raise InvalidValue(str(exc)) from exc
    return text


def p_url_or_empty(value: Any) -> str:
    """A base URL, checked with the parser the OpenAI engine connects with."""
    text = p_str(value)
    if text and not re.match(r"^https?://[^\s/]+", text):
        raise InvalidValue(
            f"expected an http(s) URL such as http://127.0.0.1:8000/v1, got {text!r}"
        )
    if text:
        try:
            normalize_openai_base_url(text)
        except ValueError as exc:
            raise InvalidValue(str(exc)) from exc
    return text


def p_env_name(value: Any) -> str:
    text = p_str(value)
    if text and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", text):
        raise InvalidValue(
            "expected the NAME of an environment variable (e.g. OPENAI_API_KEY), not the key itself"
        )
    return text


# A bare number (seconds, fraction allowed) or a Go duration, possibly compound ("1h30m").
_NUMBER = re.compile(r"^-?(\d+(\.\d*)?|\.\d+)$")
_DURATION = re.compile(r"^-?((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+$")


def p_keep_alive(value: Any) -> str:
    """Ollama's keep_alive: a duration ("30m", "1h", "-1" = forever, "0" = unload now)."""
    if isinstance(value, bool):
        raise InvalidValue(f'expected a duration such as "30m", got {_describe(value)}')
    if isinstance(value, (int, float)):
        return str(int(value)) if float(value).is_integer() else str(value)
    text = p_str(value).strip()
    if not (_NUMBER.match(text) or _DURATION.match(text)):
        raise InvalidValue(f'expected a duration such as "30m", "1h", "-1" or "0", got {text!r}')
    return text


def p_str_list(value: Any) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise InvalidValue(f"expected a list of strings, got {_describe(value)}")
    return tuple(value)


def p_actions(value: Any) -> tuple[str, ...]:
    names = p_str_list(value)
    unknown = [n for n in names if n not in ACTION_NAMES]
    if unknown:
        raise InvalidValue(
            f"unknown action {unknown[0]!r}; the actions are " + ", ".join(ACTION_NAMES)
        )
    return names


FIELDS: Final[tuple[Field, ...]] = (
    Field("engine", "auto", p_choice(ENGINE_CHOICES), "which engine serves requests"),
    Field("host", DEFAULT_HOST, p_host, "Ollama host"),
    Field("openai.baseUrl", "", p_url_or_empty, "OpenAI-compatible base URL"),
    Field("openai.apiKeyEnv", "", p_env_name, "environment variable holding the API key"),
    Field("embedded.modelPath", "", p_str, "GGUF file for the embedded engine"),
    Field("embedded.threads", 0, p_int(0, 1024), "CPU threads for the embedded engine"),
    Field("model", "", p_str, "model for code actions"),
    Field("completion.model", "", p_str, "model for completion"),
    Field("temperature", 0.2, p_float(0.0, 2.0), "sampling temperature for actions"),
    Field("maxTokens", 1024, p_int(1, 1_000_000), "token budget of an action"),
    Field("contextSize", 8192, p_int(256, 10_000_000), "context window (num_ctx)"),
    Field("keepAlive", "30m", p_keep_alive, "Ollama keep_alive"),
    Field("timeouts.connectMs", 3000, p_int(1), "connect timeout"),
    Field("timeouts.firstTokenMs", 120_000, p_int(1), "first-token timeout"),
    Field("timeouts.betweenTokensMs", 30_000, p_int(1), "between-token timeout"),
    Field("timeouts.totalMs", 600_000, p_int(1), "whole-request timeout"),
    Field("actions.enabled", ACTION_NAMES, p_actions, "code actions offered"),
    Field("generation.repairRounds", 2, p_int(0, 10), "repair rounds for generated contracts"),
    Field("generation.applyInvalid", False, p_bool, "apply a contract that still fails"),
    Field("distill.candidates", 4, p_int(1, MAX_DISTILL_CANDIDATES),
          "candidate contracts of the distiller"),
    Field("distill.models", (), p_str_list, "models the distiller asks (empty: `model`)"),
    Field("distill.agree", 2, p_int(0, 32), "stop when this many valid candidates agree"),
    Field("distill.concurrency", 2, p_int(1, 16), "distiller candidates at once per provider"),
    Field("distill.provenance", True, p_bool, "header comment naming the model and checks"),
    Field("completion.enabled", True, p_bool, "inline completion on/off"),
    Field("completion.disabledLanguages", (), p_str_list, "languages without completion"),
    Field("completion.aiItem", True, p_bool, "AI item in the completion list"),
    Field("completion.maxTokens", 64, p_int(1, 100_000), "token budget of a completion"),
    Field("completion.deadlineMs", 1500, p_int(1), "completion deadline"),
    Field("completion.debounceMinMs", 30, p_int(0, 10_000), "debounce lower bound"),
    Field("completion.debounceMaxMs", 200, p_int(0, 10_000), "debounce upper bound"),
    Field("completion.prefixTokens", 1024, p_int(0, 1_000_000), "prefix token budget"),
    Field("completion.suffixTokens", 256, p_int(0, 1_000_000), "suffix token budget"),
    Field("completion.otherDocuments", True, p_bool, "snippets from other documents"),
    Field("completion.temperature", 0.1, p_float(0.0, 2.0), "completion temperature"),
    Field("checker.strict", False, p_bool, "Aethel: a check the solver cannot decide is an error"),
    Field("checker.timeoutMs", 2000, p_int(1, 600_000), "Aethel: time limit per solver query"),
    Field("checker.intentBudgetMs", 6000, p_int(1, 3_600_000), "Aethel: solver time per intent"),
    Field("checker.fileBudgetMs", 30_000, p_int(1, 3_600_000), "Aethel: solver time per file"),
    Field("checker.verifyImplied", False, p_bool, "Aethel: verify lines follow from the guard"),
    Field("checker.symbolicOverflow", False, p_bool, "Aethel: symbolic arithmetic fits in 64 bits"),
    Field("inspector.enabled", False, p_bool, "record requests in a ring"),
    Field("inspector.size", 50, p_int(1, 10_000), "inspector ring size"),
    Field("allowRemoteHostFromWorkspace", False, p_bool, "trust hosts from workspace files"),
    Field("logLevel", "info", p_choice(LOG_LEVELS), "log verbosity"),
    Field("maxMessageMb", 64, p_int(1, 4096), "largest LSP message accepted"),
)

FIELDS_BY_KEY: Final[dict[str, Field]] = {f.key: f for f in FIELDS}
# Prefixes of nested tables ("completion", "timeouts", ...), used to flatten raw input.
TABLES: Final[frozenset[str]] = frozenset(k.rsplit(".", 1)[0] for k in FIELDS_BY_KEY if "." in k)
# Keys whose value decides where the user's code is sent (the workspace-host rule), each
# with its "is this this machine?" test, made on the URL the engine itself connects to.
HOST_KEYS: Final = ("host", "openai.baseUrl")
IS_LOCAL: Final[dict[str, Callable[[str], bool]]] = {
    "host": is_loopback,
    "openai.baseUrl": is_loopback_base_url,
}
# Machine-scoped keys a workspace file may never set, not even with the remote-host opt-in:
# which secret is sent, which file is loaded, the opt-in itself, and every provider /
# endpoint / key / budget table (a key equal to a prefix or under it: `providers.x.apiKeyEnv`).
USER_ONLY_KEYS: Final = ("openai.apiKeyEnv", "embedded.modelPath", "allowRemoteHostFromWorkspace")
USER_ONLY_PREFIXES: Final = ("providers", "fallback", "budget")


def is_user_only(key: str) -> bool:
    """True for a machine-scoped key: only the user's own sources may set it.

    >>> is_user_only("openai.apiKeyEnv"), is_user_only("providers.vllm.baseUrl")
    (True, True)
    >>> is_user_only("host"), is_user_only("model"), is_user_only("budgetary")
    (False, False, False)
    """
    return key in USER_ONLY_KEYS or any(
        key == prefix or key.startswith(prefix + ".") for prefix in USER_ONLY_PREFIXES
    )


@dataclass(frozen=True)
class OpenAISettings:
    base_url: str = ""
    api_key_env: str = ""


@dataclass(frozen=True)
class EmbeddedSettings:
    model_path: str = ""
    threads: int = 0


@dataclass(frozen=True)
class TimeoutSettings:
    connect_ms: int = 3000
    first_token_ms: int = 120_000
    between_tokens_ms: int = 30_000
    total_ms: int = 600_000


@dataclass(frozen=True)
class ActionSettings:
    enabled: tuple[str, ...] = ACTION_NAMES

    def is_enabled(self, name: str) -> bool:
        return name in self.enabled


@dataclass(frozen=True)
class GenerationSettings:
    repair_rounds: int = 2
    apply_invalid: bool = False


@dataclass(frozen=True)
class DistillSettings:
    candidates: int = 4
    models: tuple[str, ...] = ()
    agree: int = 2
    concurrency: int = 2
    provenance: bool = True


@dataclass(frozen=True)
class CompletionSettings:
    model: str = ""
    enabled: bool = True
    disabled_languages: tuple[str, ...] = ()
    ai_item: bool = True
    max_tokens: int = 64
    deadline_ms: int = 1500
    debounce_min_ms: int = 30
    debounce_max_ms: int = 200
    prefix_tokens: int = 1024
    suffix_tokens: int = 256
    other_documents: bool = True
    temperature: float = 0.1

    def enabled_for(self, language_id: str | None) -> bool:
        return self.enabled and (language_id or "") not in self.disabled_languages


@dataclass(frozen=True)
class CheckerSettings:
    """The Aethel checker's limits and optional checks (language.check_options mirrors it)."""

    strict: bool = False
    timeout_ms: int = 2000
    intent_budget_ms: int = 6000
    file_budget_ms: int = 30_000
    verify_implied: bool = False
    symbolic_overflow: bool = False


@dataclass(frozen=True)
class InspectorSettings:
    enabled: bool = False
    size: int = 50


@dataclass(frozen=True)
class Settings:
    """The effective settings: every field typed and defaulted (never partially valid)."""

    engine: EngineSetting = "auto"
    host: str = DEFAULT_HOST
    openai: OpenAISettings = OpenAISettings()
    embedded: EmbeddedSettings = EmbeddedSettings()
    model: str = ""
    temperature: float = 0.2
    max_tokens: int = 1024
    context_size: int = 8192
    keep_alive: str = "30m"
    timeouts: TimeoutSettings = TimeoutSettings()
    actions: ActionSettings = ActionSettings()
    generation: GenerationSettings = GenerationSettings()
    distill: DistillSettings = DistillSettings()
    completion: CompletionSettings = CompletionSettings()
    checker: CheckerSettings = CheckerSettings()
    inspector: InspectorSettings = InspectorSettings()
    allow_remote_host_from_workspace: bool = False
    log_level: LogLevel = "info"
    # Machine-scoped (user config file only): see config/providers.py.
    providers: ProviderConfig = field(default_factory=ProviderConfig)
    max_message_mb: int = 64

    @property
    def api_key_envs(self) -> tuple[str, ...]:
        """Every environment variable that holds a key: what the redactors must hide."""
        return (self.openai.api_key_env, *(p.api_key_env for p in self.providers.providers))

    @property
    def completion_model(self) -> str:
        """The model for completion: `completion.model`, else the action model."""
        return self.completion.model or self.model

    @property
    def keep_alive_value(self) -> str | int | float:
        """keep_alive as Ollama wants it: a bare number is seconds (a JSON number, since
        Ollama parses a JSON string with Go's ParseDuration, which demands a unit)."""
        text = self.keep_alive
        if not _NUMBER.match(text):
            return text
        number = float(text)
        return int(number) if number.is_integer() else number


def build_settings(values: dict[str, Any]) -> Settings:
    """Assemble `Settings` from parsed flat values (every key of FIELDS present)."""
    v = values
    return Settings(
        engine=v["engine"],
        host=v["host"],
        openai=OpenAISettings(base_url=v["openai.baseUrl"], api_key_env=v["openai.apiKeyEnv"]),
        embedded=EmbeddedSettings(
            model_path=v["embedded.modelPath"], threads=v["embedded.threads"]
        ),
        model=v["model"],
        temperature=v["temperature"],
        max_tokens=v["maxTokens"],
        context_size=v["contextSize"],
        keep_alive=v["keepAlive"],
        timeouts=TimeoutSettings(
            connect_ms=v["timeouts.connectMs"],
            first_token_ms=v["timeouts.firstTokenMs"],
            between_tokens_ms=v["timeouts.betweenTokensMs"],
            total_ms=v["timeouts.totalMs"],
        ),
        actions=ActionSettings(enabled=tuple(v["actions.enabled"])),
        generation=GenerationSettings(
            repair_rounds=v["generation.repairRounds"],
            apply_invalid=v["generation.applyInvalid"],
        ),
        distill=DistillSettings(
            candidates=v["distill.candidates"],
            models=tuple(v["distill.models"]),
            agree=v["distill.agree"],
            concurrency=v["distill.concurrency"],
            provenance=v["distill.provenance"],
        ),
        completion=CompletionSettings(
            model=v["completion.model"],
            enabled=v["completion.enabled"],
            disabled_languages=tuple(v["completion.disabledLanguages"]),
            ai_item=v["completion.aiItem"],
            max_tokens=v["completion.maxTokens"],
            deadline_ms=v["completion.deadlineMs"],
            debounce_min_ms=v["completion.debounceMinMs"],
            debounce_max_ms=v["completion.debounceMaxMs"],
            prefix_tokens=v["completion.prefixTokens"],
            suffix_tokens=v["completion.suffixTokens"],
            other_documents=v["completion.otherDocuments"],
            temperature=v["completion.temperature"],
        ),
        checker=CheckerSettings(
            strict=v["checker.strict"],
            timeout_ms=v["checker.timeoutMs"],
            intent_budget_ms=v["checker.intentBudgetMs"],
            file_budget_ms=v["checker.fileBudgetMs"],
            verify_implied=v["checker.verifyImplied"],
            symbolic_overflow=v["checker.symbolicOverflow"],
        ),
        inspector=InspectorSettings(enabled=v["inspector.enabled"], size=v["inspector.size"]),
        allow_remote_host_from_workspace=v["allowRemoteHostFromWorkspace"],
        log_level=v["logLevel"],
        max_message_mb=v["maxMessageMb"],
    )


def default_values() -> dict[str, Any]:
    return {f.key: f.default for f in FIELDS}
