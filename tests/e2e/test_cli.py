"""Every `aethel-lsp` subcommand as a user runs it: a real process against the fake Ollama.

The fake runs in this test process; the CLI is `python -m aethel_lsp ...` with HOME, XDG
dirs and the state dir pointed at tmp dirs (`isolated_env`), so nothing touches the
real user's files.  `--json` outputs are checked against the shapes of issue 3.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.fakes.ollama import FakeOllama, Fault, Reply

CODER = "qwen2.5-coder:1.5b"
CHAT = "llama3.2:latest"
STATUS_KEYS = {"available", "host", "engine", "version", "models", "running", "error"}
MODEL_KEYS = {
    "name",
    "sizeBytes",
    "parameters",
    "contextLength",
    "family",
    "quantization",
    "capabilities",
}
GENERATE_KEYS = {
    "text",
    "model",
    "promptTokens",
    "tokensGenerated",
    "timeToFirstTokenMs",
    "latencyMs",
    "loadMs",
    "tokensPerSecond",
    "doneReason",
    "provider",  # issue 19: who served, what it cost, who did not and why
    "costUsd",
    "fallbackFrom",
}


def run_cli(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aethel_lsp", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def ok_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """Exit 1 and exactly one `error:` line, the last on stderr (progress may precede it)."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    return errors[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- status -------------------------------------------------------------------------------------
def test_status_json(fake_ollama: FakeOllama, isolated_env: dict[str, str]) -> None:
    status = ok_json(run_cli(isolated_env, "status", "--host", fake_ollama.url, "--json"))
    assert set(status) >= STATUS_KEYS
    assert status["available"] is True and status["engine"] == "ollama"
    assert status["host"] == fake_ollama.url and status["version"] == "0.33.0"
    assert status["error"] is None
    assert {m["name"] for m in status["models"]} == {m.name for m in fake_ollama.models}
    assert all(set(m) == MODEL_KEYS for m in status["models"])


def test_status_human(fake_ollama: FakeOllama, isolated_env: dict[str, str]) -> None:
    result = run_cli(isolated_env, "status", "--host", fake_ollama.url)
    assert result.returncode == 0, result.stderr
    assert f"Ollama 0.33.0 is running at {fake_ollama.url}" in result.stdout
    assert CODER in result.stdout


def test_status_offline_exits_1_with_one_clear_line(isolated_env: dict[str, str]) -> None:
    host = f"http://127.0.0.1:{free_port()}"
    result = run_cli(isolated_env, "status", "--host", host)
    line = one_error_line(result)
    assert f"Ollama is not running at {host}" in line and "ollama serve" in line
    assert "not found" not in line
    assert result.stdout == ""
    as_json = run_cli(isolated_env, "status", "--host", host, "--json")
    assert as_json.returncode == 1
    status = json.loads(as_json.stdout)
    assert status["available"] is False and status["host"] == host
    assert f"Ollama is not running at {host}" in status["error"]


def test_host_precedence(
    fake_ollama: FakeOllama, isolated_env: dict[str, str], tmp_path: Path
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    env = {**isolated_env, "OLLAMA_HOST": fake_ollama.url}
    assert (
        ok_json(run_cli(env, "status", "--engine", "ollama", "--json"))["host"] == fake_ollama.url
    )

    config = Path(isolated_env["XDG_CONFIG_HOME"]) / "aethel-lsp" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f'host = "{fake_ollama.url}"\n')
    env = {**isolated_env, "OLLAMA_HOST": dead}  # the config file wins over OLLAMA_HOST
    assert ok_json(run_cli(env, "status", "--engine", "ollama", "--json"))["available"] is True

    config.write_text(f'host = "{dead}"\n')  # --host wins over the config file
    status = ok_json(run_cli(isolated_env, "status", "--host", f":{fake_ollama.port}", "--json"))
    assert status["host"] == fake_ollama.url


