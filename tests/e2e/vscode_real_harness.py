"""A real VS Code for tests: code-server in Debian's headless chromium, driven by puppeteer-core.

`tests/e2e/vscode_real/install.sh` installs code-server into a cache outside the clone;
`VsCodeSession` installs the extension's `.vsix` into a fresh extensions dir, starts
code-server on a free loopback port with hermetic HOME/XDG dirs and user data, and starts
`tests/e2e/vscode_real/driver.mjs`, a node process that launches chromium and answers one
JSON request per line (press keys, run a palette command, read the status bar...).

code-server is VS Code's remote setup: the extension host runs "remotely" (here, on the same
machine), so machine-scoped settings belong in the *Remote* settings file
(`<user-data-dir>/Machine/settings.json`), exactly as in Remote-SSH, WSL and containers.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import isolated_environ

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
EXTENSION = ROOT / "editors" / "vscode"
DRIVER_DIR = HERE / "vscode_real"
DRIVER = DRIVER_DIR / "driver.mjs"
INSTALL_SCRIPT = DRIVER_DIR / "install.sh"

CODE_SERVER_VERSION = os.environ.get("AETHEL_CODE_SERVER_VERSION", "4.100.3")
CACHE = Path(
    os.environ.get(
        "AETHEL_CODE_SERVER_CACHE", Path.home() / ".cache" / "aethel-lsp-ci" / "code-server"
    )
)
CODE_SERVER = CACHE / CODE_SERVER_VERSION
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
STATUS_ID = "aethel-lsp.aethel-lsp.aethel.status"


def missing_install() -> str | None:
    """Why the real-VS-Code suite cannot run here, or None when everything is installed."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node/npm are not installed"
    if not (CODE_SERVER / ".aethel-complete").exists():
        return f"code-server {CODE_SERVER_VERSION} is not installed in {CODE_SERVER}"
    if not Path(CHROMIUM).exists():
        return "Debian's chromium is not installed"
    if not (DRIVER_DIR / "node_modules" / "puppeteer-core").exists():
        return f"puppeteer-core is not installed in {DRIVER_DIR / 'node_modules'}"
    return None


def install_hint() -> str:
    return f"run {INSTALL_SCRIPT.relative_to(ROOT)} (about a minute, cached afterwards)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def build_vsix(out: Path) -> Path:
    """`npm ci` (when needed) and `npm run package`, as the node tests do."""
    env = {**os.environ, "npm_config_audit": "false", "npm_config_fund": "false"}
    if not (EXTENSION / "node_modules" / ".package-lock.json").exists():
        subprocess.run(
            ["npm", "ci", "--ignore-scripts"], cwd=EXTENSION, env=env, check=True,
            capture_output=True, timeout=600,
        )
    result = subprocess.run(
        ["npm", "run", "package", "--", "--out", str(out)],
        cwd=EXTENSION, env=env, capture_output=True, text=True, timeout=300,
    )
    if result.returncode != 0:
        output = f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        raise RuntimeError(f"npm run package failed:\n{output}")
    return out


class DriverError(AssertionError):
    """An operation of the browser driver failed (the message has the screenshot path)."""


class Driver:
    """The node driver process: `call(op, **args)` sends one request, waits for its answer."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self._log = log_path.open("w")
        self.proc = subprocess.Popen(
            ["node", str(DRIVER)],
            cwd=DRIVER_DIR,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            bufsize=1,
        )
        self._answers: queue.Queue[dict[str, Any]] = queue.Queue()
        self._next_id = 0
        threading.Thread(target=self._read, daemon=True).start()
        self.screenshot_dir: Path | None = None
        self.shots = 0

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self._answers.put(json.loads(line))
            except json.JSONDecodeError:
                continue

    def call(self, op: str, **args: Any) -> Any:
        """Run `op`; `timeout` (if given) is the driver's wait in ms, we wait a minute more."""
        timeout = float(args.get("timeout", 60000)) / 1000 + 60
        self._next_id += 1
        ident = self._next_id
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"id": ident, "op": op, "args": args}) + "\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DriverError(f"driver op {op} gave no answer in {timeout} s{self._shot(op)}")
            try:
                answer = self._answers.get(timeout=left)
            except queue.Empty:
                continue
            if answer.get("id") != ident:
                continue
            if not answer["ok"]:
                raise DriverError(f"{op}({args}) failed: {answer['error']}{self._shot(op)}")
            return answer["value"]

    def _shot(self, label: str) -> str:
        path = self.screenshot(label)
        return f"\nscreenshot: {path}" if path else ""

    def screenshot(self, label: str) -> Path | None:
        if self.screenshot_dir is None or self.proc.poll() is not None:
            return None
        self.shots += 1
        path = self.screenshot_dir / f"{self.shots:02d}-{label}.png"
        try:
            self.call_raw("screenshot", path=str(path))
        except Exception:
            return None
        return path

    def call_raw(self, op: str, **args: Any) -> Any:
        """A call that never takes screenshots (used by `screenshot` itself)."""
        dir_, self.screenshot_dir = self.screenshot_dir, None
        try:
            return self.call(op, **args)
        finally:
            self.screenshot_dir = dir_

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                self.proc.wait(timeout=20)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()


