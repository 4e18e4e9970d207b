"""Providers, the fallback chain and the daily budget: machine-scoped settings.

```toml
fallback = ["local", "team", "claude"]
budget = { dailyUsd = 2.0 }

[providers.team]
kind = "openai"
hosts = ["http://gpu1:8000/v1", "http://gpu2:8000/v1"]
```

These decide where the user's code may be sent and what it may cost, so they are read
only from the user's own config file: `resolve.py` ignores them (with a message) when a
workspace file or an editor payload carries them.  Every value is checked here; a bad
provider is dropped with a `ProblemReport` naming its key, the others keep working.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from aethel_lsp.config.provider_settings import (
    BudgetSettings,
    Price,
    ProviderConfig,
    ProviderKind,
    ProviderSettings,
)
from aethel_lsp.config.schema import InvalidValue, p_env_name, p_host, p_int, p_url_or_empty

__all__ = ["BudgetSettings", "Price", "ProviderConfig", "ProviderKind", "ProviderSettings"]
PROVIDER_KINDS: Final = ("ollama", "openai", "anthropic", "embedded")
MACHINE_KEYS: Final = ("providers", "fallback", "budget")
LOCAL: Final = "local"  # the fallback name of today's engine setting (auto/ollama/embedded)
ANTHROPIC_VERSIONS: Final = ("2026-10-21", "2023-06-01")
DEFAULT_HOSTS: Final[dict[str, str]] = {
    "ollama": "http://127.0.0.1:11434",
    "anthropic": "https://api.anthropic.com",
}
DEFAULT_KEY_ENV: Final[dict[str, str]] = {"anthropic": "ANTHROPIC_API_KEY"}
PROVIDER_KEYS: Final = ("kind", "hosts", "apiKeyEnv", "apiVersion", "model",
                        "requestsPerMinute", "tokensPerMinute", "prices", "maxRetries")
_NAME = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class ProblemReport:
    """One bad value: the dotted key it sits at, and what is wrong (a sentence)."""

    key: str
    message: str
    severity: Literal["error", "warning"] = "error"


@dataclass
class _Parse:
    problems: list[ProblemReport] = field(default_factory=list)

    def report(self, key: str, message: str, severity: Literal["error", "warning"] = "error"
               ) -> None:
        self.problems.append(ProblemReport(key, message, severity))


def parse_provider_config(raw: Mapping[str, Any]) -> tuple[ProviderConfig, list[ProblemReport]]:
    """`providers`, `fallback` and `budget` from the user's config (raw TOML values)."""
    parse = _Parse()
    providers = _providers(raw.get("providers"), parse) if "providers" in raw else ()
    names = {p.name for p in providers}
    fallback = _fallback(raw["fallback"], names, parse) if "fallback" in raw else ()
    budget = _budget(raw["budget"], parse) if "budget" in raw else BudgetSettings()
    return ProviderConfig(providers, fallback, budget), parse.problems


def _providers(raw: Any, parse: _Parse) -> tuple[ProviderSettings, ...]:
    if not isinstance(raw, Mapping):
        parse.report("providers", "expected a table of providers, e.g. [providers.team]")
        return ()
    out: list[ProviderSettings] = []
    for name, table in raw.items():
        key = f"providers.{name}"
        if not _NAME.fullmatch(name) or name == LOCAL:
            parse.report(key, f"provider name {name!r} must be letters, digits, '-' or '_', "
                              f"and not {LOCAL!r} (that name is the local engine)")
            continue
        if not isinstance(table, Mapping):
            parse.report(key, "expected a table with at least `kind`")
            continue
        provider = _provider(name, table, parse)
        if provider is not None:
            out.append(provider)
    return tuple(out)


def _provider(name: str, table: Mapping[str, Any], parse: _Parse) -> ProviderSettings | None:
    key = f"providers.{name}"
    for unknown in sorted(set(table) - set(PROVIDER_KEYS)):
        close = difflib.get_close_matches(unknown, PROVIDER_KEYS, n=1)
        hint = f" (did you mean `{close[0]}`?)" if close else ""
        parse.report(f"{key}.{unknown}", f"unknown provider setting `{unknown}`{hint}; it is "
                                         "ignored", "warning")
    kind = table.get("kind")
    if kind not in PROVIDER_KINDS:
        choices = ", ".join(f'"{k}"' for k in PROVIDER_KINDS)
        parse.report(f"{key}.kind", f"expected `kind` = one of {choices}, got {kind!r}; "
                                    f"provider {name!r} is not used")
        return None
    try:
        hosts = _hosts(str(kind), table.get("hosts"))
        return ProviderSettings(
            name=name,
            kind=kind,
            hosts=hosts,
            api_key_env=_field(table, "apiKeyEnv", p_env_name,
                               DEFAULT_KEY_ENV.get(str(kind), ""), key),
            api_version=_api_version(str(kind), table.get("apiVersion"), key),
            model=_field(table, "model", _model_name, "", key),
            requests_per_minute=_field(table, "requestsPerMinute", p_int(1), None, key),
            tokens_per_minute=_field(table, "tokensPerMinute", p_int(1), None, key),
            prices=_prices(table.get("prices"), key),
            max_retries=_field(table, "maxRetries", p_int(0, 10), 3, key),
        )
    except _BadField as exc:
        where = exc.key if exc.key.startswith("providers.") else f"{key}.{exc.key}"
        parse.report(where, f"{exc.message}; provider {name!r} is not used")
        return None


