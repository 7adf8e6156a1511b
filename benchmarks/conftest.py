"""Print, after a benchmark run, each qsim benchmark's speed relative to the peer in its group.

A group holds qsim and its peer measured in the same run; the ratio is peer time / qsim time
(above 1 means qsim is faster)."""

import pytest


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    session = getattr(config, "_benchmarksession", None)
    if session is None or not session.benchmarks:
        return
    groups = {}
    for bench in session.benchmarks:
        if bench.has_error or not bench.stats:
            continue
        groups.setdefault(bench.group, []).append(bench)
    lines = []
    for group, benches in sorted(groups.items(), key=lambda kv: str(kv[0])):
        peers = [b for b in benches if b.extra_info.get("role") == "peer"]
        ours = [b for b in benches if b.extra_info.get("role") == "qsim"]
        for peer in peers:
            for b in ours:
                ratio = peer.stats.min / b.stats.min
                target = None if peer.extra_info.get("context") else b.extra_info.get("target")
                verdict = "" if target is None else ("  meets target" if ratio >= target else f"  BELOW target {target}x")
                lines.append(f"{group:<34} {b.name:<46} vs {peer.extra_info.get('peer', peer.name)}: "
                             f"{ratio:6.2f}x{verdict}")
    if lines:
        terminalreporter.section("qsim / peer speed ratios (min times, same run)")
        for line in lines:
            terminalreporter.write_line(line)
    rates = []
    for benches in groups.values():
        for b in benches:
            macs = b.extra_info.get("macs")
            if macs:
                rate = macs / b.stats.min / 1e9
                target = b.extra_info.get("gmacs_target")
                verdict = "" if target is None else ("  meets target" if rate >= target else f"  BELOW target {target}")
                rates.append(f"{b.group:<34} {b.name:<46} {rate:7.2f} GMAC/s{verdict}")
    if rates:
        terminalreporter.section("multiply-accumulate throughput (min times)")
        for line in rates:
            terminalreporter.write_line(line)
    walls = [f"{b.group:<34} {b.name:<46} {b.stats.min:7.2f} s" +
             ("  meets target" if b.stats.min < b.extra_info["seconds_target"] else
              f"  ABOVE target {b.extra_info['seconds_target']} s")
             for benches in groups.values() for b in benches if b.extra_info.get("seconds_target")]
    if walls:
        terminalreporter.section("wall time against targets (min times)")
        for line in walls:
            terminalreporter.write_line(line)


@pytest.fixture
def mark_role(benchmark):
    def mark(role, peer=None, target=None, elements=None, macs=None, gmacs_target=None, context=False,
             seconds_target=None):
        """context: a peer shown for scale only; targets are judged against the other peers.
        seconds_target: a wall-time target of its own (no peer)."""
        info = dict(role=role, peer=peer, target=target, elements=elements, macs=macs,
                    gmacs_target=gmacs_target, context=context or None, seconds_target=seconds_target)
        benchmark.extra_info.update({k: v for k, v in info.items() if v is not None})
    return mark
