"""The CLI as a real process against the independent strict Ollama emulator.

Same shapes as `test_cli.py`, but the server speaks exactly Go's dialect: lines split
across chunks, `think` on by default for thinking models, per-endpoint 404 texts, cloud
entries in `/api/tags`, a model whose GGUF has no parameter count.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.ollama_strict import StrictOllama

MODEL_KEYS = {"name", "sizeBytes", "parameters", "contextLength", "family", "quantization",
              "capabilities"}
GENERATE_KEYS = {"text", "model", "promptTokens", "tokensGenerated", "timeToFirstTokenMs",
                 "latencyMs", "loadMs", "tokensPerSecond", "doneReason",
                 "provider", "costUsd", "fallbackFrom"}  # issue 19


@pytest.fixture
def emu() -> Iterator[StrictOllama]:
    with StrictOllama() as server:
        server.default_script.split = "split"
        yield server


def cli(env: dict[str, str], emu: StrictOllama, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aethel_lsp", *args, "--json", "--host", emu.url],
                          env=env, capture_output=True, text=True, timeout=60)


def ok(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def failed(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # one clear line, no traceback
    return lines[0]


def test_status_and_models(isolated_env: dict[str, str], emu: StrictOllama) -> None:
    status = ok(cli(isolated_env, emu, "status"))
    assert status["available"] is True and status["version"] == "0.33.0"
    assert status["host"] == emu.url and status["error"] is None
    assert "gpt-oss:120b-cloud" in [m["name"] for m in status["models"]]
    in_status = {m["name"]: m for m in status["models"]}
    assert all(set(m) == MODEL_KEYS for m in in_status.values())
    assert in_status["qwen2.5-coder:1.5b"]["parameters"] == 1543714304  # same as `models`
    assert in_status["qwen2.5-coder:1.5b"]["contextLength"] == 32768
    models = {m["name"]: m for m in ok(cli(isolated_env, emu, "models"))}
    assert all(set(m) == MODEL_KEYS for m in models.values())
    assert models["qwen2.5-coder:1.5b"]["parameters"] == 1543714304
    assert models["qwen2.5-coder:1.5b"]["contextLength"] == 32768
    assert models["mystery:7b"]["parameters"] is None  # no general.parameter_count
    assert models["gpt-oss:120b-cloud"]["contextLength"] == 131072


def test_show_has_the_size_from_the_listing(isolated_env: dict[str, str],
                                            emu: StrictOllama) -> None:
    shown = ok(cli(isolated_env, emu, "show", "llama3.2"))
    assert set(shown) == MODEL_KEYS
    assert shown["name"] == "llama3.2" and shown["sizeBytes"] == 2019393189
    assert shown["parameters"] == 3212749888 and shown["contextLength"] == 131072
    line = failed(cli(isolated_env, emu, "show", "nope"))
    assert "ollama pull nope" in line and "not running" not in line


def test_ps_keeps_ollamas_local_offset(isolated_env: dict[str, str], emu: StrictOllama) -> None:
    [running] = ok(cli(isolated_env, emu, "ps"))
    assert running["name"] == "qwen2.5-coder:1.5b" and running["expiresAt"].endswith("-07:00")


def test_generate_metrics_are_ollamas_numbers(isolated_env: dict[str, str],
                                              emu: StrictOllama) -> None:
    emu.script(tokens=["print", "(\"é🙂\u0085\")"], eval_count=259,
               eval_duration=4_232_710_000, prompt_eval_count=26, done_reason="length")
    result = ok(cli(isolated_env, emu, "generate", "hi", "--model", "qwen3:8b",
                    "--max-tokens", "259"))
    assert set(result) == GENERATE_KEYS
    assert result["text"] == "print(\"é🙂\u0085\")"
    assert result["tokensPerSecond"] == round(259 / 4_232_710_000 * 1e9, 2)
    assert (result["promptTokens"], result["tokensGenerated"]) == (26, 259)
    assert result["doneReason"] == "length"
    body = emu.bodies("/api/generate")[-1]
    assert body["think"] is False and body["options"] == {"num_predict": 259}


@pytest.mark.parametrize(("args", "expected"), [
    (("generate", "hi", "--model", "all-minilm"), "embedding model"),
    (("generate", "hi", "--model", "codellama:7b"), "ollama pull codellama:7b"),
    (("pull", "nonexistent-model"), "no such model"),
])
def test_errors_are_one_clear_line(isolated_env: dict[str, str], emu: StrictOllama,
                                   args: tuple[str, ...], expected: str) -> None:
    assert expected in failed(cli(isolated_env, emu, *args))


def test_midstream_error_is_reported_with_ollamas_text(isolated_env: dict[str, str],
                                                       emu: StrictOllama) -> None:
    emu.script(fault="midstream_error", error_text="an error was encountered while running")
    line = failed(cli(isolated_env, emu, "generate", "hi", "--model", "llama3.2"))
    assert "an error was encountered while running" in line


def test_pull_streams_progress_then_success(isolated_env: dict[str, str],
                                            emu: StrictOllama) -> None:
    result = cli(isolated_env, emu, "pull", "tiny:1b")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[-1]["status"] == "success"
    assert [p["percentage"] for p in lines if p["total"]] == [0, 25, 75, 100]


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_generate_rejects_numbers_json_cannot_carry(isolated_env: dict[str, str],
                                                    emu: StrictOllama, value: str) -> None:
    result = cli(isolated_env, emu, "generate", "hi", "--model", "llama3.2",
                 f"--temperature={value}")
    assert result.returncode == 2 and "finite" in result.stderr
    assert "Traceback" not in result.stderr


def test_generate_rejects_a_non_positive_token_budget(isolated_env: dict[str, str],
                                                      emu: StrictOllama) -> None:
    result = cli(isolated_env, emu, "generate", "hi", "--model", "llama3.2", "--max-tokens", "-5")
    assert result.returncode == 2 and "positive" in result.stderr
    assert emu.bodies("/api/generate") == []


def test_human_output_never_parses_server_text_as_markup(isolated_env: dict[str, str]) -> None:
    """GGUF metadata (family, quantization) is arbitrary text from the model file's author;
    a `[/]` in it used to crash `models`/`status` with rich's MarkupError."""
    from tests.fakes.ollama_strict import StrictModel, default_models

    weird = StrictModel("weird:latest", "llama", "ll[/]ama", "[b]1B", "Q4_[/]K",
                        ("completion",), 1_000_000_000, 4096, 1)
    outputs: dict[str, str] = {}
    with StrictOllama([*default_models(), weird]) as emu:
        for command in ("models", "status", "recommend", "show"):
            extra = ["weird"] if command == "show" else []
            result = subprocess.run(
                [sys.executable, "-m", "aethel_lsp", command, *extra, "--host", emu.url],
                env=isolated_env, capture_output=True, text=True, timeout=60)
            assert result.returncode == 0, (command, result.stderr)
            assert "Traceback" not in result.stderr
            outputs[command] = result.stdout
    assert "ll[/]ama" in outputs["models"] and "Q4_[/]K" in outputs["status"]
    assert "ll[/]ama" in outputs["show"]


def test_check_reports_deep_nesting_in_one_line(isolated_env: dict[str, str],
                                                tmp_path: Path) -> None:
    deep = tmp_path / "deep.ae"
    deep.write_text("intent a() {\n    guard { " + "(" * 400 + "x" + ")" * 400 + " > 0; }\n}\n",
                    encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "aethel_lsp", "check", str(deep)],
                            env=isolated_env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-300:]
    assert "deep.ae:2:" in result.stdout


@pytest.mark.parametrize("host", ["::1:11434", "http://[zz::1]:80", "http://a b:80"])
def test_invalid_host_is_one_line_not_a_traceback(isolated_env: dict[str, str],
                                                  host: str) -> None:
    result = subprocess.run([sys.executable, "-m", "aethel_lsp", "status", "--host", host],
                            env=isolated_env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr[-400:]
    assert len(result.stderr.strip().splitlines()) == 1
