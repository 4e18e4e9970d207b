"""`aethel-lsp doctor`, `inspect` and `recommend --measure` as a user runs them: a real
process against the fake Ollama, in an isolated home (nothing real is read or written)."""

from __future__ import annotations

import json
from pathlib import Path

from aethel_lsp.engine import UsageStats
from aethel_lsp.engine.inspector import InspectionRecord, Inspector
from tests.e2e.test_cli import free_port, ok_json, run_cli
from tests.fakes.ollama import FakeOllama, Reply
from tests.fakes.ollama_models import CHAT, CODER, THINKING

SECRET = "sk-proj-ABCDEFGHIJKLMNOPQRSTUVWX"


def user_config(env: dict[str, str], text: str) -> Path:
    path = Path(env["XDG_CONFIG_HOME"]) / "aethel-lsp" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def titles(report: dict, severity: str) -> list[str]:  # type: ignore[type-arg]
    return [f["title"] for f in report["findings"] if f["severity"] == severity]


def test_doctor_healthy_exits_0_with_json_findings(
    fake_ollama: FakeOllama, isolated_env: dict[str, str], tmp_path: Path
) -> None:
    user_config(isolated_env, f'model = "{CODER.name}"\n')
    result = run_cli(isolated_env, "doctor", "--host", fake_ollama.url, "--json",
                     "--workspace", str(tmp_path))
    report = ok_json(result)
    assert report["ok"] is True and report["counts"]["error"] == 0
    assert set(report["findings"][0]) == {"area", "severity", "title", "detail", "fix", "data"}
    assert any("is running" in t for t in titles(report, "ok"))
    assert any("native fill-in-the-middle" in t for t in titles(report, "ok"))
    assert report["probes"][0]["model"] == CODER.name
    assert report["settings"]["model"]["source"] == "user"


def test_doctor_offline_exits_1_and_says_how_to_fix(
    isolated_env: dict[str, str], tmp_path: Path
) -> None:
    host = f"http://127.0.0.1:{free_port()}"
    result = run_cli(isolated_env, "doctor", "--host", host, "--workspace", str(tmp_path))
    assert result.returncode == 1, result.stdout
    assert f"✗ [engine] Nothing answers at {host}" in result.stdout
    assert "fix: Start Ollama with `ollama serve`" in result.stdout
    assert "the --host option" in result.stdout
    assert result.stdout.strip().splitlines()[-1].startswith("aethel-lsp doctor: 1 error")


def test_doctor_broken_setup_lists_every_problem_with_its_fix(
    isolated_env: dict[str, str], tmp_path: Path
) -> None:
    """One command diagnoses a setup broken four ways at once."""
    workspace = tmp_path / "ws"
    workspace.mkdir()
    with FakeOllama([CODER, CHAT, THINKING]) as fake:
        user_config(isolated_env, f'host = "{fake.url}"\nengine = "ollama"\nkeepAlive = 0\n'
                    'model = "codellama:13b"\n[completion]\nmodel = "qwen3:4b"\n'
                    'deadlineMs = "soon"\n')
        result = run_cli(isolated_env, "doctor", "--json", "--workspace", str(workspace))
    assert result.returncode == 1
    report = json.loads(result.stdout)
    by_title = {f["title"]: f for f in report["findings"]}
    missing = by_title["Model 'codellama:13b' for actions (explain, improve, generate…) is not "
                       "installed"]
    assert "ollama pull codellama:13b" in missing["fix"] and "config.toml:4" in missing["detail"]
    assert any("is a thinking model, used for completion" in t for t in titles(report, "warning"))
    assert any("keepAlive = 0" in t for t in titles(report, "warning"))
    bad = next(f for f in report["findings"] if "completion.deadlineMs" in f["title"])
    assert bad["severity"] == "error" and bad["data"]["line"] == 7
    host = next(f for f in report["findings"] if f["title"].startswith("Ollama host:"))
    assert "config.toml:1" in host["detail"]


def test_doctor_workspace_config_and_its_refused_host(
    fake_ollama: FakeOllama, isolated_env: dict[str, str], tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "aethel.toml").write_text('host = "https://evil.example.com"\n')
    isolated_env["OLLAMA_HOST"] = fake_ollama.url
    result = run_cli(isolated_env, "doctor", "--json", "--no-probe",
                     "--workspace", str(workspace))
    report = json.loads(result.stdout)
    refused = next(f for f in report["findings"] if f["title"].startswith("Refused `host`"))
    assert "allowRemoteHostFromWorkspace = true" in refused["fix"]
    assert str(workspace / "aethel.toml") in report["configFiles"]
    assert report["settings"]["host"] == {"value": fake_ollama.url, "source": "env"}
    assert report["probes"] == []


