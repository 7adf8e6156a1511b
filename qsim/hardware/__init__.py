"""Hardware descriptions (TOML presets, validated on load) and the cost model: systolic-array
cycles, traffic, roofline."""

from .cost import DATAFLOWS, ArrayCost, roofline_seconds, systolic_gemm
from .spec import (Hardware, HardwareError, hardware_document, hardware_presets, iso_hardware, load_hardware,
                   override_hardware, parse_hardware)

__all__ = ["DATAFLOWS", "ArrayCost", "systolic_gemm", "roofline_seconds", "Hardware", "HardwareError",
           "hardware_document", "hardware_presets", "iso_hardware", "load_hardware", "override_hardware", "parse_hardware"]
