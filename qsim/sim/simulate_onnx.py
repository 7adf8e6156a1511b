"""Simulate an ONNX file like a built-in model: one record per node and one for the model, in the
records schema (qsim.io.records), so `qsim report` reads them unchanged.

- A quantized model (QDQ or QOperator from quantize_static, quantize_dynamic, or written by
  hand) runs with its own quantization parameters (qsim.sim.run_model): on the kernel path it was
  made for (hardware None, "ort-default" or "ort-unfused": ONNX Runtime's CPU provider, default
  session or ORT_DISABLE_ALL; its cost is charged to the x86 CPU preset ORT_CPU) or with its
  integer products on a described machine's kernel path (a preset or TOML). A row per node of
  the graph that runs (its name is the ONNX node name; nodes whose inputs are all constants are
  folded, not rows): error against the FP32 reference (qsim.sim.onnx_reference: the same graph
  with every quantization undone), the GEMM shape and the cost model's fields. Accumulator
  events are not counted for imported models (overflow and saturated are null).
- A float model is imported as a workload (qsim.sim.onnx_workload) and simulated as the
  built-in models are, with qsim's calibration on the same inputs.

Inputs: model_inputs() reads an .npz (arrays named as the model's inputs; "labels" optional)
or makes deterministic random ones: standard normal float32 from numpy's default_rng(seed),
of each input's shape, a symbolic dimension taken from dims (e.g. {"batch": 8}).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..hardware import load_hardware
from ..hardware.cost import vector_layer_cost
from ..io import MODEL_ROW
from ..plan import plan_gemm
from .onnx_graph import OnnxQuantError
from .onnx_quant import PATHS, execute, load_quantized
from .onnx_reference import qparams, real, reference
from .run import _prepared, hardware_datapath
from .simulate import _TOTALS, _cost_fields, _gemm_cost_fields, _layer_fields, _metrics, _run_info, simulate

ORT_CPU = "x86-cpu-ort"                      # the machine preset an ORT session's cost is charged to
CONV_OPS = {"QLinearConv": 3, "ConvInteger": 1, "Conv": 1, "FusedConv": 1}            # op -> weight input
MATMUL_OPS = {"QLinearMatMul": 3, "MatMulInteger": 1, "MatMulIntegerToFloat": 1, "DynamicQuantizeMatMul": 1,
              "MatMul": 1, "FusedMatMul": 1, "QGemm": 3, "Gemm": 1, "FusedGemm": 1}


def is_onnx_model(model) -> bool:
    """Whether --model names an ONNX file (rather than a built-in model or a Llama .gguf file)."""
    if not isinstance(model, (str, Path)) or str(model).endswith(".gguf"):
        return False
    return str(model).endswith(".onnx") or Path(model).is_file()


def _check_file(path: str) -> None:
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"model {path}: no such file" if not p.exists() else f"model {path}: not a file")


def _is_quantized(path: str) -> bool:
    try:
        load_quantized(path)
    except OnnxQuantError as e:
        if "has no quantization" in str(e):
            return False
        raise
    return True


def model_inputs(path: str, inputs=None, dims: dict | None = None, seed: int = 0, samples: int = 0) -> tuple:
    """(feeds, labels): the model's inputs by name, from an .npz file or dict (inputs) or
    deterministic random ones (see the module docstring); labels from the npz's "labels" or
    None. samples > 0 fills an unnamed or symbolic first dimension not in dims."""
    qm = _graph_inputs(path)
    labels = None
    if inputs is not None:
        if isinstance(inputs, (str, Path)):
            try:
                with np.load(inputs) as f:
                    inputs = dict(f)
            except (OSError, ValueError) as e:
                raise ValueError(f"--inputs {inputs}: cannot read it as an .npz file: {e}") from None
        inputs = dict(inputs)
        labels = inputs.pop("labels", None)
        names = [i.name for i in qm]
        if len(names) == 1 and names[0] not in inputs and len(inputs) == 1:
            inputs = {names[0]: next(iter(inputs.values()))}
        missing = [n for n in names if n not in inputs]
        if missing:
            raise ValueError(f"{path}: the inputs give no array for the model's input {missing[0]!r} "
                             f"(they have {', '.join(inputs) or 'none'})")
        return {n: np.asarray(inputs[n]) for n in names}, None if labels is None else np.asarray(labels, np.int64)
    rng = np.random.default_rng(seed)
    dims = dict(dims or {})
    feeds = {}
    for gi in qm:
        if gi.shape is None:
            raise ValueError(f"{path}: input {gi.name!r} has no shape in the model; give its values with --inputs")
        shape = []
        for axis, d in enumerate(gi.shape):
            if isinstance(d, int) and d > 0:
                shape.append(d)
            elif isinstance(d, str) and d in dims:
                shape.append(int(dims[d]))
            elif axis == 0 and samples > 0:
                shape.append(samples)
            else:
                what = f"dimension {d!r}" if isinstance(d, str) else "an unnamed dimension"
                raise ValueError(f"{path}: input {gi.name!r} has {what} at axis {axis}; give its size "
                                 + (f"(--dim {d}=N)" if isinstance(d, str) else "with --inputs"))
        if gi.dtype.kind != "f":
            raise ValueError(f"{path}: input {gi.name!r} is {gi.dtype}; random inputs are made for float inputs "
                             "only: give its values with --inputs")
        feeds[gi.name] = rng.standard_normal(shape).astype(gi.dtype)
    return feeds, labels


def _graph_inputs(path: str):
    import onnx
    from .onnx_quant import _graph_input
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:           # protobuf's DecodeError on a file that is not ONNX
        raise ValueError(f"cannot read ONNX model {path}: {e}") from None
    consts = {t.name for t in proto.graph.initializer}
    return [_graph_input(v) for v in proto.graph.input if v.name not in consts]


def simulate_onnx(path, hardware=None, inputs=None, dims: dict | None = None, seed: int = 0,
                  calibration: str = "max", fp32_layers=(), samples: int = 64) -> list[dict]:
    """Records of an ONNX model run on hardware (see the module docstring). inputs: an .npz
    path or a dict of arrays (else random ones of the model's shapes, symbolic dimensions from
    dims, an unnamed batch dimension of `samples`)."""
    path = str(path)
    _check_file(path)
    feeds, labels = model_inputs(path, inputs, dims, seed, samples)
    if not _is_quantized(path):
        from .onnx_import import load_onnx
        from .workloads import Workload
        if len(feeds) != 1:
            raise ValueError(f"{path}: a float model is simulated with one input, it has {len(feeds)}")
        x = np.asarray(next(iter(feeds.values())), np.float32)
        work = Workload(path, load_onnx(path), x, x, labels)
        return simulate(work, "edge-npu-int8" if hardware is None else hardware, seed=seed, calibration=calibration,
                        fp32_layers=fp32_layers)
    if fp32_layers:
        raise ValueError(f"{path}: fp32_layers applies to qsim's own quantization; this model carries its own")
    return _simulate_quantized(path, hardware, feeds, labels, seed)


def _simulate_quantized(path: str, hardware, feeds: dict, labels, seed: int) -> list[dict]:
    own = hardware is None or (isinstance(hardware, str) and hardware in PATHS)
    session = hardware if own and hardware is not None else "ort-default"
    hw = load_hardware(ORT_CPU if own else hardware)
    qm = _prepared(path, session)
    if own:
        got = execute(qm, feeds, intermediates=True)
    else:
        got = execute(qm, feeds, datapath=hardware_datapath(hw), intermediates=True)
    got.update(qm.consts)
    written = load_quantized(path)
    ref = reference(written, feeds)
    run = _run_info(Path(path).name, hw, hw.resolve_datapath(), seed, "model")
    if own:
        run.update(datapath=session)
    mine, theirs = qparams(qm), qparams(written)
    records = []
    for node in qm.nodes:
        if all(t in qm.consts or t == "" for t in node.inputs):
            continue                             # folded when the session starts
        out = node.outputs[0]
        parts = _costs(hw, node, got, qm.consts)
        metrics = _metrics(_real(ref, theirs, out), _real(got, mine, out)) if out in ref else {}
        kind = "gemm" if node.op in CONV_OPS or node.op in MATMUL_OPS else "vector"
        fields = dict(_layer_fields(parts, hw), overflow=None, saturated=None)
        records.append(dict(run, layer=node.name, op=node.op, unit=kind, **fields, **metrics))
    output = written.outputs[0]
    want, have = _real(ref, theirs, output), _real(got, mine, output)
    totals = {k: sum(r[k] for r in records) if k not in ("overflow", "saturated") else None for k in _TOTALS}
    records.append(dict(run, layer=MODEL_ROW, op="model", samples=int(np.shape(have)[0]) if np.ndim(have) else 1,
                        **_classifier(want, have, labels), **totals, **_metrics(want, have)))
    return records


def _real(values: dict, params: dict, name: str) -> np.ndarray:
    """A tensor's real value: codes (or ideal codes) through their scale and zero point."""
    x = values[name]
    if name in params:
        scale, zero, axis = params[name]
        return real(x, values[scale], values[zero] if zero else None, axis).astype(np.float32)
    return np.asarray(x, np.float32)


