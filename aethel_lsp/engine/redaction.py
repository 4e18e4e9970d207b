"""Secrets out of every string that leaves the process: the `Redactor`.

Two strengths.  `text()` (the request inspector, files of prompts) removes the known key
values and also well-known key shapes (`sk-...`, bearer tokens, `api_key = ...`).
`known()` (every LSP message, log line, CLI output, report) removes only the values of
the key variables actually configured, because the shapes would also blank out the
user's own code in an edit; a value cut short (an upstream line shortened inside an
error message) is removed too, from its first eight characters on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "[REDACTED]"
MIN_SECRET = 4  # shorter values are not secrets worth hiding (and would blank out text)
MIN_PREFIX = 8  # a cut-off key is removed from this many characters on
# Environment variables whose values are always secrets when set.
SECRET_ENV_NAMES = ("OPENAI_API_KEY", "OLLAMA_API_KEY", "ANTHROPIC_API_KEY", "HF_TOKEN",
                    "GITHUB_TOKEN", "AETHEL_API_KEY")


# Shapes of keys that must never be stored even if nobody told us they are secrets.
_KEY_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), rf"\1 {REDACTED}"),
    (re.compile(r"(?i)(authorization\s*[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+(\s+[^\s\"',}]+)?"),
     rf"\1{REDACTED}"),
    (re.compile(r"(?i)((?:api[_-]?key|apikey|secret|password|passwd|access[_-]?token"
                r"|auth[_-]?token|token)[\"']?\s*[:=]\s*[\"']?)([^\s\"',}]{4,})"),
     rf"\1{REDACTED}"),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{16,}"), REDACTED),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}"), REDACTED),
    (re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}"), REDACTED),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), REDACTED),
    (re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"), REDACTED),
    (re.compile(r"\bhf_[A-Za-z0-9]{20,}"), REDACTED),
    (re.compile(r"(?i)\b(https?://)[^/\s:@]+:[^/\s@]+@"), rf"\1{REDACTED}@"),
)


class Redactor:
    """Removes secrets from text: known values first, then well-known key shapes."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is removed whole.
        self.secrets = sorted({s for s in secrets if len(s) >= MIN_SECRET}, key=len, reverse=True)

    @classmethod
    def from_env(cls, env: Mapping[str, str], *api_key_envs: str) -> Redactor:
        """The values of the well-known key variables and of every configured one."""
        names = {*SECRET_ENV_NAMES, *(name for name in api_key_envs if name)}
        return cls(env.get(name, "") for name in names)

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def known(self, value: str) -> str:
        """`value` without any known key value, whole or cut short (see the module doc)."""
        for secret in self.secrets:
            value = value.replace(secret, REDACTED)
            if len(secret) > MIN_PREFIX and secret[:MIN_PREFIX] in value:
                value = _cut_prefixes(value, secret)
        return value

    def known_value(self, value: Any) -> Any:
        """`known()` applied to every string inside a JSON-like value."""
        if not self.secrets:
            return value
        if isinstance(value, str):
            return self.known(value)
        if isinstance(value, dict):
            return {self.known_value(k): self.known_value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.known_value(v) for v in value]
        return value

    def text(self, value: str) -> str:
        value = self.known(value)
        for pattern, replacement in _KEY_PATTERNS:
            value = pattern.sub(replacement, value)
        return value

    def value(self, value: Any) -> Any:
        """Redact every string inside a JSON-like value (keys named like secrets too)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: REDACTED if _secret_key(k) and v else self.value(v)
                    for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.value(v) for v in value]
        return value


def _secret_key(key: object) -> bool:
    return isinstance(key, str) and bool(
        re.fullmatch(r"(?i)(authorization|api[_-]?key|apikey|password|secret|token)", key))


def _cut_prefixes(text: str, secret: str) -> str:
    """Replace each run of `secret`'s first characters (at least MIN_PREFIX of them)."""
    out: list[str] = []
    start = 0
    head = secret[:MIN_PREFIX]
    while (found := text.find(head, start)) >= 0:
        end = found + MIN_PREFIX
        while end < len(text) and end - found < len(secret) and text[end] == secret[end - found]:
            end += 1
        out.append(text[start:found] + REDACTED)
        start = end
    out.append(text[start:])
    return "".join(out)


class StreamRedactor:
    """`Redactor.known` over a text stream cut into pieces (tokens).

    A key split across pieces would pass a per-piece check, so the end of the text that
    could be the start of a key is held back until the next piece (or `flush`) shows
    whether it is one.  Held back only when it matches: normal text flows unchanged.
    """

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor
        self.pending = ""

    def feed(self, piece: str) -> str:
        text = self.pending + piece
        hold = max((_key_start_at_end(text, s) for s in self.redactor.secrets), default=0)
        self.pending = text[len(text) - hold:] if hold else ""
        return self.redactor.known(text[: len(text) - hold])

    def flush(self) -> str:
        text, self.pending = self.pending, ""
        return self.redactor.known(text)


def _key_start_at_end(text: str, secret: str) -> int:
    """The length of the longest end of `text` that is a proper start of `secret`."""
    for size in range(min(len(text), len(secret) - 1), 0, -1):
        if text.endswith(secret[:size]):
            return size
    return 0