# -- models, show, ps ---------------------------------------------------------------------------
def test_models_json(fake_ollama: FakeOllama, isolated_env: dict[str, str]) -> None:
    models = ok_json(run_cli(isolated_env, "models", "--host", fake_ollama.url, "--json"))
    by_name = {m["name"]: m for m in models}
    assert all(set(m) == MODEL_KEYS for m in models)
    coder = by_name[CODER]
    assert coder["parameters"] == 1_543_714_304 and coder["contextLength"] == 32_768
    assert coder["family"] == "qwen2" and coder["quantization"] == "Q4_K_M"
    assert coder["sizeBytes"] == 986_062_089
    assert coder["capabilities"] == ["completion", "tools", "insert"]
    assert by_name["nomic-embed-text:latest"]["capabilities"] == ["embedding"]


def test_models_human(fake_ollama: FakeOllama, isolated_env: dict[str, str]) -> None:
    result = run_cli(isolated_env, "models", "--host", fake_ollama.url)
    assert result.returncode == 0
    assert "completion, tools, insert" in result.stdout and "1.54B" in result.stdout


def test_show(fake_ollama: FakeOllama, isolated_env: dict[str, str]) -> None:
    model = ok_json(run_cli(isolated_env, "show", CODER, "--host", fake_ollama.url, "--json"))
    assert set(model) == MODEL_KEYS
    assert model["name"] == CODER and "insert" in model["capabilities"]
    human = run_cli(isolated_env, "show", "qwen3:4b", "--host", fake_ollama.url)
    assert "4,022,468,096" in human.stdout and "thinking" in human.stdout
    missing = run_cli(isolated_env, "show", "nope:7b", "--host", fake_ollama.url)
    assert "ollama pull nope:7b" in one_error_line(missing)


def test_ps(fake_ollama: FakeOllama, isolated_env: dict[str, str]) -> None:
    assert ok_json(run_cli(isolated_env, "ps", "--host", fake_ollama.url, "--json")) == []
    fake_ollama.set_running(CHAT)
    running = ok_json(run_cli(isolated_env, "ps", "--host", fake_ollama.url, "--json"))
    assert [r["name"] for r in running] == [CHAT]
    assert {"name", "sizeBytes", "sizeVram", "expiresAt", "contextLength"} == set(running[0])


# -- pull ---------------------------------------------------------------------------------------
def test_pull_json_then_installed(fake_ollama: FakeOllama, isolated_env: dict[str, str]) -> None:
    result = run_cli(isolated_env, "pull", "mistral:7b", "--host", fake_ollama.url, "--json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[0]["status"] == "pulling manifest" and lines[-1]["status"] == "success"
    assert all(set(p) == {"status", "digest", "total", "completed", "percentage"} for p in lines)
    assert any(p["percentage"] == 100 for p in lines)
    assert "mistral:7b" in {m.name for m in fake_ollama.models}


def test_pull_human_and_unknown(fake_ollama: FakeOllama, isolated_env: dict[str, str]) -> None:
    result = run_cli(isolated_env, "pull", "smollm2:135m", "--host", fake_ollama.url)
    assert result.returncode == 0, result.stderr
    assert "Pulled smollm2:135m." in result.stdout and "success" in result.stderr
    missing = run_cli(isolated_env, "pull", "no-such-model", "--host", fake_ollama.url)
    assert "no-such-model" in one_error_line(missing)


def test_pull_without_a_model_is_the_embedded_default(
    isolated_env: dict[str, str], tmp_path: Path
) -> None:
    """Already fetched (same name and size): nothing is downloaded, pip is not run."""
    from aethel_lsp.engine.model_fetch import DEFAULT_MODEL

    models = tmp_path / "models"
    models.mkdir()
    with (models / DEFAULT_MODEL.file_name).open("wb") as sparse:
        sparse.truncate(DEFAULT_MODEL.size)
    env = {**isolated_env, "AETHEL_LSP_MODELS_DIR": str(models)}
    result = run_cli(env, "pull", "--json")
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["status"] for line in result.stdout.splitlines()] == ["success"]
    human = run_cli(env, "pull")
    assert f"Pulled {DEFAULT_MODEL.name} into {models}." in human.stdout


