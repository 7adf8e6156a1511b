"""Atomic file writes: write to a temporary name in the same directory, then rename, so a
reader (or a run killed midway) sees the old file or the new one, never half of one."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomic(path, write) -> Path:
    """Call write(temporary_path), then rename the temporary file to path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a name of this process's own (not mkstemp, whose 0600 mode would survive the rename)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text_atomic(path, text: str) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
