"""Golden vectors for a whole quantized model, layer by layer, so that an RTL team can
validate each layer and find the first one that differs.

`model_golden(model, inputs, out_dir)` runs the model as run_model does (ONNX Runtime's own
kernel path, or a described machine's with hardware=) and writes one golden set per node of
the graph that path executes, in execution order: DIR/NNN-<node>/ (golden.npz, one .hex per
array, manifest.json; op "layer"), the node's inputs and parameters as in0, in1, ... and its
outputs as out0, out1, ... Tensors are codes of their format (uint8, int8, int16..., fp32);
int32 tensors (the accumulators of MatMulInteger / ConvInteger on the unfused path) have no
qsim format and are written as their two's-complement bits: `qsim validate` compares the
layers whose outputs have a format, and those layers' hex compares as it is. DIR/index.json lists the layers, their ops and tensor
names, so `qsim validate DIR/NNN-<node> --outputs ...` checks one layer at a time.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from .._cpu import ort_integer_datapath
from ..formats import format as get_format
from ..io.atomic import write_atomic
from .store import Case, Golden, GoldenError, write_golden

INDEX = "index.json"


_FLOATS = {np.dtype(np.float32): "fp32", np.dtype(np.float16): "fp16"}


def _format_of(arr: np.ndarray) -> str | None:
    """The qsim format of a tensor's codes: 8- and 16-bit integers, float16 and float32; None
    (its bits as they are) for the others, such as the int32 accumulators of MatMulInteger."""
    if arr.dtype.kind in "ui" and arr.dtype.itemsize <= 2:
        return get_format(f"{'u' if arr.dtype.kind == 'u' else ''}int{8 * arr.dtype.itemsize}").name
    return _FLOATS.get(arr.dtype)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")[:60] or "node"


def model_golden(model, inputs, out_dir, hardware=None, path: str | None = None) -> list[Path]:
    """Write one golden set per executed node of a quantized ONNX model (a path or ModelProto)
    into out_dir; returns their directories in execution order."""
    from ..sim.onnx_quant import PATHS, execute
    from ..sim.run import _prepared, hardware_datapath
    path = "ort-default" if path is None else path
    if path not in PATHS:
        raise ValueError(f"unknown path {path!r}; choose one of {', '.join(PATHS)}")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not (out / INDEX).exists():
        raise GoldenError(f"{out} exists, is not empty and holds no model golden set ({INDEX}); refusing to write there")
    qm = _prepared(model, path)
    datapath = ort_integer_datapath() if hardware is None else hardware_datapath(hardware)
    values = {**qm.consts, **execute(qm, inputs, datapath=datapath, intermediates=True)}
    source = str(model) if isinstance(model, (str, Path)) else qm.source
    kernel = datapath if isinstance(datapath, str) else datapath.name
    written, index = [], []
    for i, node in enumerate(qm.nodes):
        ins = {f"in{j}": np.asarray(values[name]) for j, name in enumerate(node.inputs) if name}
        outs = {f"out{j}": np.asarray(values[name]) for j, name in enumerate(node.outputs) if name}
        arrays = {**ins, **outs}
        info = {"model": source, "path": path, "kernel_path": kernel, "node": node.name, "node_op": node.op,
                "domain": node.domain, "position": i,
                "tensors": {k: name for k, name in zip([f"in{j}" for j in range(len(node.inputs))], node.inputs) if name}
                | {k: name for k, name in zip([f"out{j}" for j in range(len(node.outputs))], node.outputs) if name},
                "parameters": [f"in{j}" for j, name in enumerate(node.inputs) if name in qm.consts]}
        golden = Golden("layer", {"model": source, "node": node.name, "path": path,
                                  "hardware": None if hardware is None else str(getattr(hardware, "name", hardware))},
                        info, {k: _format_of(v) for k, v in arrays.items()}, list(outs),
                        [Case(node.name, "directed", f"{node.op} as the {path} path runs it on {kernel}", ins, outs)])
        where = write_golden(golden, out / f"{i:03d}-{_safe(node.name)}")
        written.append(where)
        index.append({"dir": where.name, "node": node.name, "op": node.op, "inputs": list(node.inputs),
                      "outputs": list(node.outputs)})
    text = json.dumps({"model": source, "path": path, "kernel_path": kernel, "layers": index}, indent=1) + "\n"
    write_atomic(out / INDEX, lambda tmp: Path(tmp).write_text(text))
    return written
