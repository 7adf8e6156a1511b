# The enumerations the datapath kernels share with Python, defined once: each value here, and
# the name Python uses for it in kernel_enums(). The kernels cimport the constants; each kernel
# module exports kernel_enums() as ENUMS, which qsim/datapaths/accumulate.py and floating.py
# read (and check agree between the modules at import, so a stale build cannot drift).
# Rounding modes are _encode.h's QS_* values (the encoders switch on them); their Python names
# are here, and qsim/rounding.py takes ROUNDING_MODES from ENUMS["rounding"].

from _common cimport RNE, RTZ, RNA, RUP, RDN, STOCHASTIC

cdef enum:
    # order of accumulation (integer and float accumulators)
    ORDER_SEQUENTIAL = 0
    ORDER_REVERSED = 1
    ORDER_PAIRWISE = 2
    # what an integer accumulator does past its range
    OVERFLOW_WRAP = 0
    OVERFLOW_SATURATE = 1
    # float accumulator event counters: the last axis of the events array
    EVENT_OVERFLOW = 0          # a result became Inf or NaN
    EVENT_SATURATED = 1         # a result was clamped to the largest finite value
    EVENT_ABSORBED = 2          # a nonzero addend vanished
    N_EVENTS = 3
    # how a fused multi-term unit aligns its addends to the group's kept bits
    ALIGN_TRUNCATE = 0
    ALIGN_RNE = 1


cdef inline dict kernel_enums():
    """Python name -> kernel value of each enumeration (dicts in value order)."""
    return {
        "order": {"sequential": ORDER_SEQUENTIAL, "reversed": ORDER_REVERSED, "pairwise": ORDER_PAIRWISE},
        "overflow": {"wrap": OVERFLOW_WRAP, "saturate": OVERFLOW_SATURATE},
        "event": {"overflow": EVENT_OVERFLOW, "saturated": EVENT_SATURATED, "absorbed": EVENT_ABSORBED},
        "align": {"truncate": ALIGN_TRUNCATE, "rne": ALIGN_RNE},
        "rounding": {
            "rne": RNE,                 # nearest, ties to even (IEEE default, ONNX, numpy rint)
            "rtz": RTZ,                 # toward zero (truncation)
            "rna": RNA,                 # nearest, ties away from zero (C round, TFLite reference)
            "up": RUP,                  # toward +inf
            "down": RDN,                # toward -inf
            "stochastic": STOCHASTIC,   # up with probability equal to the discarded fraction
        },
    }