def test_pull_a_gguf_from_hugging_face(isolated_env: dict[str, str], tmp_path: Path) -> None:
    """Against a fake Hub (HF_ENDPOINT); the file is then a model of the embedded engine."""
    from tests.fakes.huggingface import FakeHub
    from tests.unit.embedded_support import TINY_METADATA, TINY_TENSORS, write_gguf

    tiny = write_gguf(tmp_path / "src.gguf", TINY_METADATA, TINY_TENSORS).read_bytes()
    models = tmp_path / "models"
    with FakeHub({"acme/Tiny-GGUF/main/tiny-q4.gguf": tiny}) as hub:
        env = {**isolated_env, "AETHEL_LSP_MODELS_DIR": str(models), "HF_ENDPOINT": hub.url}
        result = run_cli(env, "pull", "hf:acme/Tiny-GGUF/tiny-q4.gguf")
        assert result.returncode == 0, result.stderr
        assert f"Pulled hf:acme/Tiny-GGUF/tiny-q4.gguf into {models}." in result.stdout
        listed = ok_json(run_cli(env, "models", "--engine", "embedded", "--json"))
        assert [m["name"] for m in listed] == ["tiny-q4"]
        missing = run_cli(env, "pull", "hf:acme/Tiny-GGUF/other.gguf")
        assert "does not exist" in one_error_line(missing)


# -- generate -----------------------------------------------------------------------------------
def test_generate_streams_text_then_metrics(
    fake_ollama: FakeOllama, isolated_env: dict[str, str]
) -> None:
    fake_ollama.enqueue(Reply(tokens=["Hello", ",", " world"], eval_count=3))
    args = ["--model", CHAT, "--system", "Be brief.", "--temperature", "0.3", "--max-tokens", "5"]
    result = run_cli(isolated_env, "generate", "Say hello", "--host", fake_ollama.url, *args)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Hello, world\n"
    assert "3 tokens" in result.stderr and "tok/s" in result.stderr
    body = fake_ollama.wait_for_request("/api/generate").json
    assert body["model"] == CHAT and body["prompt"] == "Say hello"
    assert body["system"] == "Be brief." and body["think"] is False
    assert body["options"] == {"temperature": 0.3, "num_predict": 5}


def test_generate_json_reports_engine_metrics(
    fake_ollama: FakeOllama, isolated_env: dict[str, str]
) -> None:
    fake_ollama.enqueue(
        Reply(
            text="def add(a, b):\n    return a + b\n",
            eval_count=100,
            eval_duration_ns=2_000_000_000,
            prompt_eval_count=9,
            load_duration_ns=1_500_000_000,
        )
    )
    out = ok_json(
        run_cli(
            isolated_env, "generate", "add", "--model", CODER, "--host", fake_ollama.url, "--json"
        )
    )
    assert set(out) == GENERATE_KEYS
    assert out["text"] == "def add(a, b):\n    return a + b\n"
    assert out["model"] == CODER and out["doneReason"] == "stop"
    assert (out["promptTokens"], out["tokensGenerated"]) == (9, 100)
    assert out["tokensPerSecond"] == 50.0 and out["loadMs"] == 1500.0
    assert out["timeToFirstTokenMs"] > 0 and out["latencyMs"] >= out["timeToFirstTokenMs"]


