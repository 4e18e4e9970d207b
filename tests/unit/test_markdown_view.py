"""write_rotated: the newest few files are kept, and never the one just written is lost."""

from __future__ import annotations

from pathlib import Path

from aethel_lsp.lsp.markdown_view import write_rotated


def test_keeps_the_newest_few(tmp_path: Path) -> None:
    paths = [write_rotated(tmp_path, "doctor", f"report {n}", keep=2) for n in range(4)]
    assert paths[-1].read_text(encoding="utf-8") == "report 3"
    assert len(list(tmp_path.glob("doctor-*.md"))) == 2


def test_the_file_just_written_survives_whatever_its_name_sorts_like(tmp_path: Path) -> None:
    """Names order by time only roughly (the sub-second part wraps every millisecond)."""
    for n in range(3):
        (tmp_path / f"doctor-99991231-235959-99999{n}.md").write_text("old", encoding="utf-8")
    path = write_rotated(tmp_path, "doctor", "new", keep=3)
    assert path.read_text(encoding="utf-8") == "new"
    assert len(list(tmp_path.glob("doctor-*.md"))) == 3
