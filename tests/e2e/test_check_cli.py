"""`aethel-lsp check` through the real entry point (a subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "aethel"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aethel_lsp", "check", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_valid_files_exit_zero_and_print_nothing() -> None:
    result = run(
        str(FIXTURES / "examples" / "transfer.ae"), str(FIXTURES / "examples" / "escrow_batch.ae")
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""


def test_errors_are_printed_compiler_style_and_exit_one() -> None:
    drift = str(FIXTURES / "examples" / "drift.ae")
    violation = str(FIXTURES / "examples" / "conservation_violation.ae")
    result = run(violation, drift)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{violation}:11:5: error: conservation violated")
    assert lines[0].endswith("[conservation]")
    comment = "`//` comments are not Aethel: start comments with `#` [foreign-comment]"
    assert f"{drift}:1:1: error: {comment}" in lines
    assert any(line.startswith(f"{drift}:5:16: error: `=` is assignment") for line in lines)


def test_json_output() -> None:
    result = run("--json", str(FIXTURES / "examples" / "drift.ae"))
    assert result.returncode == 1
    records = json.loads(result.stdout)
    assert records[0] == {
        "file": str(FIXTURES / "examples" / "drift.ae"),
        "line": 1,
        "column": 1,
        "endLine": 1,
        "endColumn": 3,
        "severity": "error",
        "code": "foreign-comment",
        "message": "`//` comments are not Aethel: start comments with `#`",
    }


def test_unreadable_file(tmp_path: Path) -> None:
    result = run(str(tmp_path / "missing.ae"))
    assert result.returncode == 1
    assert "cannot read" in result.stderr


def test_directories_are_searched_for_ae_files() -> None:
    result = run(str(FIXTURES / "examples"))
    assert result.returncode == 1
    files = {line.split(":", 1)[0] for line in result.stdout.splitlines()}
    assert files == {
        str(FIXTURES / "examples" / "conservation_violation.ae"),
        str(FIXTURES / "examples" / "drift.ae"),
    }


def test_a_directory_without_ae_files_fails_loudly(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not aethel\n", encoding="utf-8")
    result = run(str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: no .ae files found in {tmp_path}"


def _budget_bound_file(tmp_path: Path) -> Path:
    """40 intents and (with --file-budget-ms 1) no time to check more than the first."""
    body = (FIXTURES / "examples" / "transfer.ae").read_text(encoding="utf-8")
    path = tmp_path / "many.ae"
    path.write_text(
        "\n".join(body.replace("intent transfer", f"intent transfer_{k}") for k in range(40)),
        encoding="utf-8",
    )
    return path


def test_not_proven_passes_by_default_but_says_so(tmp_path: Path) -> None:
    path = _budget_bound_file(tmp_path)
    result = run(str(path), "--file-budget-ms", "1")
    assert result.returncode == 0, result.stdout
    lines = result.stdout.splitlines()
    assert any(": warning: not proven:" in line and "[solver-budget]" in line for line in lines)
    assert lines[-1].startswith("not proven: ")
    assert lines[-1].endswith("they do not fail the check unless --strict is given")


def test_strict_fails_on_not_proven(tmp_path: Path) -> None:
    path = _budget_bound_file(tmp_path)
    result = run(str(path), "--file-budget-ms", "1", "--strict")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert any(": error: not proven:" in line for line in lines)
    assert lines[-1].endswith("they fail the check (--strict)")
    valid = run(str(FIXTURES / "examples" / "transfer.ae"), "--strict")
    assert (valid.returncode, valid.stdout) == (0, "")


def test_optional_checks_are_flags(tmp_path: Path) -> None:
    path = tmp_path / "claim.ae"
    path.write_text(
        "intent t(a: A) {\n    guard { a > 0; b > 0; }\n    solve { priority: security; }\n"
        "    verify { a * b > 1; }\n}\n",
        encoding="utf-8",
    )
    assert run(str(path)).returncode == 0
    result = run(str(path), "--verify-implied", "--symbolic-overflow")
    assert result.returncode == 1
    assert "[not-implied]" in result.stdout and "[symbolic-overflow]" in result.stdout


def test_bad_budget_is_a_usage_error() -> None:
    result = run(str(FIXTURES / "examples" / "transfer.ae"), "--file-budget-ms", "0")
    assert result.returncode == 2
    assert "--file-budget-ms: '0' must be a positive whole number" in result.stderr