def test_generate_no_stream_and_default_model(
    fake_ollama: FakeOllama, isolated_env: dict[str, str]
) -> None:
    result = run_cli(isolated_env, "generate", "hi", "--no-stream", "--host", fake_ollama.url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    # no --model and no configured model: `recommend`'s coding pick, the same model
    recs = ok_json(run_cli(isolated_env, "recommend", "--host", fake_ollama.url, "--json"))
    coding = next(r for r in recs if r["useCase"] == "coding")
    assert fake_ollama.generate_requests()[-1]["model"] == coding["model"] == CODER


def test_generate_reads_the_prompt_from_stdin(
    fake_ollama: FakeOllama, isolated_env: dict[str, str]
) -> None:
    result = run_cli(
        isolated_env,
        "generate",
        "-",
        "--model",
        CHAT,
        "--host",
        fake_ollama.url,
        stdin="from stdin",
    )
    assert result.returncode == 0, result.stderr
    assert fake_ollama.generate_requests()[-1]["prompt"] == "from stdin"


def test_generate_errors_are_one_line(
    fake_ollama: FakeOllama, isolated_env: dict[str, str]
) -> None:
    missing = run_cli(
        isolated_env, "generate", "x", "--model", "nope:1b", "--host", fake_ollama.url
    )
    assert "ollama pull nope:1b" in one_error_line(missing)
    fake_ollama.inject(Fault.error_line(after_tokens=1), path="/api/generate")
    broken = run_cli(isolated_env, "generate", "x", "--model", CHAT, "--host", fake_ollama.url)
    assert "an error was encountered while running the model" in one_error_line(broken)
    embed = run_cli(
        isolated_env, "generate", "x", "--model", "nomic-embed-text", "--host", fake_ollama.url
    )
    one_error_line(embed)


# -- recommend, stats, demo ---------------------------------------------------------------------
def test_recommend_json(fake_ollama: FakeOllama, isolated_env: dict[str, str]) -> None:
    recs = ok_json(run_cli(isolated_env, "recommend", "--host", fake_ollama.url, "--json"))
    by_case = {r["useCase"]: r for r in recs}
    assert set(by_case) == {"coding", "general", "fast", "powerful", "code_large"}
    assert by_case["coding"]["recommended"] == CODER
    assert by_case["coding"]["recommendedInstalled"] is True
    assert by_case["coding"]["model"] == CODER
    assert all(r["model"] != "nomic-embed-text:latest" for r in recs)


def test_stats_persist_across_runs(fake_ollama: FakeOllama, isolated_env: dict[str, str]) -> None:
    assert ok_json(run_cli(isolated_env, "stats", "--json")) == {"totalCostUsd": None}
    for _ in range(2):
        run_cli(isolated_env, "generate", "x", "--model", CHAT, "--host", fake_ollama.url)
    stats = ok_json(run_cli(isolated_env, "stats", "--json"))
    assert stats[CHAT]["requests"] == 2 and stats[CHAT]["errors"] == 0
    assert stats[CHAT]["tokensPerSecond"] == 50.0
    assert Path(isolated_env["AETHEL_LSP_STATE_DIR"], "usage.sqlite3").exists()


def test_demo_json_runs_all_four_scenarios(
    fake_ollama: FakeOllama, isolated_env: dict[str, str]
) -> None:
    report = ok_json(run_cli(isolated_env, "demo", "--host", fake_ollama.url, "--json"))
    assert set(report) == {"basicInference", "streaming", "modelManagement", "aethelGeneration"}
    assert set(report["basicInference"]) == GENERATE_KEYS
    assert set(report["streaming"]) == GENERATE_KEYS
    management = report["modelManagement"]
    assert set(management["status"]) >= STATUS_KEYS and management["recommendations"]
    aethel = report["aethelGeneration"]
    assert aethel["valid"] is True and aethel["code"].startswith("# Move")
    assert "intent transfer" in aethel["code"]
    # scenario 4 sent the Aethel grammar to the model
    assert "Aethel" in json.dumps(fake_ollama.chat_requests()[-1]["messages"])


def test_demo_human(fake_ollama: FakeOllama, isolated_env: dict[str, str]) -> None:
    result = run_cli(isolated_env, "demo", "--host", fake_ollama.url)
    assert result.returncode == 0, result.stderr
    for title in ("1. Basic inference", "2. Streaming", "3. Model management", "4. Aethel"):
        assert title in result.stdout
    assert "parses cleanly" in result.stderr


def test_demo_offline(isolated_env: dict[str, str]) -> None:
    host = f"http://127.0.0.1:{free_port()}"
    assert "ollama serve" in one_error_line(run_cli(isolated_env, "demo", "--host", host))


# -- the command itself ---------------------------------------------------------------------------
def test_help_lists_every_subcommand(isolated_env: dict[str, str]) -> None:
    result = run_cli(isolated_env, "--help")
    assert result.returncode == 0
    for name in (
        "status",
        "models",
        "show",
        "ps",
        "pull",
        "generate",
        "recommend",
        "stats",
        "demo",
    ):
        assert name in result.stdout


def test_every_subcommand_takes_host_engine_and_json() -> None:
    """In-process (no need for a process per subcommand): the table drives the parser."""
    import argparse

    from aethel_lsp.cli.main import SUBCOMMANDS, build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for command in SUBCOMMANDS:
        sub = subparsers.choices[command.name]
        positionals = [
            "X" for a in sub._actions if not a.option_strings and a.nargs not in ("?", "*")
        ]
        argv = [command.name, *positionals, "--host", ":1", "--engine", "ollama", "--json"]
        args = parser.parse_args(argv)
        assert (args.host, args.engine, args.json) == (":1", "ollama", True), command.name


def test_engine_commands_offline_and_bad_host(isolated_env: dict[str, str]) -> None:
    host = f"http://127.0.0.1:{free_port()}"
    line = one_error_line(run_cli(isolated_env, "models", "--host", host))
    assert f"Ollama is not running at {host}" in line
    bad = one_error_line(run_cli(isolated_env, "status", "--host", "ftp://example.com"))
    assert "ftp://example.com" in bad


def test_stats_survives_a_corrupt_file(isolated_env: dict[str, str]) -> None:
    path = Path(isolated_env["AETHEL_LSP_STATE_DIR"], "usage.sqlite3")
    path.write_bytes(b"this is not a database" * 100)
    result = run_cli(isolated_env, "stats", "--json")
    assert ok_json(result) == {"totalCostUsd": None}
    assert "warning:" in result.stderr and "corrupt" in result.stderr


def test_openai_engine_from_the_config_file(
    fake_ollama: FakeOllama, isolated_env: dict[str, str]
) -> None:
    config = Path(isolated_env["XDG_CONFIG_HOME"]) / "aethel-lsp" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f'engine = "openai"\n[openai]\nbaseUrl = "{fake_ollama.url}/v1"\n')
    status = ok_json(run_cli(isolated_env, "status", "--json"))
    assert status["available"] is True and status["engine"] == "openai"
    fake_ollama.enqueue(Reply(text="via the OpenAI API"))
    out = ok_json(run_cli(isolated_env, "generate", "hi", "--model", CHAT, "--json"))
    assert out["text"] == "via the OpenAI API"
    assert fake_ollama.requests_to("/v1/chat/completions")
    assert not fake_ollama.requests_to("/api/generate")


