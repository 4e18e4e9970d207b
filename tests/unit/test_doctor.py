"""The doctor against the fake Ollama scripted into each broken setup: the right finding,
with the right fix, for each (offline, model missing, no `insert`, thinking model for
completion, slow model, keep_alive 0, bad config value), plus provenance and key safety."""

from __future__ import annotations

import argparse
import dataclasses
import json
import socket
from pathlib import Path

import pytest

from aethel_lsp.cli.doctor import engine_config
from aethel_lsp.config import ConfigSource, dict_layer, load_config, resolve
from aethel_lsp.doctor.checks import run_doctor
from aethel_lsp.doctor.report import DoctorReport, Finding
from aethel_lsp.engine import (
    AutoEngine,
    EngineStatus,
    ModelInfo,
    OllamaEngine,
    RunningModel,
    UsageStats,
    create_engine,
)
from aethel_lsp.engine.types import keep_alive_seconds
from tests.fakes.ollama import FakeOllama, Reply
from tests.fakes.ollama_models import CHAT, CODER, EMBEDDING, THINKING
from tests.unit.scripted_engine import ScriptedEngine

CODER_NAME = CODER.name
SECRET = "sk-test-0123456789abcdefABCDEF"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def diagnose(
    tmp_path: Path,
    host: str,
    toml: str = "",
    *,
    env: dict[str, str] | None = None,
    probe: bool = True,
    header: str | None = None,
) -> DoctorReport:
    """Write a user config, resolve it like the server does, and run the doctor."""
    config_home = tmp_path / "config"
    path = config_home / "aethel-lsp" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    top = header if header is not None else f'engine = "ollama"\nhost = "{host}"\n'
    path.write_text(top + toml, encoding="utf-8")
    environ = {"XDG_CONFIG_HOME": str(config_home), **(env or {})}
    config = load_config(roots=[], env=environ)
    no_flags = argparse.Namespace(host=None, engine=None)  # no --host / --engine
    engine = create_engine(engine_config(no_flags, config.settings))
    stats = UsageStats(tmp_path / "usage.sqlite3")
    try:
        return await run_doctor(engine, config, env=environ, probe=probe, stats=stats,
                                probe_timeout_s=10.0)
    finally:
        await engine.aclose()
        stats.close()


def find(report: DoctorReport, severity: str, text: str, area: str | None = None) -> Finding:
    for finding in report.findings:
        if finding.severity == severity and text in finding.title and (
            area is None or finding.area == area
        ):
            return finding
    pytest.fail(f"no {severity} finding with {text!r}:\n" + "\n".join(report.to_lines()))


def severities(report: DoctorReport, area: str) -> set[str]:
    return {f.severity for f in report.findings if f.area == area}


async def test_healthy_setup_has_no_problems(tmp_path: Path) -> None:
    with FakeOllama([CODER, CHAT]) as fake:
        report = await diagnose(tmp_path, fake.url, f'model = "{CODER_NAME}"\n')
    assert report.ok, report.to_lines()
    assert report.counts()["warning"] == 0, report.to_lines()
    find(report, "ok", "Ollama 0.33.0 is running", "engine")
    find(report, "ok", "native fill-in-the-middle", "completion")
    find(report, "ok", "fast enough for inline completion", "speed")
    find(report, "ok", "share one model", "residency")
    assert [p.model for p in report.probes] == [CODER_NAME]


async def test_offline_engine_is_an_error_naming_the_host_and_the_fix(tmp_path: Path) -> None:
    host = f"http://127.0.0.1:{free_port()}"
    report = await diagnose(tmp_path, host)
    assert not report.ok
    finding = find(report, "error", f"Nothing answers at {host}", "engine")
    assert "ollama serve" in finding.fix
    assert "config.toml:2" in finding.fix  # where the host came from, with its line
    find(report, "info", "were skipped", "models")
    assert not report.probes


async def test_host_provenance_names_the_file_line_and_the_overridden_env(
    tmp_path: Path,
) -> None:
    with FakeOllama([CODER]) as fake:
        report = await diagnose(tmp_path, fake.url, probe=False,
                                env={"OLLAMA_HOST": "10.1.2.3:11434"})
    finding = find(report, "info", f"Ollama host: {fake.url}", "engine")
    assert "your user config (" in finding.detail and "config.toml:2)" in finding.detail
    assert "overrides OLLAMA_HOST=10.1.2.3:11434" in finding.detail
    assert finding.data["hostSource"] == "user"
    assert report.settings["host"] == {"value": fake.url, "source": "user"}


