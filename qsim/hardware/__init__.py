"""Hardware descriptions and the cost model: systolic-array cycles, traffic, energy."""

from .cost import DATAFLOWS, ArrayCost, roofline_seconds, systolic_gemm

__all__ = ["DATAFLOWS", "ArrayCost", "systolic_gemm", "roofline_seconds"]