# -- bad input: one clear line, exit 2, nothing sent ------------------------------------------
def usage_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr


def test_an_empty_prompt_is_refused_before_the_engine(
    fake_ollama: FakeOllama, isolated_env: dict[str, str]
) -> None:
    empty = run_cli(isolated_env, "generate", "  ", "--model", CHAT, "--host", fake_ollama.url)
    assert "the prompt is empty" in usage_error(empty)
    stdin = run_cli(isolated_env, "generate", "-", "--model", CHAT, "--host", fake_ollama.url,
                    stdin="")
    assert "stdin was empty" in usage_error(stdin)
    assert fake_ollama.generate_requests() == []


def test_out_of_range_numbers_and_missing_folders_are_refused(
    isolated_env: dict[str, str], tmp_path: Path
) -> None:
    cases = [
        (("generate", "x", "--temperature", "-1"), "must be a number >= 0"),
        (("check", str(tmp_path), "--timeout-ms", "-5"), "must be a positive whole number"),
        (("inspect", "-n", "-3"), "must be a positive whole number"),
        (("doctor", "--workspace", str(tmp_path / "nonexistent")), "is not a folder"),
        (("recommend", "--workspace", str(tmp_path / "nope")), "is not a folder"),
        (("--tcp", "--port", "-1"), "must be a positive whole number"),
        (("--tcp", "--port", "70000"), "is not a TCP port"),
        (("--tcp", "--bind", "not an address"), "is not an IP address"),
    ]
    for args, message in cases:
        assert message in usage_error(run_cli(isolated_env, *args)), args


