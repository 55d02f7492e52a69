from __future__ import annotations

import threading
from pathlib import Path

import pytest

from bot.core.files import write_atomic


def test_writers_in_several_threads_never_share_a_temporary_file(tmp_path: Path):
    path = tmp_path / "logs" / "output.log"
    contents = {f"writer {w}\n" * 1000 for w in range(8)}
    errors, seen = [], set()

    def write(text: str) -> None:
        try:
            for _ in range(100):
                write_atomic(path, text)
                seen.add(path.read_text())
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(text,)) for text in contents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert seen <= contents, "a reader saw a half-written file"
    assert [p.name for p in path.parent.iterdir()] == ["output.log"], "no temporary file is left"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path):
    path = tmp_path / "state.json"
    write_atomic(path, b"old")
    with pytest.raises(TypeError):
        write_atomic(path, object())  # not bytes: fails while writing
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["state.json"]
