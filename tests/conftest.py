import sys
from pathlib import Path

# Peer runners (tests/peers) import as `peers`; only tests/ joins sys.path, never the
# repository root, so the installed qsim is what the tests exercise.
sys.path.insert(0, str(Path(__file__).parent))