async def test_missing_model_says_where_it_was_set_and_how_to_pull_it(tmp_path: Path) -> None:
    with FakeOllama([CODER]) as fake:
        report = await diagnose(tmp_path, fake.url, 'model = "codellama:13b"\n', probe=False)
    finding = find(report, "error", "Model 'codellama:13b'", "models")
    assert "not installed" in finding.title
    assert "ollama pull codellama:13b" in finding.fix
    assert "config.toml:3" in finding.detail and CODER_NAME in finding.detail
    assert not report.ok


async def test_model_without_insert_falls_back_to_chat_with_a_warning(tmp_path: Path) -> None:
    toml = f'model = "{CODER_NAME}"\n[completion]\nmodel = "{CHAT.name}"\n'
    with FakeOllama([CODER, CHAT]) as fake:
        report = await diagnose(tmp_path, fake.url, toml, probe=False)
    finding = find(report, "warning", "cannot fill in the middle", "completion")
    assert finding.data["fimMode"] == "chat"
    assert "no 'insert' capability" in finding.detail
    assert f'completion.model = "{CODER_NAME}"' in finding.fix


async def test_known_family_without_insert_uses_its_template(tmp_path: Path) -> None:
    starcoder = CHAT.renamed("starcoder2:3b")
    toml = f'[completion]\nmodel = "{starcoder.name}"\n'
    with FakeOllama([CODER, starcoder]) as fake:
        report = await diagnose(tmp_path, fake.url, toml, probe=False)
    finding = find(report, "info", "starcoder2 FIM template", "completion")
    assert finding.data["fimMode"] == "template"


async def test_thinking_model_for_completion_is_a_warning(tmp_path: Path) -> None:
    toml = f'[completion]\nmodel = "{THINKING.name}"\n'
    with FakeOllama([CODER, THINKING]) as fake:
        report = await diagnose(tmp_path, fake.url, toml, probe=False)
    finding = find(report, "warning", "is a thinking model, used for completion", "completion")
    assert CODER_NAME in finding.fix


async def test_embedding_model_cannot_serve_a_task(tmp_path: Path) -> None:
    toml = f'model = "{EMBEDDING.name}"\n[completion]\nmodel = "{CODER_NAME}"\n'
    with FakeOllama([CODER, EMBEDDING]) as fake:
        report = await diagnose(tmp_path, fake.url, toml, probe=False)
    find(report, "error", "cannot generate text", "models")


async def test_slow_model_by_reported_speed_gets_a_verdict_and_fix(tmp_path: Path) -> None:
    with FakeOllama([CODER]) as fake:
        # The engine reports 10 tok/s: a 24-token completion needs ~2.4 s > 1.5 s deadline.
        fake.set_reply(CODER_NAME, Reply(tokens=["x = 1\n"] * 4, eval_count=4,
                                         eval_duration_ns=400_000_000))
        report = await diagnose(tmp_path, fake.url, f'model = "{CODER_NAME}"\n')
    finding = find(report, "warning", "too slow for inline completion on this machine", "speed")
    assert "completion.deadlineMs" in finding.fix and "qwen2.5-coder:0.5b" in finding.fix
    assert finding.data["estimatedMs"] > 1500
    probe = report.probes[0]
    assert probe.tokens_per_second == pytest.approx(10.0)


async def test_slow_model_by_token_delay_is_caught_by_the_wall_clock(tmp_path: Path) -> None:
    with FakeOllama([CODER]) as fake:
        # Reported speed stays 50 tok/s; tokens really arrive every 100 ms (10 tok/s).
        fake.set_reply(CODER_NAME, Reply(tokens=["a", "b", "c", "d", "e"], token_delay=0.1))
        report = await diagnose(tmp_path, fake.url, f'model = "{CODER_NAME}"\n')
    find(report, "warning", "too slow for inline completion", "speed")
    probe = report.probes[0]
    assert probe.tokens_per_second == pytest.approx(50.0)
    assert probe.wall_tokens_per_second is not None and probe.wall_tokens_per_second < 15


async def test_probe_measurements_are_kept_with_the_usage_statistics(tmp_path: Path) -> None:
    with FakeOllama([CODER]) as fake:
        await diagnose(tmp_path, fake.url, f'model = "{CODER_NAME}"\n')
    stats = UsageStats(tmp_path / "usage.sqlite3")
    try:
        probes = stats.probes()
        assert [p.model for p in probes] == [CODER_NAME]
        assert stats.models() == {}  # a probe is not a user's generation
    finally:
        stats.close()


