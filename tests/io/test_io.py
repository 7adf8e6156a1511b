"""Atomic writes: a failed write or rename leaves the previous file and no temporary file."""

import os

import pytest

from qsim import io as qio


def test_failed_rename_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "r.html"
    qio.write_text_atomic(target, "old")
    assert target.read_text() == "old"

    def fail(*args):
        raise OSError("disk full")
    monkeypatch.setattr(qio.atomic.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        qio.write_text_atomic(target, "new")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["r.html"]


def test_failed_writer_leaves_nothing(tmp_path):
    def half_then_crash(tmp):
        tmp.write_bytes(b"half")
        raise RuntimeError("killed")
    with pytest.raises(RuntimeError):
        qio.write_atomic(tmp_path / "sub" / "part.parquet", half_then_crash)
    assert os.listdir(tmp_path / "sub") == []
