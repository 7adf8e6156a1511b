"""qsim: bit-accurate emulation of low-precision number formats and ML datapaths."""

from importlib.metadata import PackageNotFoundError, version as _version

from .codec import decode, encode, quantize
from .formats import FloatFormat, IntFormat, builtin_formats, format, register_format
from .quant.intquant import dequantize_int, quantize_int
from .quant.mx import MXArray, mx_decode, mx_quantize
from .rounding import ROUNDING_MODES

try:
    __version__ = _version("qsim")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "FloatFormat", "IntFormat", "format", "register_format", "builtin_formats",
    "encode", "decode", "quantize", "quantize_int", "dequantize_int",
    "mx_quantize", "mx_decode", "MXArray", "ROUNDING_MODES", "__version__",
]
