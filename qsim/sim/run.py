"""run_model: a quantized model's outputs as its runtime computes them, bit for bit.

An ONNX model (a path or an onnx.ModelProto) runs on ONNX Runtime's own CPU kernel path
(qsim/sim/onnx_quant.py); a torch.nn.Module runs in qsim.sim.torch_quant. Prepared ONNX files
are cached by path and modification time, so repeated calls only execute.
"""

from __future__ import annotations

import os
import sys
from collections import OrderedDict

from .onnx_quant import PATHS, execute, prepare

_CACHE: OrderedDict = OrderedDict()
_CACHE_SIZE = 4


def _is_torch_module(model) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(model, torch.nn.Module)


def _prepared(model, path: str):
    if not isinstance(model, (str, os.PathLike)):
        return prepare(model, path)
    name = os.fspath(model)
    try:
        st = os.stat(name)
    except OSError:
        return prepare(model, path)                # load_quantized names the missing file
    key = (os.path.realpath(name), st.st_mtime_ns, st.st_size, path)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    qm = prepare(name, path)
    _CACHE[key] = qm
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return qm


def run_model(model, inputs, hardware=None, path: str | None = None, intermediates: bool = False) -> dict:
    """Run a quantized model on numpy inputs; {output name: array}.

    model: a path to an .onnx file, an onnx.ModelProto, or a torch.nn.Module (run by
    qsim.sim.torch_quant.run_torch). inputs: one array (a model with one input) or a dict of
    name -> array, with the model's dtypes and fixed dimensions.
    hardware: None runs the runtime's own kernel path (ONNX Runtime's CPU provider on x86-64,
    MLAS; fbgemm or qnnpack for torch). A hardware preset, .toml path or Hardware runs the same
    quantized model's integer products on that machine's kernel path: its accumulator (width,
    overflow, order) and requantization (e.g. edge-npu-int8-acc16's 16-bit saturating sums).
    The model keeps its own formats, scales and zero points; the operators around the
    products run as the runtime does.
    path (ONNX): "ort-default" (default; the graph ORT's default session optimizes the model
    into: QDQ groups fused into integer kernels, transformer fusions) or "ort-unfused" (a
    session with GraphOptimizationLevel.ORT_DISABLE_ALL).
    intermediates: also every intermediate tensor of the graph that path runs: integer codes
    for quantized tensors (in their ONNX types), float32 values for the others.
    """
    if _is_torch_module(model):
        if path is not None:
            raise ValueError("path selects an ONNX Runtime session and does not apply to a torch.nn.Module")
        from .torch_quant import run_torch
        datapath = None if hardware is None else hardware_datapath(hardware)
        return run_torch(model, inputs, intermediates=intermediates, datapath=datapath)
    path = "ort-default" if path is None else path
    if path not in PATHS:
        raise ValueError(f"unknown path {path!r}; choose one of {', '.join(PATHS)}")
    qm = _prepared(model, path)
    if hardware is None:
        return execute(qm, inputs, intermediates=intermediates)
    return execute(qm, inputs, datapath=hardware_datapath(hardware), intermediates=intermediates)


def hardware_datapath(hardware):
    """The integer kernel path (qsim.plan.resolve_datapath) on which a described machine runs a
    quantized model's products."""
    from ..hardware import load_hardware
    hw = load_hardware(hardware)
    if hw.datapath.kind != "integer":
        raise ValueError(f"hardware {hw.name}: its kernel {hw.datapath.kernel} computes in floating point; a quantized "
                         "model's integer products run on an integer kernel path (for example edge-npu-int8, or a "
                         "description with datapath.kernel = \"onnxruntime-x86\")")
    return hw.resolve_datapath()
