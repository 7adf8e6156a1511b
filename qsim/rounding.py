"""Rounding modes by name; the codes match cython_src/_common.pxd."""

ROUNDING_MODES = {
    "rne": 0,          # nearest, ties to even (IEEE default, ONNX, numpy rint)
    "rtz": 1,          # toward zero (truncation)
    "rna": 2,          # nearest, ties away from zero (C round, std::round, TFLite reference)
    "up": 3,           # toward +inf
    "down": 4,         # toward -inf
    "stochastic": 5,   # up with probability equal to the discarded fraction; needs a seed
}
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