class _BadField(Exception):
    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


def _field(table: Mapping[str, Any], name: str, parser: Any, default: Any, prefix: str) -> Any:
    if name not in table:
        return default
    try:
        return parser(table[name])
    except InvalidValue as exc:
        raise _BadField(f"{prefix}.{name}", f"`{name}`: {exc}") from exc


def _hosts(kind: str, raw: Any) -> tuple[str, ...]:
    if raw is None:
        if kind == "openai":
            raise _BadField("hosts", "an openai provider needs `hosts`, e.g. "
                                     '["http://127.0.0.1:8000/v1"]')
        return (DEFAULT_HOSTS[kind],) if kind in DEFAULT_HOSTS else ()
    if kind == "embedded":
        raise _BadField("hosts", "an embedded provider runs in this process: it has no `hosts`")
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not items or not all(isinstance(h, str) for h in items):
        raise _BadField("hosts", "`hosts`: expected a non-empty list of URLs")
    check = p_host if kind == "ollama" else _url
    try:
        return tuple(check(h) for h in items)
    except InvalidValue as exc:
        raise _BadField("hosts", f"`hosts`: {exc}") from exc


def _url(value: Any) -> str:
    text = p_url_or_empty(value)
    if not text:
        raise InvalidValue("expected an http(s) URL, got an empty string")
    return text


def _api_version(kind: str, raw: Any, prefix: str) -> str:
    if raw is None:
        return ANTHROPIC_VERSIONS[0] if kind == "anthropic" else ""
    if kind != "anthropic":
        raise _BadField(f"{prefix}.apiVersion", "`apiVersion` is an anthropic setting")
    if raw not in ANTHROPIC_VERSIONS:
        raise _BadField(f"{prefix}.apiVersion", f"`apiVersion`: expected one of "
                                                f"{', '.join(ANTHROPIC_VERSIONS)}, got {raw!r}")
    return str(raw)


def _model_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidValue(f"expected a model name, got {value!r}")
    return value.strip()


def _usd(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidValue(f"expected a number of US dollars, got {value!r}")
    number = float(value)
    if math.isnan(number) or math.isinf(number) or number < 0:
        raise InvalidValue(f"expected a number >= 0, got {value!r}")
    return number


def _prices(raw: Any, prefix: str) -> tuple[tuple[str, Price], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise _BadField(f"{prefix}.prices", '`prices`: expected a table such as '
                                            '{ "model" = { input = 1.0, output = 5.0 } }')
    out: list[tuple[str, Price]] = []
    for model, price in raw.items():
        key = f"{prefix}.prices.{model}"
        if not isinstance(price, Mapping) or set(price) != {"input", "output"}:
            raise _BadField(key, f"`prices.{model}`: expected {{ input = ..., output = ... }} "
                                 "in USD per million tokens")
        try:
            out.append((str(model), Price(_usd(price["input"]), _usd(price["output"]))))
        except InvalidValue as exc:
            raise _BadField(key, f"`prices.{model}`: {exc}") from exc
    return tuple(out)


def _fallback(raw: Any, names: set[str], parse: _Parse) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(n, str) for n in raw):
        parse.report("fallback", f'expected a list of provider names such as ["{LOCAL}", '
                                 f'"team"], got {raw!r}; no fallback is used')
        return ()
    chain: list[str] = []
    for name in raw:
        if name != LOCAL and name not in names:
            known = ", ".join([LOCAL, *sorted(names)])
            parse.report("fallback", f"`fallback` names {name!r}, which is not a provider "
                                     f"(known: {known}); it is skipped")
        elif name in chain:
            parse.report("fallback", f"`fallback` names {name!r} twice", "warning")
        else:
            chain.append(name)
    return tuple(chain)


def _budget(raw: Any, parse: _Parse) -> BudgetSettings:
    if not isinstance(raw, Mapping) or set(raw) - {"dailyUsd"}:
        parse.report("budget", "expected `budget = { dailyUsd = 2.0 }`; no budget is enforced")
        return BudgetSettings()
    if "dailyUsd" not in raw:
        return BudgetSettings()
    try:
        return BudgetSettings(_usd(raw["dailyUsd"]))
    except InvalidValue as exc:
        parse.report("budget.dailyUsd", f"`dailyUsd`: {exc}; no budget is enforced")
        return BudgetSettings()


def split_model(name: str, providers: ProviderConfig) -> tuple[str | None, str]:
    """`provider/model` -> (provider, model); a bare name (or an unknown prefix, such as
    Ollama's `library/model`) is the local engine's.

    >>> config = ProviderConfig((ProviderSettings("claude", "anthropic"),))
    >>> split_model("claude/claude-haiku-5-5", config), split_model("qwen2.5-coder", config)
    (('claude', 'claude-haiku-5-5'), (None, 'qwen2.5-coder'))
    >>> split_model("hf.co/org/model", config)
    (None, 'hf.co/org/model')
    """
    prefix, slash, rest = name.partition("/")
    if slash and rest and providers.get(prefix) is not None:
        return prefix, rest
    return None, name


def provider_name(model: str, providers: ProviderConfig) -> str:
    """Who serves `model`: its provider's name, or "local".

    >>> provider_name("qwen2.5-coder:1.5b", ProviderConfig())
    'local'
    """
    return split_model(model, providers)[0] or LOCAL
