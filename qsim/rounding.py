"""Rounding modes by name. Names and codes are defined once, in cython_src/_enums.pxd (the
codes are the encoders' QS_* values in cython_src/_encode.h); ROUNDING_MODES is read from the
compiled kernels, so Python and the encoders cannot disagree."""

from ._kernels import _intgemm

ROUNDING_MODES = dict(_intgemm.ENUMS["rounding"])      # name -> encoder code, in code order
_ALIASES = {
    "nearest_even": "rne", "half_even": "rne", "toward_zero": "rtz", "truncate": "rtz",
    "half_away": "rna", "nearest_away": "rna", "half_away_from_zero": "rna",
    "toward_positive": "up", "ceil": "up", "toward_negative": "down", "floor": "down",
    "sr": "stochastic",
}


def rounding_code(name: str) -> int:
    key = _ALIASES.get(name, name) if isinstance(name, str) else name
    if key not in ROUNDING_MODES:
        raise ValueError(f"unknown rounding {name!r}; choose one of {', '.join(ROUNDING_MODES)}")
    return ROUNDING_MODES[key]


def check_seed(rounding: str, seed) -> int:
    """The seed as an unsigned 64-bit integer; stochastic rounding must be given one."""
    if seed is None:
        if rounding_code(rounding) == ROUNDING_MODES["stochastic"]:
            raise ValueError("rounding='stochastic' needs seed=<int> so that results are reproducible")
        return 0
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    return seed % (1 << 64)
