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
