"""Running a sweep's points, locally in parallel or on a Dask cluster, into a Parquet dataset
(qsim.io's layout: the directory holds only records), and reading it back:

    OUT/part-<point_id>.parquet    one file per finished point

Each file's metadata holds the point's hardware description and its sweep (qsim.sweep: the
sweep's name, spec and sweep_id, and the point's index), so a directory holds one sweep: a
re-run of the same spec (the same points) resumes, one with another spec is refused.

Workers only compute; this process writes each point's file (temporary name, then rename) as
soon as its result arrives, so the cluster needs no shared disk, a killed sweep leaves only
complete files, and a re-run skips every point whose file exists. A point's file depends on
the point alone, so results are the same whatever the number or kind of workers.
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from ..io import check_dataset_dir, file_metadata, read_records, record_files, write_records
from ..sim import simulate
from .spec import Point, Sweep, SweepError, load_sweep


@dataclass(frozen=True)
class SweepSummary:
    total: int
    skipped: int                    # already finished by an earlier run
    ran: int                        # finished by this run
    failed: tuple[tuple[Point, str], ...]
    seconds: float
    out: Path


class PointsFailed(RuntimeError):
    """Some points raised; every other point was written. A re-run retries only the failed."""

    def __init__(self, summary: SweepSummary):
        self.summary = summary
        lines = [f"{p.config} on {p.model}: {err}" for p, err in summary.failed]
        super().__init__(f"{len(lines)} of {summary.total} points failed:\n  " + "\n  ".join(lines))


def run_sweep(sweep, out_dir, workers: int | None = None, scheduler: str | None = None,
              progress: bool = True) -> SweepSummary:
    """Run every unfinished point of a sweep (a Sweep or a .toml path) into out_dir.

    workers: local processes (default: all cores); scheduler: a Dask scheduler address instead.
    Everything is checked before any work: the spec, the runner arguments, and out_dir (new,
    or holding points of this same sweep: SweepError otherwise). Raises PointsFailed, after
    writing everything else, if any point raised. Worker processes start by importing the main
    module, so a script that calls this with workers > 1 needs the usual
    `if __name__ == "__main__":` guard."""
    if not isinstance(sweep, Sweep):
        sweep = load_sweep(sweep)
    out = Path(out_dir)
    check_sweep_dir(sweep, out)
    with open_runner(workers, scheduler) as runner:
        summary = run_points(sweep.points, out, runner, progress, desc=sweep.name, sweep=sweep)
    if summary.failed:
        raise PointsFailed(summary)
    return summary


def check_sweep_dir(sweep: Sweep, out_dir) -> None:
    """ValueError unless out_dir can be a dataset (qsim.io.check_dataset_dir); SweepError if it
    holds records that are not points of this sweep (another spec, or another command's)."""
    out = check_dataset_dir(out_dir)
    for f in record_files(out):
        theirs = file_metadata(f).get("sweep") or {}
        if theirs.get("sweep_id") != sweep.sweep_id:
            what = (f"points of another sweep, {theirs.get('name')!r} ({theirs.get('points')} points)" if theirs
                    else "records that no sweep wrote")
            raise SweepError(f"{out} already holds {what}, e.g. {f.name}; a sweep directory holds one sweep "
                             f"({sweep.name!r} has {len(sweep.points)} points): run the same spec to resume it, "
                             f"or choose another output directory")


def part_path(out_dir, point: Point) -> Path:
    return Path(out_dir) / f"part-{point.point_id}.parquet"


def run_points(points, out_dir, runner, progress: bool = True, desc: str = "sweep",
               sweep: Sweep | None = None) -> SweepSummary:
    """Compute and write the points whose files are missing (tagged as points of sweep, if
    given); a progress bar on stderr."""
    from tqdm import tqdm
    out, start = Path(out_dir), time.perf_counter()
    index = {p.point_id: i for i, p in enumerate(points)}
    _remove_temporaries(out)
    pending = [p for p in points if not part_path(out, p).exists()]
    failed = []
    with tqdm(total=len(points), initial=len(points) - len(pending), desc=desc, unit="point",
              file=sys.stderr, disable=not progress, dynamic_ncols=True) as bar:
        for point, outcome in runner.outcomes(pending):
            if isinstance(outcome, Exception):
                failed.append((point, f"{type(outcome).__name__}: {outcome}"))
                tqdm.write(f"failed: {point.config} on {point.model}: {outcome!r}", file=sys.stderr)
            else:
                tag = None if sweep is None else {"name": sweep.name, "sweep_id": sweep.sweep_id,
                                                  "points": len(points), "index": index[point.point_id],
                                                  "spec": sweep.document}
                write_point(outcome, point, out, tag)
                bar.set_postfix_str(point.config, refresh=False)
            bar.update()
    return SweepSummary(len(points), len(points) - len(pending), len(pending) - len(failed), tuple(failed),
                        time.perf_counter() - start, out)


def compute_point(point: Point) -> list[dict]:
    """The point's simulation records, with the sweep's columns added."""
    extra = {"fp32_layers": point.fp32_layers} if point.fp32_layers else {}
    records = simulate(point.model, point.hardware, seed=point.seed, calibration=point.calibration, **extra)
    columns = {"config": point.config, "point_id": point.point_id,
               "overrides": json.dumps(dict(point.overrides), sort_keys=True, default=str),
               "fp32_layers": ",".join(point.fp32_layers)}
    return [dict(r, **columns) for r in records]


def _compute_in_worker(point: Point) -> list[dict]:
    # points run side by side, so threads inside one point would only compete for the same cores
    os.environ.setdefault("QSIM_NUM_THREADS", "1")
    return compute_point(point)


def write_point(records: list[dict], point: Point, out_dir, sweep_tag: dict | None = None) -> Path:
    """The point's records as its part file, atomically, with its hardware description and
    sweep_tag (qsim.sweep) in the file's metadata."""
    return write_records(records, out_dir, hardware=point.hardware, name=part_path(out_dir, point).name,
                         metadata=None if sweep_tag is None else {"sweep": sweep_tag})


def read_sweep(out_dir):
    """Every finished point of a sweep directory as one DataFrame, in the sweep's point order."""
    def position(path):
        return file_metadata(path).get("sweep", {}).get("index", math.inf), path.name
    return read_records(out_dir, order=position)


def _remove_temporaries(out: Path) -> None:
    """Half-written part files of a killed run (never visible as results, but Polars refuses a
    directory that holds one)."""
    for tmp in out.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def open_runner(workers: int | None = None, scheduler: str | None = None):
    """Where points run: local processes (default: one per core) or a Dask cluster."""
    if scheduler is not None:
        if workers is not None:
            raise ValueError("give --workers or --scheduler, not both (a cluster has its own workers)")
        return DaskRunner(scheduler)
    if workers is None:
        workers = os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    return LocalRunner(workers)


class LocalRunner(AbstractContextManager):
    """One process per worker (none for a single worker: points run here, in order)."""

    def __init__(self, workers: int):
        self.workers, self.pool = workers, None

    def __exit__(self, kind, error, trace):
        if self.pool is not None:
            self.pool.shutdown(wait=kind is None, cancel_futures=True)

    def outcomes(self, points):
        """(point, records or the exception it raised), in order of completion."""
        if self.workers == 1 or len(points) <= 1:
            for point in points:
                yield point, _attempt(compute_point, point)
            return
        futures = {self._pool().submit(_compute_in_worker, p): p for p in points}
        for future in as_completed(futures):
            yield futures.pop(future), _attempt(future.result)

    def _pool(self):
        if self.pool is None:
            import multiprocessing
            # forkserver, not fork: OpenMP kernels already run in this process do not survive a fork
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload([__name__])
            self.pool = ProcessPoolExecutor(self.workers, mp_context=context, initializer=_end_with,
                                            initargs=(os.getpid(),))
        return self.pool


def _end_with(sweep_pid: int) -> None:
    """Pool worker initializer: end when the sweep's process is gone (even killed by SIGKILL),
    instead of waiting for work forever."""
    def watch():
        while True:
            time.sleep(1)
            try:
                os.kill(sweep_pid, 0)
            except ProcessLookupError:
                os._exit(1)
    threading.Thread(target=watch, daemon=True).start()


class DaskRunner(AbstractContextManager):
    """Points as tasks on a Dask distributed cluster (connected on first use)."""

    def __init__(self, address: str):
        self.address, self.client = address, None

    def __exit__(self, kind, error, trace):
        if self.client is not None:
            self.client.close()              # the cluster drops the tasks nobody waits for

    def outcomes(self, points):
        if not points:
            return
        try:
            from distributed import Client, as_completed as dask_completed
        except ImportError:
            raise ValueError("--scheduler needs Dask: pip install 'dask[distributed]'") from None
        if self.client is None:
            try:
                self.client = Client(self.address)
            except OSError as e:
                raise ValueError(f"cannot reach the Dask scheduler at {self.address}: {e}") from None
        futures = {self.client.submit(_compute_in_worker, p, pure=False): p for p in points}
        for future in dask_completed(futures):
            yield futures.pop(future), _attempt(future.result)


def _attempt(fn, *args):
    """fn's result, or the exception it raised: one failed point must not stop the others."""
    try:
        return fn(*args)
    except Exception as e:
        return e
