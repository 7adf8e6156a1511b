"""How many threads the kernels use: explicit argument, else QSIM_NUM_THREADS, else all cores
(one for small work).

Results never depend on the number: kernels split work by output element and stochastic
rounding draws its bits from the element's index."""

import os


# Below this much work (elements, or multiply-accumulates) one thread is faster: waking a team
# costs more, and its spinning threads slow the BLAS threads of the surrounding numpy code.
SMALL_WORK = 1 << 20


def resolve_threads(num_threads: int | None, work: int | None = None) -> int:
    """The explicit argument, else QSIM_NUM_THREADS, else one thread for small work and all
    cores otherwise."""
    if num_threads is None:
        env = os.environ.get("QSIM_NUM_THREADS")
        if env:
            try:
                num_threads = int(env)
            except ValueError:
                raise ValueError(f"QSIM_NUM_THREADS must be a positive integer, got {env!r}") from None
        elif work is not None and work < SMALL_WORK:
            return 1
        else:
            num_threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
        raise ValueError(f"num_threads must be a positive integer, got {num_threads!r}")
    return num_threads