def _classifier(want, have, labels) -> dict:
    if np.ndim(have) != 2:
        return {}
    found = {"agreement_fp32": float((have.argmax(axis=1) == want.argmax(axis=1)).mean())}
    if labels is not None and len(labels) == len(have):
        found.update(top1=float((have.argmax(axis=1) == labels).mean()),
                     fp32_top1=float((want.argmax(axis=1) == labels).mean()))
    return found


def _costs(hw, node, values: dict, consts) -> list[dict]:
    """The cost parts of one node: its product on the array (GEMM and convolution nodes, the
    shape as qsim's layers lay them out) or its elements on the vector unit."""
    y = np.asarray(values[node.outputs[0]])
    shape = _gemm_shape(node, values, consts)
    if shape is None:
        reads = sum(np.size(values[t]) for t in node.inputs if t and t in values and np.ndim(values[t]) > 0)
        cost = vector_layer_cost(hw, reads, y.size, hw.datapath.vector_format)
        return [dict(_cost_fields(cost), overflow=0, saturated=0)]
    m, k, n, batch, weight = shape
    plan = plan_gemm(hw, m, k, n, weight)
    return [dict(_gemm_cost_fields(hw, m, k, n, plan.cost, batch), M=m, K=k, N=n, overflow=0, saturated=0)]


def _gemm_shape(node, values: dict, consts):
    """(M, K, N, batch, B is a weight) of a product node, or None."""
    if node.op in CONV_OPS:
        w = np.shape(values[node.inputs[CONV_OPS[node.op]]])
        y = np.shape(values[node.outputs[0]])
        groups = int(node.attrs.get("group", 1))
        return int(y[0] * np.prod(y[2:])), int(np.prod(w[1:])), int(w[0]) // groups, groups, True
    if node.op in MATMUL_OPS:
        a, b = np.shape(values[node.inputs[0]]), np.shape(values[node.inputs[MATMUL_OPS[node.op]]])
        trans_a, trans_b = node.attrs.get("transA", 0), node.attrs.get("transB", 0)
        k = a[0] if trans_a else a[-1]
        n = b[0] if trans_b else b[-1]
        weight = node.inputs[MATMUL_OPS[node.op]] in consts
        if len(b) == 2:
            return int(np.prod(a)) // int(k), int(k), int(n), 1, weight
        return int(a[-2]), int(k), int(n), int(np.prod(np.broadcast_shapes(a[:-2], b[:-2]))), False
    return None
