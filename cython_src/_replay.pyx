# SCALE-Sim's read window (qsim/hardware/scalesim_replay.py): the sum over greedy windows of
# `window` distinct addresses of a trace, the last window partial. One pass, sequential by
# nature (each window starts where the last one filled); no validation here: the caller gives
# addresses in [0, len(last)) and `last` filled with -1.

from _common cimport int64_t


def windowed_distinct(const int64_t[::1] trace, int64_t[::1] last, int64_t window):
    """last[a]: the window that last saw address a; a new address joins the current window,
    which closes (and is counted whole) when it holds `window` addresses."""
    cdef Py_ssize_t i
    cdef int64_t a, total = 0, count = 0, current = 0
    with nogil:
        for i in range(trace.shape[0]):
            a = trace[i]
            if last[a] != current:
                last[a] = current
                count += 1
                if count == window:
                    total += window
                    current += 1
                    count = 0
    return total + count