async def test_keep_alive_zero_warns_that_the_model_unloads(tmp_path: Path) -> None:
    with FakeOllama([CODER]) as fake:
        report = await diagnose(tmp_path, fake.url, 'keepAlive = 0\n', probe=False)
    finding = find(report, "warning", "keepAlive = 0", "residency")
    assert "unloads after every request" in finding.title
    assert 'keepAlive = "30m"' in finding.fix and "config.toml:3" in finding.fix


async def test_short_keep_alive_warns_too(tmp_path: Path) -> None:
    with FakeOllama([CODER]) as fake:
        report = await diagnose(tmp_path, fake.url, 'keepAlive = "45s"\n', probe=False)
    find(report, "warning", "unloads after 45 s", "residency")


async def test_bad_config_value_is_an_error_on_its_line(tmp_path: Path) -> None:
    toml = '[completion]\nmaxTokens = "lots"\n'
    with FakeOllama([CODER]) as fake:
        report = await diagnose(tmp_path, fake.url, toml, probe=False)
    finding = find(report, "error", "Invalid setting `completion.maxTokens`", "config")
    assert finding.data["line"] == 4 and finding.data["file"].endswith("config.toml")
    assert "Using 64 instead" in finding.detail
    assert "give `completion.maxTokens` a valid value" in finding.fix
    assert not report.ok
    find(report, "ok", "Config file read", "config")


async def test_unknown_key_suggests_the_right_name(tmp_path: Path) -> None:
    with FakeOllama([CODER]) as fake:
        report = await diagnose(tmp_path, fake.url, "keepalive = \"1h\"\n", probe=False)
    finding = find(report, "warning", "Unknown setting `keepalive`", "config")
    assert "Rename it to `keepAlive`" in finding.fix


async def test_both_models_loaded_fit_together(tmp_path: Path) -> None:
    toml = f'model = "{CHAT.name}"\n[completion]\nmodel = "{CODER_NAME}"\n'
    with FakeOllama([CODER, CHAT]) as fake:
        report = await diagnose(tmp_path, fake.url, toml)
    find(report, "ok", "fit in memory together", "residency")
    find(report, "ok", "fast enough for actions", "speed")


async def test_openai_key_presence_is_reported_never_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeOllama([CODER], api_key=SECRET) as fake:
        header = (f'engine = "openai"\n[openai]\nbaseUrl = "{fake.url}/v1"\n'
                  'apiKeyEnv = "MY_KEY"\n')
        monkeypatch.setenv("MY_KEY", SECRET)  # the engine reads the key from the process
        report = await diagnose(tmp_path, fake.url, header=header, probe=False,
                                env={"MY_KEY": SECRET})
        monkeypatch.delenv("MY_KEY")
        missing = await diagnose(tmp_path / "b", fake.url, header=header, probe=False)
    find(report, "ok", "API key present in $MY_KEY", "engine")
    find(report, "ok", "is running", "engine")
    assert SECRET not in json.dumps(report.to_json()) and SECRET not in report.to_markdown()
    finding = find(missing, "error", "API key missing: $MY_KEY is not set", "engine")
    assert "Export MY_KEY" in finding.fix
    refused = find(missing, "error", "answers, but not correctly", "engine")
    assert "401" in refused.detail and "$MY_KEY" in refused.fix


async def test_report_shapes(tmp_path: Path) -> None:
    with FakeOllama([CODER]) as fake:
        report = await diagnose(tmp_path, fake.url, "keepAlive = 0\n", probe=False)
    data = report.to_json()
    assert set(data) >= {"ok", "summary", "counts", "findings", "engine", "settings",
                         "configFiles", "probes"}
    assert set(data["findings"][0]) == {"area", "severity", "title", "detail", "fix", "data"}
    assert data["settings"]["keepAlive"] == {"value": "0", "source": "user"}
    markdown = report.to_markdown()
    assert markdown.startswith("# aethel-lsp doctor") and "## Residency" in markdown
    assert "**Fix:**" in markdown


def test_keep_alive_seconds() -> None:
    assert keep_alive_seconds("5m") == 300.0
    assert keep_alive_seconds("-1") is None
    assert keep_alive_seconds(0) == 0.0


class _CrowdedEngine(ScriptedEngine):
    """Only the last model used stays loaded, and only half of it fits on the GPU."""

    def __init__(self) -> None:
        super().__init__({CODER_NAME: ModelInfo(CODER_NAME, capabilities=("completion", "insert")),
                          CHAT.name: ModelInfo(CHAT.name, capabilities=("completion",))},
                         manual=False)

    async def running(self) -> list[RunningModel]:
        last = self.streams[-1].request.model if self.streams else CHAT.name
        return [RunningModel(last, size_bytes=4_000_000_000, size_vram=2_000_000_000)]


