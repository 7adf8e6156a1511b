"""Run SCALE-Sim v3 (the `scalesim` package) on a list of layers and print what it counts.

Runs in scalesim's own virtual environment (it needs numpy<2), never in qsim's: qsim drives it
as a subprocess (tests/hardware/scalesim/oracle.py). Input on stdin: JSON lines, one run each,
{"kind": "gemm", "M", "K", "N"} or {"kind": "conv", "H", "W", "R", "S", "C", "F", "stride"}, with
"rows", "cols", "dataflow" ("os", "ws", "is") and "sram_kb": [ifmap, filter, ofmap]. Output on
stdout: one JSON line per run with its inputs and SCALE-Sim's report fields. Everything runs in
CALC interface-bandwidth mode (SCALE-Sim's shipped default), no traces, one byte per word.
"""

import contextlib
import csv
import io
import json
import os
import sys
import tempfile

from scalesim.scale_sim import scalesim

CONFIG = """[general]
run_name = run

[architecture_presets]
ArrayHeight : {rows}
ArrayWidth : {cols}
IfmapSramSzkB : {ifmap_kb}
FilterSramSzkB : {filter_kb}
OfmapSramSzkB : {ofmap_kb}
IfmapOffset : 0
FilterOffset : 10000000
OfmapOffset : 20000000
Dataflow : {dataflow}
Bandwidth : 10
ReadRequestBuffer : 32
WriteRequestBuffer : 32

[layout]
IfmapCustomLayout : False
IfmapSRAMBankBandwidth : 10
IfmapSRAMBankNum : 1
IfmapSRAMBankPort : 2
FilterCustomLayout : False
FilterSRAMBankBandwidth : 10
FilterSRAMBankNum : 1
FilterSRAMBankPort : 2

[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40

[run_presets]
InterfaceBandwidth : CALC
UseRamulatorTrace : False
"""

LAYOUT = "Layer name," + ",".join(f"f{i}" for i in range(20)) + ",\nlayer0," + ",".join("1" for _ in range(20)) + ",\n"


def run_one(spec: dict, workdir: str) -> dict:
    ifmap_kb, filter_kb, ofmap_kb = spec["sram_kb"]
    cfg = os.path.join(workdir, "run.cfg")
    with open(cfg, "w") as f:
        f.write(CONFIG.format(rows=spec["rows"], cols=spec["cols"], dataflow=spec["dataflow"],
                              ifmap_kb=ifmap_kb, filter_kb=filter_kb, ofmap_kb=ofmap_kb))
    topo = os.path.join(workdir, "layers.csv")
    with open(topo, "w") as f:
        if spec["kind"] == "gemm":
            f.write("Layer, M, N, K,\n")
            f.write(f"layer0, {spec['M']}, {spec['N']}, {spec['K']},\n")
        else:
            f.write("Layer, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n")
            f.write(f"layer0, {spec['H']}, {spec['W']}, {spec['R']}, {spec['S']}, {spec['C']}, {spec['F']}, "
                    f"{spec['stride']},\n")
    layout = os.path.join(workdir, "layout.csv")
    with open(layout, "w") as f:
        f.write(LAYOUT)
    out = os.path.join(workdir, "out")
    with contextlib.redirect_stdout(io.StringIO()):
        sim = scalesim(save_disk_space=True, verbose=False, config=cfg, topology=topo, layout=layout,
                       input_type_gemm=spec["kind"] == "gemm")
        sim.run_scale(top_path=out)
    report = os.path.join(out, "run")
    compute = _row(os.path.join(report, "COMPUTE_REPORT.csv"))
    detail = _row(os.path.join(report, "DETAILED_ACCESS_REPORT.csv"))
    return dict(spec,
                total_cycles=int(float(compute[1])), compute_cycles=int(float(compute[2])),
                stall_cycles=int(float(compute[3])),
                sram_reads_a=int(float(detail[3])), sram_reads_b=int(float(detail[6])),
                sram_writes_c=int(float(detail[9])), dram_reads_a=int(float(detail[12])),
                dram_reads_b=int(float(detail[15])), dram_writes_c=int(float(detail[18])))


def _row(path: str) -> list[str]:
    with open(path) as f:
        rows = list(csv.reader(f))
    return [x.strip() for x in rows[1]]


def main() -> None:
    with tempfile.TemporaryDirectory() as workdir:
        for line in sys.stdin:
            if line.strip():
                print(json.dumps(run_one(json.loads(line), workdir)), flush=True)


if __name__ == "__main__":
    main()
