"""Regenerate reference.jsonl: SCALE-Sim v3 over a grid of GEMM and convolution layers x array
shapes x dataflows x scratchpad sizes. Run with qsim's interpreter (about 10 minutes):

    python tests/hardware/scalesim/make_reference.py

test_scalesim_live.py reruns a subset live to prove the stored numbers current.
"""

import itertools
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from oracle import REFERENCE, run_scalesim  # noqa: E402

GEMMS = [(7, 5, 9), (64, 32, 16), (100, 64, 50), (33, 70, 20), (96, 48, 80)]
CONVS = [(12, 12, 3, 3, 8, 16, 1), (9, 9, 3, 3, 4, 12, 2), (8, 8, 1, 1, 16, 24, 1)]
ARRAYS = [(8, 8), (16, 8), (32, 32)]
DATAFLOWS = ["os", "ws", "is"]
SRAM_KB = [(1, 1, 1), (64, 64, 64)]


def grid() -> list[dict]:
    layers = [dict(kind="gemm", M=m, K=k, N=n) for m, k, n in GEMMS]
    layers += [dict(kind="conv", H=h, W=w, R=r, S=s, C=c, F=f, stride=st) for h, w, r, s, c, f, st in CONVS]
    runs = [dict(layer, rows=r, cols=c, dataflow=df, sram_kb=list(kb))
            for layer, (r, c), df, kb in itertools.product(layers, ARRAYS, DATAFLOWS, SRAM_KB)]
    # the large layer: every operand far larger than its scratchpad
    runs += [dict(kind="gemm", M=256, K=128, N=256, rows=16, cols=16, dataflow=df, sram_kb=[16, 16, 16])
             for df in DATAFLOWS]
    return runs


if __name__ == "__main__":
    rows = run_scalesim(grid())
    REFERENCE.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    print(f"{len(rows)} runs -> {REFERENCE}")
