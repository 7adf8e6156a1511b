"""Datapaths: modelled accumulators, integer GEMM and convolution, requantization as real
kernels do it, and named presets of whole integer kernel paths."""

from .accumulate import Accumulator, a2q_bits, int_matmul
from .conv import int_conv
from .floating import (FLOAT_PRESETS, FloatAccumulator, FloatDatapath, block_matmul, convert_output, float_conv,
                       float_matmul, fp32_matmul, mx_matmul)
from .matrix_units import MATRIX_UNITS, MatrixUnit, UnitArithmetic, matrix_unit
from .integer import PRESETS, IntDatapath, get_datapath, qlinear_conv, qlinear_dynamic, qlinear_matmul, quantize_bias
from .requant import quantize_multiplier, requantize, requantize_shift

__all__ = ["Accumulator", "a2q_bits", "int_matmul", "int_conv", "IntDatapath", "PRESETS", "get_datapath",
           "qlinear_matmul", "qlinear_conv", "qlinear_dynamic", "quantize_bias", "quantize_multiplier", "requantize",
           "requantize_shift", "FloatAccumulator", "FloatDatapath", "FLOAT_PRESETS", "float_matmul", "mx_matmul",
           "block_matmul",
           "convert_output", "float_conv", "fp32_matmul", "MATRIX_UNITS", "MatrixUnit", "UnitArithmetic", "matrix_unit"]
