"""Golden vectors and validation of real kernels.

    from qsim.golden import generate, validate, validate_kernel
    generate("encode", "golden/e4m3", format="e4m3", saturate=True)     # .npz, .hex, manifest.json
    result = validate("golden/e4m3", "kernel_out.hex")                  # or .npy/.npz/raw + dtype
    result.ok, result.mismatches, result.histogram, result.first(5), result.markdown()
    validate_kernel("golden/e4m3", lambda inputs: my_cast(inputs["x"]))

Operations: encode (quantize), decode, gemm, conv, requant, mx. Built-in adapters for ONNX
Runtime, PyTorch and ml_dtypes are in ADAPTERS (qsim.golden.adapters), each with its known
departures from the specification as classifiers (Departure): adapter.validate(dir) waives only
mismatches that a known departure explains and reports which departures were seen
(result.departure_summary(), result.waived_rows()); waivers=False fails them all. The command
line is `qsim golden` and `qsim validate` (qsim.golden.cli.register).
"""

from .adapters import ADAPTERS, Adapter, get_adapter
from .generate import OPS, generate, make_golden, resolve_datapath
from .model import model_golden
from .store import Case, Golden, GoldenError, load_golden, read_hex, to_codes, write_golden
from .validate import Departure, ValidationResult, compare, load_outputs, select_outputs, validate, validate_kernel

__all__ = ["model_golden", "ADAPTERS", "Adapter", "Departure", "get_adapter", "OPS", "generate", "make_golden", "resolve_datapath", "Case",
           "Golden", "GoldenError", "load_golden", "read_hex", "to_codes", "write_golden", "ValidationResult",
           "compare", "load_outputs", "select_outputs", "validate", "validate_kernel"]