async def test_models_that_do_not_fit_together_and_cpu_offload(tmp_path: Path) -> None:
    config = resolve([dict_layer(ConfigSource.EDITOR, {
        "model": CHAT.name, "completion": {"model": CODER_NAME}})])
    report = await run_doctor(_CrowdedEngine(), config, env={})
    gone = find(report, "warning", "was unloaded to make room", "residency")
    assert "do not fit in memory together" in gone.title
    find(report, "warning", "is only 50% in GPU memory", "residency")
    # The scripted engine reports no durations: the speed is unknown, not "too slow".
    find(report, "info", "speed of", "speed")
    assert not [f for f in report.findings if "too slow" in f.title]


async def test_instruct_model_for_completion_is_a_warning(tmp_path: Path) -> None:
    instruct = CODER.renamed("qwen2.5-coder:7b-instruct")
    toml = f'[completion]\nmodel = "{instruct.name}"\n'
    with FakeOllama([CODER, instruct]) as fake:
        report = await diagnose(tmp_path, fake.url, toml, probe=False)
    find(report, "ok", "native fill-in-the-middle", "completion")
    finding = find(report, "warning", "is an instruct/chat model, used for completion")
    assert CODER_NAME in finding.fix


async def test_the_only_model_of_a_fresh_install_is_not_a_warning(tmp_path: Path) -> None:
    """Nobody chose the one chat model there is: said as information, with the fix."""
    instruct = CODER.renamed("qwen2.5-coder:7b-instruct")
    with FakeOllama([instruct]) as fake:
        report = await diagnose(tmp_path, fake.url, probe=False)
    finding = find(report, "info", "is an instruct/chat model, used for completion")
    assert CODER_NAME in finding.fix
    assert not [f for f in report.findings if f.severity == "warning"], report.to_lines()


class _Embedded(ScriptedEngine):
    kind = "embedded"
    host = "embedded:tiny.gguf"

    async def status(self) -> EngineStatus:
        return EngineStatus(True, self.host, "embedded", version="llama.cpp")


async def test_auto_with_ollama_offline_serves_embedded_and_says_why(tmp_path: Path) -> None:
    host = f"http://127.0.0.1:{free_port()}"
    embedded = _Embedded({"tiny": ModelInfo("tiny", capabilities=("completion",))},
                         manual=False)
    engine = AutoEngine(OllamaEngine(host), embedded_loader=lambda: (embedded, ""))
    config = resolve([dict_layer(ConfigSource.EDITOR, {"host": host, "model": "tiny"})])
    try:
        report = await run_doctor(engine, config, env={}, probe=False)
    finally:
        await engine.aclose()
    assert report.ok, report.to_lines()
    find(report, "ok", "The embedded engine is running (embedded:tiny.gguf)", "engine")
    serving = find(report, "info", "Serving with the embedded engine", "engine")
    assert f"Ollama is not running at {host}" in serving.detail
    assert "ollama serve" in serving.fix
    find(report, "info", f"Ollama host: {host}", "engine")


async def test_context_size_beyond_the_model_is_a_warning(tmp_path: Path) -> None:
    toml = f'model = "{CODER_NAME}"\ncontextSize = 65536\n'
    with FakeOllama([CODER]) as fake:
        report = await diagnose(tmp_path, fake.url, toml, probe=False)
    finding = find(report, "warning", "contextSize 65536 is larger than", "models")
    assert "(32768)" in finding.title and "contextSize = 32768" in finding.fix
    assert sum("contextSize" in f.title for f in report.findings) == 1  # once per model


SMALL_WINDOW = dataclasses.replace(CODER, name="smollm2:135m", parameter_size="135M",
                                   parameter_count=134_515_008, context_length=2048)


async def test_the_default_context_size_is_not_blamed_on_the_user(tmp_path: Path) -> None:
    """A fresh install must not warn about our own default (prompts are sized to the
    model's real window anyway); a contextSize the user set still gets the warning."""
    with FakeOllama([SMALL_WINDOW]) as fake:
        report = await diagnose(tmp_path, fake.url, 'model = "smollm2:135m"\n', probe=False)
    assert not [f for f in report.findings if "contextSize" in f.title]
    with FakeOllama([SMALL_WINDOW]) as fake:
        report = await diagnose(tmp_path, fake.url,
                                'model = "smollm2:135m"\ncontextSize = 8192\n', probe=False)
    find(report, "warning", "contextSize 8192 is larger than", "models")