@dataclass
class VsCodeSession:
    """code-server + chromium + driver, with its workspace and settings files."""

    work: Path
    workspace: Path
    user_data: Path
    env: dict[str, str]
    port: int = 0
    server: subprocess.Popen[bytes] | None = None
    driver: Driver | None = None
    logs: list[Path] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/?folder={self.workspace}"

    @property
    def user_settings(self) -> Path:
        return self.user_data / "User" / "settings.json"

    @property
    def remote_settings(self) -> Path:
        return self.user_data / "Machine" / "settings.json"

    def write_settings(self, path: Path, values: dict[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values, indent=2))  # in place: the watcher follows the file

    def read_settings(self, path: Path) -> dict[str, Any]:
        return json.loads(path.read_text()) if path.exists() else {}

    def update_settings(self, path: Path, **changes: Any) -> None:
        """Set (or, with None, remove) keys such as `aethel__model` -> `aethel.model`."""
        values = self.read_settings(path)
        for key, value in changes.items():
            name = key.replace("__", ".")
            if value is None:
                values.pop(name, None)
            else:
                values[name] = value
        self.write_settings(path, values)

    def install_extension(self, vsix: Path) -> None:
        result = subprocess.run(
            [
                "node", str(CODE_SERVER / "out" / "node" / "entry.js"),
                "--user-data-dir", str(self.user_data),
                "--extensions-dir", str(self.work / "extensions"),
                "--install-extension", str(vsix),
            ],
            env=self.env, capture_output=True, text=True, timeout=180,
        )
        if result.returncode != 0 or "successfully installed" not in result.stdout.lower():
            raise RuntimeError(f"--install-extension failed:\n{result.stdout}\n{result.stderr}")

    def start(self) -> None:
        self.port = free_port()
        log = self.work / "code-server.log"
        self.logs.append(log)
        self.server = subprocess.Popen(
            [
                "node", str(CODE_SERVER / "out" / "node" / "entry.js"),
                "--auth", "none",
                "--bind-addr", f"127.0.0.1:{self.port}",
                "--user-data-dir", str(self.user_data),
                "--extensions-dir", str(self.work / "extensions"),
                "--config", str(self.work / "code-server.yaml"),
                "--disable-telemetry",
                "--disable-update-check",
                "--disable-workspace-trust",
                "--disable-getting-started-override",
                "--log", "info",
            ],
            env=self.env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=5):
                    break
            except (urllib.error.URLError, OSError):
                if self.server.poll() is not None:
                    raise RuntimeError(f"code-server exited:\n{log.read_text()[-3000:]}") from None
                time.sleep(0.3)
        else:
            raise RuntimeError(f"code-server did not answer:\n{log.read_text()[-3000:]}")
        driver_log = self.work / "driver.log"
        self.logs.append(driver_log)
        self.driver = Driver(self.env, driver_log)
        self.driver.screenshot_dir = screenshot_dir()
        self.driver.call(
            "launch", timeout=180000, executable=CHROMIUM,
            userDataDir=str(self.work / "chromium-profile"), url=self.url,
        )

    def extension_log(self) -> str:
        """The "Aethel" output channel, as VS Code writes it to disk."""
        found = sorted(self.user_data.glob("logs/**/Aethel.log"))
        return "\n".join(p.read_text(errors="replace") for p in found)

    def stop(self) -> None:
        if self.driver is not None:
            self.driver.close()
        if self.server is not None and self.server.poll() is None:
            os.killpg(self.server.pid, 15)
            try:
                self.server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.server.pid, 9)
                self.server.wait(timeout=10)


def screenshot_dir() -> Path:
    """Where failures' screenshots go: outside pytest's tmp dirs, which later runs prune."""
    base = Path(os.environ.get("AETHEL_VSCODE_SCREENSHOTS", Path(tempfile.gettempdir())))
    path = base / "aethel-vscode-real" / time.strftime("%Y%m%d-%H%M%S")
    path.mkdir(parents=True, exist_ok=True)
    return path


def session_environ(work: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Hermetic HOME/XDG dirs, and nothing that would start the server by itself.

    No PYTHONPATH and the venv's bin off PATH: only the configured command (a wrapper
    script that starts this checkout's server) works, as for a user whose server is not
    on PATH. An empty extension gallery: code-server would otherwise query open-vsx.org.
    """
    venv_bin = str(Path(sys.executable).parent)
    path = os.pathsep.join(
        p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != venv_bin
    )
    base = {"PATH": path, "EXTENSIONS_GALLERY": "{}"}
    env = isolated_environ(work / "env", {**base, **(extra or {})})
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    return env
