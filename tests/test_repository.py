"""Every reference in the repository resolves inside it: a clone has no shared folder beside it, so a file
named in a docstring, a comment, a preset's energy source or the README must be in the tree."""

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# (reports/ holds what qsim writes, except the shipped sweep descriptions and example report)
TOP = ("docs", "qsim", "tests", "models", "reports/sweeps", "reports/example", "benchmarks", "cython_src", ".ci")
# a path into one of the repository's top-level folders, ending in a file name with an extension
REFERENCE = re.compile(r"(?<![\w/.-])(?:" + "|".join(re.escape(t) for t in TOP) + r")/[\w./-]*\w\.[a-z]{1,5}\b")


def tracked_text_files():
    try:
        names = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout (an sdist): the references are checked in the repository")
    for name in names:
        path = REPO / name
        if path.suffix in {".py", ".pyx", ".h", ".toml", ".md", ".yaml", ".txt", ".html", ""} and path.is_file():
            yield path


OUTSIDE = "/".join(("shared", "design"))      # spelled so that this file does not name it


def test_no_reference_leaves_the_repository():
    outside = [f"{p.relative_to(REPO)}:{i}" for p in tracked_text_files()
               for i, line in enumerate(p.read_text(errors="replace").splitlines(), 1) if OUTSIDE in line
               and not p.is_relative_to(REPO / "docs")]
    assert not outside, f"references to {OUTSIDE}, which a clone does not have: {outside}"


def test_every_named_file_exists():
    missing = []
    for p in tracked_text_files():
        for i, line in enumerate(p.read_text(errors="replace").splitlines(), 1):
            for ref in REFERENCE.findall(line):
                ref = ref.rstrip(".")
                if "*" not in ref and "<" not in ref and not (REPO / ref).exists():
                    missing.append(f"{p.relative_to(REPO)}:{i}: {ref}")
    assert not missing, "files named but not in the repository:\n" + "\n".join(missing)
