"""`qsim formats` lists the block-scaled formats beside the element formats, with the bits per
element that the formats' definitions give (block scale overhead included)."""

import subprocess
import sys


def qsim_formats(*args):
    r = subprocess.run([sys.executable, "-P", "-m", "qsim.cli", "formats", *args], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return {line.split()[0] if not line.startswith("ggml") else " ".join(line.split()[:2]): line.split()
            for line in r.stdout.splitlines() if line.strip() and not line.startswith("-")}


def test_block_formats_are_listed_with_their_bits_per_element():
    rows = qsim_formats("--kind", "block")
    # element bits + scale bits / block: MXFP4 4 + 8/32, NVFP4 4 + 8/16, 1x128 FP8 with FP32 scales 8 + 32/128
    assert rows["mxfp4"][-1] == "4.25" and rows["nvfp4"][-1] == "4.5" and rows["fp8_block_1x128"][-1] == "8.25"
    # ggml: Q4_0 = 18 bytes per 32 weights, Q8_0 = 34 bytes per 32, Q4_K = 144 bytes per 256
    assert rows["ggml Q4_0"][-1] == "4.5" and rows["ggml Q8_0"][-1] == "8.5" and rows["ggml Q4_K"][-1] == "4.5"
    assert "e4m3" not in rows


def test_all_kinds_by_default():
    rows = qsim_formats()
    assert {"e4m3", "int8", "mxfp8_e4m3", "ggml Q6_K"} <= set(rows)
