"""The VS Code extension (editors/vscode), built and tested the way CI must: without VS Code.

Runs, in editors/vscode: `npm ci --ignore-scripts` (only when node_modules is missing),
`npm run typecheck`, `npm run lint`, `npm test` (node's test runner: unit tests of the pure
modules, the TextMate grammar through vscode-textmate, package.json against protocol.py and
docs/configuration.md, the wire test that drives the REAL server over stdio against the fake
Ollama with vscode-languageserver-protocol, and the extension itself activated against a
stubbed `vscode` module and the real server), and `npm run package` (a real `.vsix`).
Skipped, with the reason, when node/npm are not installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.node

EXTENSION = Path(__file__).resolve().parents[2] / "editors" / "vscode"
NPM = shutil.which("npm")

if NPM is None:
    pytest.skip(
        "npm is not installed: the VS Code extension tests need node >= 20 and npm "
        "(apt-get install nodejs npm)",
        allow_module_level=True,
    )


def npm(*args: str, timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
    """Run an npm command in editors/vscode; the wire test uses this interpreter."""
    assert NPM is not None
    env = dict(os.environ)
    env.update(
        {
            "AETHEL_PYTHON": sys.executable,  # the venv running pytest has aethel_lsp installed
            "AETHEL_WIRE_REQUIRED": "1",  # in CI the wire test must run, never skip
            "npm_config_audit": "false",
            "npm_config_fund": "false",
            "npm_config_update_notifier": "false",
        }
    )
    return subprocess.run(
        [NPM, *args],
        cwd=EXTENSION,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def show(result: subprocess.CompletedProcess[str]) -> str:
    return (
        f"exit {result.returncode}\n--- stdout ---\n{result.stdout[-6000:]}"
        f"\n--- stderr ---\n{result.stderr[-4000:]}"
    )


@pytest.fixture(scope="module")
def installed() -> Path:
    """node_modules from package-lock.json (npm registry only), installed once.

    `--ignore-scripts`: no install script is needed (esbuild finds its binary in its
    platform package; vsce-sign only matters for publishing), so npm 10 and 11 behave the
    same and nothing but the registry is ever contacted.
    """
    if not (EXTENSION / "node_modules" / ".package-lock.json").exists():
        result = npm("ci", "--ignore-scripts", timeout=600.0)
        assert result.returncode == 0, show(result)
    return EXTENSION


def test_typecheck(installed: Path) -> None:
    result = npm("run", "typecheck")
    assert result.returncode == 0, show(result)


def test_lint(installed: Path) -> None:
    result = npm("run", "lint")
    assert result.returncode == 0, show(result)


def test_node_unit_and_wire_tests(installed: Path) -> None:
    result = npm("test")
    assert result.returncode == 0, show(result)
    summary = result.stdout
    assert "# fail 0" in summary, show(result)
    assert "# skipped 0" in summary, show(result)  # the wire test ran against the real server
    passed = [line for line in summary.splitlines() if line.startswith("# pass ")]
    assert passed and int(passed[-1].split()[-1]) >= 40, show(result)


def test_package_builds_a_vsix(installed: Path, tmp_path: Path) -> None:
    vsix = tmp_path / "aethel-lsp.vsix"
    result = npm("run", "package", "--", "--out", str(vsix))
    assert result.returncode == 0, show(result)
    with zipfile.ZipFile(vsix) as archive:
        names = set(archive.namelist())
        manifest = archive.read("extension/package.json").decode()
    for required in (
        "extension/dist/extension.js",
        "extension/syntaxes/aethel.tmLanguage.json",
        "extension/snippets/aethel.json",
        "extension/language-configuration.json",
        "extension/readme.md",
        "extension/LICENSE.txt",
    ):
        assert required in names, sorted(names)
    # sources, tests and node_modules stay out of the package
    kept_out = ("extension/src/", "extension/test/", "extension/node_modules/")
    assert not any(n.startswith(kept_out) for n in names), sorted(names)
    assert '"aethel-vscode.explainSelection"' in manifest
