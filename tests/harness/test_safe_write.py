"""The one write path (benchmarks/guard/safe_write.py), the signal rules (benchmarks/guard/signals.py) and the bounded parser's
newest limits, unit by unit (the CLI cases are in tests/cli/test_hostile.py, slow tier)."""
from __future__ import annotations

import errno
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from benchmarks.guard import input_limits, safe_write, signals
from benchmarks.errors import BenchmarkError, printable


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "victim"
    victim.write_text("secret")
    return victim


def test_a_write_replaces_a_symlink_never_its_target(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    (tmp_path / "result.json").symlink_to(victim)
    safe_write.write_json(tmp_path / "result.json", {"x": float("nan")})
    assert victim.read_text() == "secret" and not (tmp_path / "result.json").is_symlink()
    assert (tmp_path / "result.json").read_text() == '{\n  "x": null\n}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json", "victim"]  # no temporary file left


@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_a_target_that_is_not_a_regular_file_is_refused(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "out.jsonl"
    target.mkdir() if kind == "folder" else os.mkfifo(target)
    with pytest.raises(BenchmarkError, match=f"--out {target} is a {'folder' if kind == 'folder' else 'FIFO'}, "
                                             "not a regular file"):
        safe_write.write_text(target, "x", "--out")
    with pytest.raises(BenchmarkError, match="not a regular file"):
        safe_write.append_lines(target, "x\n", "--out")


def test_an_append_is_whole_lines_or_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.jsonl"
    safe_write.append_lines(path, "a\nb\n")

    def half_then_full(fd: int, data: Any) -> int:
        os.write(fd, bytes(data[:3]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(safe_write, "_append", half_then_full)
    with pytest.raises(OSError, match="No space left"):
        safe_write.append_lines(path, "cccccc\ndddddd\n")
    assert path.read_text() == "a\nb\n"
    with pytest.raises(ValueError, match="whole lines"):
        safe_write.append_lines(path, "no newline")


def test_appends_locks_and_logs_never_follow_a_symlink(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    (tmp_path / "run.log").symlink_to(victim)
    for call in (lambda p: safe_write.append_lines(p, "x\n"), safe_write.open_log,
                 lambda p: safe_write.open_fd(p, os.O_RDWR, "lock")):
        with pytest.raises(BenchmarkError, match="is a symlink; it is never written through"):
            call(tmp_path / "run.log")
    assert victim.read_text() == "secret"


def test_remove_takes_the_link_not_its_target_and_never_a_folder(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    (tmp_path / "link").symlink_to(victim)
    assert safe_write.remove(tmp_path / "link") and victim.read_text() == "secret"
    assert not safe_write.remove(tmp_path / "link")
    (tmp_path / "d").mkdir()
    with pytest.raises(BenchmarkError, match="is a folder"):
        safe_write.remove(tmp_path / "d")


def test_the_write_probe_opens_nothing_that_exists(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    (tmp_path / ".write-test").symlink_to(victim)
    safe_write.probe_folder(tmp_path)
    assert victim.read_text() == "secret" and sorted(p.name for p in tmp_path.iterdir()) == [".write-test", "victim"]


def test_an_in_place_rewrite_keeps_the_inode(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text("old,header\n1,2\n")
    inode = path.stat().st_ino
    safe_write.rewrite_in_place(path, b"new,header,more\n1,2,\n")
    assert path.stat().st_ino == inode and path.read_text() == "new,header,more\n1,2,\n"


def test_a_signal_is_held_while_imports_run_then_raised_once() -> None:
    previous = signals.start()
    try:
        with pytest.raises(KeyboardInterrupt, match="signal 15"):
            with signals.deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                os.kill(os.getpid(), signal.SIGTERM)
                done = True  # reached: the signals were recorded, not raised inside the block
        assert done and signals.requested() == signal.SIGTERM
        signals.caught()
        os.kill(os.getpid(), signal.SIGTERM)  # after the CLI caught it: nothing happens
        signals.check()
    finally:
        signals.end(previous)
    assert signal.getsignal(signal.SIGTERM) == previous[signal.SIGTERM] and signals.requested() is None


def test_a_second_signal_right_after_the_first_is_the_same_request() -> None:
    previous = signals.start()
    raised = 0
    try:
        for _ in range(2):
            try:
                os.kill(os.getpid(), signal.SIGINT)
                for _ in range(1000):  # the handler runs between bytecodes
                    pass
            except KeyboardInterrupt:
                raised += 1
    finally:
        signals.end(previous)
    assert raised == 1


def test_integer_literals_are_bounded_in_yaml_and_json() -> None:
    import yaml

    assert input_limits.load_yaml("a: 123\nb: 0x10") == {"a": 123, "b": 16}
    with pytest.raises(yaml.YAMLError, match="an integer of 5,000 digits"):
        input_limits.load_yaml("a: " + "9" * 5000)
    with pytest.raises(BenchmarkError, match=r"^f.json: an integer of 5,000 digits"):
        input_limits.parse_json('{"a": ' + "9" * 5000 + "}", "f.json")
    assert input_limits.parse_json('{"a": 12}', "f.json") == {"a": 12}


def test_printable_escapes_terminal_sequences_and_undecodable_bytes() -> None:
    assert printable("o\x1b]0;x\x07\x9b/\udcff") == "o\\x1b]0;x\\x07\\x9b/\\xff"
    assert printable("a\nb", keep_newlines=True) == "a\nb" and printable("a\nb") == "a\\x0ab"