def test_recommend_measure_follows_the_fake_and_keeps_the_numbers(
    isolated_env: dict[str, str], tmp_path: Path
) -> None:
    with FakeOllama([CODER, CHAT]) as fake:
        fake.set_reply(CODER.name, Reply(tokens=["a "] * 8, eval_count=8,
                                         eval_duration_ns=80_000_000))  # 100 tok/s
        fake.set_reply(CHAT.name, Reply(tokens=["b "] * 8, eval_count=8,
                                        eval_duration_ns=400_000_000))  # 20 tok/s
        data = ok_json(run_cli(isolated_env, "recommend", "--measure", "--json", "--host",
                               fake.url, "--workspace", str(tmp_path)))
        human = run_cli(isolated_env, "recommend", "--measure", "--host", fake.url,
                        "--workspace", str(tmp_path))
    rates = {m["model"]: m["tokensPerSecond"] for m in data["measurements"]}
    assert rates == {CODER.name: 100.0, CHAT.name: 20.0}
    recs = {r["useCase"]: r for r in data["recommendations"]}
    assert recs["inlineCompletion"]["model"] == CODER.name
    assert recs["actions"]["model"] == CHAT.name
    assert human.returncode == 0 and "inline completion: qwen2.5-coder:1.5b" in human.stdout
    stats = UsageStats(Path(isolated_env["AETHEL_LSP_STATE_DIR"]) / "usage.sqlite3")
    try:
        assert {p.model for p in stats.probes()} == {CODER.name, CHAT.name}
    finally:
        stats.close()


def test_inspect_shows_recorded_requests(isolated_env: dict[str, str], tmp_path: Path) -> None:
    empty = run_cli(isolated_env, "inspect", "--workspace", str(tmp_path))
    assert empty.returncode == 0 and "The inspector is off" in empty.stdout
    ring = Inspector(Path(isolated_env["AETHEL_LSP_STATE_DIR"]) / "inspector.sqlite3")
    try:
        for n in range(3):
            item = InspectionRecord(kind="inlineCompletion", endpoint="generate",
                                    model=CODER.name, engine="ollama", host="http://h",
                                    request={"prompt": f"def f{n}(", "suffix": ")\n",
                                             "options": {"num_predict": 64}},
                                    fim_mode="native", response=f"x{n}", outcome="ok",
                                    result=f"x{n}", result_source="fresh")
            ring.write(item)
    finally:
        ring.close()
    data = ok_json(run_cli(isolated_env, "inspect", "-n", "2", "--json",
                           "--workspace", str(tmp_path)))
    assert [r["request"]["prompt"] for r in data["records"]] == ["def f2(", "def f1("]
    assert data["enabled"] is False and data["size"] == 50
    human = run_cli(isolated_env, "inspect", "-n", "1", "--workspace", str(tmp_path))
    assert "FIM native" in human.stdout and "─── suffix ───" in human.stdout
    assert "─── result shown, fresh ───\nx2" in human.stdout
    cleared = run_cli(isolated_env, "inspect", "--clear", "--workspace", str(tmp_path))
    assert cleared.returncode == 0 and "Deleted every recorded request" in cleared.stdout
    after = ok_json(run_cli(isolated_env, "inspect", "--json", "--workspace", str(tmp_path)))
    assert after["records"] == []


def test_cli_generations_are_recorded_when_the_inspector_is_on(
    fake_ollama: FakeOllama, isolated_env: dict[str, str], tmp_path: Path
) -> None:
    user_config(isolated_env, f'model = "{CHAT.name}"\n[inspector]\nenabled = true\n')
    isolated_env["OPENAI_API_KEY"] = SECRET
    ok_json(run_cli(isolated_env, "generate", f"my key is {SECRET}", "--host", fake_ollama.url,
                    "--max-tokens", "8", "--json"))
    data = ok_json(run_cli(isolated_env, "inspect", "--json", "--workspace", str(tmp_path)))
    [record] = data["records"]
    assert data["enabled"] is True
    assert record["model"] == CHAT.name and record["outcome"] == "ok"
    assert record["request"]["prompt"] == "my key is [REDACTED]"
    assert record["request"]["options"] == {"num_predict": 8}
    assert record["response"] == CHAT.default_text
    assert SECRET not in json.dumps(data)