async def test_a_smaller_model_is_really_smaller(tmp_path: Path) -> None:
    """A slow 135M model is not told to try a "smaller" 1.5B one."""
    with FakeOllama([SMALL_WINDOW]) as fake:
        fake.set_reply("smollm2:135m", Reply(tokens=["x = 1\n"] * 4, eval_count=4,
                                             eval_duration_ns=400_000_000))
        report = await diagnose(tmp_path, fake.url, 'model = "smollm2:135m"\n')
    finding = find(report, "warning", "too slow for inline completion", "speed")
    assert "qwen2.5-coder" not in finding.fix and "already small" in finding.fix


async def test_an_installed_smaller_model_is_not_pulled_again(tmp_path: Path) -> None:
    big = dataclasses.replace(CODER, name="qwen2.5-coder:7b", parameter_size="7.6B",
                              parameter_count=7_615_616_512)
    tiny = dataclasses.replace(CODER, name="qwen2.5-coder:0.5b", parameter_size="494M",
                               parameter_count=494_032_768)
    with FakeOllama([big, tiny]) as fake:
        fake.set_reply("qwen2.5-coder:7b", Reply(tokens=["x = 1\n"] * 4, eval_count=4,
                                                 eval_duration_ns=400_000_000))
        report = await diagnose(tmp_path, fake.url, 'model = "qwen2.5-coder:7b"\n')
    finding = find(report, "warning", "too slow for inline completion", "speed")
    assert "pull" not in finding.fix


async def test_an_unreadable_config_file_is_not_also_read_ok(tmp_path: Path) -> None:
    with FakeOllama([CODER]) as fake:
        report = await diagnose(tmp_path, fake.url, "model = = 'x'\n", probe=False)
    find(report, "error", "", "config")
    assert not [f for f in report.findings if f.title.startswith("Config file read")]


class _LlamaCppServer(ScriptedEngine):
    """An OpenAI-compatible server that counts nothing and runs a 512-token context."""

    kind = "openai"
    host = "http://127.0.0.1:8080/v1"

    def __init__(self) -> None:
        super().__init__({CHAT.name: ModelInfo(CHAT.name, capabilities=("completion",))},
                         manual=False)

    async def status(self) -> EngineStatus:
        return EngineStatus(True, self.host, "openai", version="openai-compatible",
                            models=tuple(await self.list_models()),
                            running=(RunningModel(CHAT.name, context_length=512),))


async def test_openai_engine_gets_its_own_advice() -> None:
    """No `ollama pull` for a server that cannot pull, no keepAlive it never receives,
    an unknown speed said once (one model serves both tasks), and its small context."""
    config = resolve([dict_layer(ConfigSource.EDITOR, {
        "engine": "openai", "model": CHAT.name, "keepAlive": "1h", "contextSize": 4096})])
    report = await run_doctor(_LlamaCppServer(), config, env={})
    unknown = [f for f in report.findings if "speed" in f.title and "unknown" in f.title]
    assert len(unknown) == 1, [f.title for f in report.findings]
    assert "ollama pull" not in json.dumps(report.to_json())
    fim = find(report, "warning", "cannot fill in the middle", "completion")
    assert "cannot download models" in fim.fix
    find(report, "info", "keepAlive is not used with the openai engine", "residency")
    assert not [f for f in report.findings if f.title.startswith("keepAlive =")]
    small = find(report, "warning", "512-token context, smaller than contextSize 4096", "models")
    assert "`contextSize = 512`" in small.fix and "--ctx-size" in small.fix


async def test_an_automatically_chosen_model_is_not_said_to_come_from_a_setting(
    tmp_path: Path,
) -> None:
    with FakeOllama([CODER]) as fake:
        report = await diagnose(tmp_path, fake.url, probe=False)
    find(report, "info", "No model set for actions", "models")
    for task in ("Actions (explain, improve, generate…)", "Completion"):
        finding = find(report, "ok", f"{task}: {CODER_NAME} is installed", "models")
        assert "the automatic choice" in finding.detail, finding.detail
        assert "set by the default" not in finding.detail, finding.detail


async def test_just_fast_enough_names_the_faster_choice_in_one_sentence(
    tmp_path: Path,
) -> None:
    """≈1000 ms for 24 tokens against a 1500 ms deadline: works, with little headroom."""
    with FakeOllama([CODER]) as fake:
        fake.set_reply(CODER_NAME, Reply(tokens=["x = 1\n"] * 4, eval_count=4,
                                         eval_duration_ns=166_666_667))
        report = await diagnose(tmp_path, fake.url, f'model = "{CODER_NAME}"\n')
    finding = find(report, "info", "just fast enough for inline completion", "speed")
    assert finding.fix.startswith("A busy machine will cut suggestions at the deadline; for "
                                  "headroom, use "), finding.fix
    assert "((" not in finding.fix and "))" not in finding.fix, finding.fix
