"""Writes eval.txt: the module docstrings of a fixed list of Python standard library modules,
as this Python (3.11) ships them (Python Software Foundation License; see README.md). Run with
the interpreter whose documentation you want: python3 models/llm/make_eval_text.py"""

import importlib
import inspect
import sys
from pathlib import Path

MODULES = ("json", "heapq", "difflib", "string", "sched", "calendar", "secrets", "statistics", "tempfile",
           "fnmatch", "csv", "copy", "pprint", "getopt", "argparse", "random", "unittest", "logging")


def main() -> None:
    parts = [f"{name}\n\n{inspect.cleandoc(importlib.import_module(name).__doc__)}\n" for name in MODULES]
    out = Path(__file__).with_name("eval.txt")
    out.write_text("\n".join(parts))
    print(f"{out}: {len(MODULES)} module docstrings from Python {sys.version.split()[0]}, {out.stat().st_size} bytes")


if __name__ == "__main__":
    main()
