"""OLLAMA_HOST parsing against Ollama's own test vectors, and the loopback rule."""

from __future__ import annotations

import doctest
from typing import Any

import pytest

import aethel_lsp.hosts as hosts_module
from aethel_lsp.hosts import (
    is_loopback,
    is_loopback_base_url,
    is_this_machine,
    normalize_openai_base_url,
    ollama_host_from_env,
    parse_ollama_host,
)
from tests.unit.engine_support import fixture_json

PYTHON_CASES: list[dict[str, Any]] = fixture_json("host_parsing/python_parse_host_cases.json")
GO_CASES: list[dict[str, Any]] = fixture_json("host_parsing/go_envconfig_Host_cases.json")
# Where Go's server-side envconfig.Host differs on purpose (see hosts.py's module docstring).
GO_DIFFERENCES = {
    "only port": "http://127.0.0.1:1234",
    "zero port": "http://127.0.0.1:0",
    "ollama.com": "http://ollama.com:11434",
}
GO_INVALID_PORTS = {"too large port", "too small port"}


@pytest.mark.parametrize("case", PYTHON_CASES, ids=lambda c: repr(c["host"]))
def test_python_client_cases(case: dict[str, Any]) -> None:
    assert parse_ollama_host(case["host"]) == case["expect"]


@pytest.mark.parametrize("case", GO_CASES, ids=lambda c: c["name"])
def test_go_cases(case: dict[str, Any]) -> None:
    if case["name"] in GO_INVALID_PORTS:
        with pytest.raises(ValueError, match="invalid port"):
            parse_ollama_host(case["OLLAMA_HOST"])
        return
    expected = GO_DIFFERENCES.get(case["name"], case["expect"])
    assert parse_ollama_host(case["OLLAMA_HOST"]) == expected


def test_parse_is_idempotent() -> None:
    for case in PYTHON_CASES:
        assert parse_ollama_host(case["expect"]) == case["expect"]


def test_bad_scheme_is_a_clear_value_error() -> None:
    with pytest.raises(ValueError, match="use http or https"):
        parse_ollama_host("ftp://example.com")


def test_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "0.0.0.0:9999")
    assert ollama_host_from_env() == "http://0.0.0.0:9999"
    monkeypatch.delenv("OLLAMA_HOST")
    assert ollama_host_from_env() == "http://127.0.0.1:11434"


@pytest.mark.parametrize(("url", "expected"), [
    ("http://127.0.0.1:11434", True), ("127.0.0.2", True), ("localhost:8080", True),
    ("http://[::1]:8000/v1", True), ("https://ollama.localhost", False), (":11434", True),
    ("http://192.168.1.10:11434", False), ("https://api.example.com/v1", False),
    ("0.0.0.0", False), ("not a url [", False), ("http://127.0.0.1.evil.com", False),
])
def test_is_loopback(url: str, expected: bool) -> None:
    assert is_loopback(url) is expected


# Spellings a repository could use to reach another machine while looking local, or to
# make the check and the connection disagree: each is refused or judged "not this machine".
HOSTILE_SPELLINGS = [
    "'http://192.0.2.1:11434'", '"http://192.0.2.1:11434"', "http://192.0.2.1:11434 ",
    "[::ffff:10.0.0.1]", "http://[::ffff:10.0.0.1]:11434", "0x7f000001", "http://0x7f000001:1",
    "2130706433", "http://2130706433:11434", "0177.0.0.1", "127.1", "127.0.0.1@evil:11434",
    "http://127.0.0.1@evil:11434", "localhost.evil.example", "http://localhost.evil.example:1",
    "localhost.", "127.0.0.1.", "http://127.0.0.1.:11434", "LOCALHOST", "http://LocalHost:11434",
    " 192.0.2.1", "192.0.2.1\t", "127.0.0.1%2f@evil", "http://127.0.0.%31:11434",
    "http://%6c%6fcalhost:11434", "[fe80::1%25eth0]", "0.0.0.0", "[::]", "http://[::]:11434",
    "http://127.0.0.1\\@evil.example", "http://evil.example\\.127.0.0.1", "::ffff:192.0.2.1",
]


@pytest.mark.parametrize("spelling", HOSTILE_SPELLINGS)
def test_hostile_spellings_are_never_this_machine(spelling: str) -> None:
    assert is_loopback(spelling) is False
    assert is_loopback_base_url(spelling) is False


@pytest.mark.parametrize("spelling", [
    "127.0.0.1", "localhost", ":11434", "http://127.0.0.1:11434", "[::1]", "::1",
    "http://[::ffff:127.0.0.1]:11434", "https://localhost/ollama", "127.9.8.7:1",
])
def test_local_spellings(spelling: str) -> None:
    assert is_loopback(spelling) is True
    assert is_this_machine(parse_ollama_host(spelling)) is True


@pytest.mark.parametrize("spelling", [
    "0x7f000001", "2130706433", "0177.0.0.1", "127.1", "127.0.0.1@evil:11434", "localhost.",
    "127.0.0.1.", "127.0.0.%31", "[fe80::1%eth0]", "a..b", "-a.example", "http://h:1/a b",
    "http://h:1/p?q", "http://h:1/p#f",
])
def test_unclear_spellings_do_not_parse(spelling: str) -> None:
    with pytest.raises(ValueError):
        parse_ollama_host(spelling)
    with pytest.raises(ValueError):
        normalize_openai_base_url(spelling)


def test_base_url_keeps_an_implicit_port() -> None:
    assert normalize_openai_base_url("https://api.example.com") == "https://api.example.com/v1"
    assert normalize_openai_base_url(":8000") == "http://127.0.0.1:8000/v1"


def test_doctests() -> None:
    assert doctest.testmod(hosts_module).failed == 0