def test_tcp_on_a_busy_port_is_one_error_line(isolated_env: dict[str, str]) -> None:
    """Only the error: no "serving LSP on ..." (nor its warnings) about a port never bound."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli(isolated_env, "--tcp", "--port", str(port))
    [error] = usage_error(result).strip().splitlines()
    assert error.startswith(f"error: cannot serve LSP on 127.0.0.1:{port}: "), result.stderr


def test_tcp_on_an_address_not_on_this_machine_is_one_error_line(
    isolated_env: dict[str, str],
) -> None:
    """192.0.2.1 (TEST-NET-1) is on no interface here: binding fails, nothing is sent."""
    result = run_cli(isolated_env, "--tcp", "--bind", "192.0.2.1", "--port", "2087")
    [error] = usage_error(result).strip().splitlines()
    assert error.startswith("error: cannot serve LSP on 192.0.2.1:2087: "), result.stderr


def test_a_mistyped_model_is_not_a_statistics_row(
    fake_ollama: FakeOllama, isolated_env: dict[str, str]
) -> None:
    one_error_line(run_cli(isolated_env, "generate", "x", "-m", "nosuch", "--host",
                           fake_ollama.url))
    assert ok_json(run_cli(isolated_env, "stats", "--json")) == {"totalCostUsd": None}


def test_stats_clear_all_or_one_model(
    fake_ollama: FakeOllama, isolated_env: dict[str, str]
) -> None:
    for model in (CHAT, CODER):
        run_cli(isolated_env, "generate", "x", "--model", model, "--host", fake_ollama.url)
    cleared = ok_json(run_cli(isolated_env, "stats", "--clear", "--model", CHAT, "--json"))
    assert cleared["generations"] == 1 and cleared["model"] == CHAT
    assert set(ok_json(run_cli(isolated_env, "stats", "--json"))) == {CODER, "totalCostUsd"}
    ok_json(run_cli(isolated_env, "stats", "--clear", "--json"))
    assert ok_json(run_cli(isolated_env, "stats", "--json")) == {"totalCostUsd": None}


def test_stats_clear_says_what_went_and_model_needs_clear(
    fake_ollama: FakeOllama, isolated_env: dict[str, str]
) -> None:
    run_cli(isolated_env, "generate", "x", "--model", CHAT, "--host", fake_ollama.url)
    assert "--model only applies with --clear" in usage_error(
        run_cli(isolated_env, "stats", "--model", CHAT))
    cleared = run_cli(isolated_env, "stats", "--clear", "--model", CHAT)
    assert cleared.returncode == 0, cleared.stderr
    assert cleared.stdout.startswith(
        f"Deleted 1 recorded generation of {CHAT} and its speed measurements from "), cleared.stdout
    cleared = run_cli(isolated_env, "stats", "--clear", "--model", "nosuch")
    assert cleared.stdout.startswith("Deleted 0 recorded generations of nosuch and its "), (
        cleared.stdout)


def test_the_fake_in_exec_mode_keeps_the_real_statistics_clean(
    fake_ollama: FakeOllama, isolated_env: dict[str, str]
) -> None:
    """The docs' one-command route: canned answers must not become the user's numbers."""
    env = {k: v for k, v in isolated_env.items() if k != "AETHEL_LSP_STATE_DIR"}  # a user's
    result = subprocess.run(
        [sys.executable, "-m", "tests.fakes.ollama", "--port", "0", "--exec", sys.executable,
         "-m", "aethel_lsp", "generate", "x", "-m", CHAT],
        env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert ok_json(run_cli(env, "stats", "--json")) == {"totalCostUsd": None}
    # the same generation outside --exec is recorded where `stats` looks (the check can fail)
    run_cli(env, "generate", "x", "-m", CHAT, "--host", fake_ollama.url)
    assert set(ok_json(run_cli(env, "stats", "--json"))) == {CHAT, "totalCostUsd"}
