"""The scale benchmark's figures as a readable table (benchmarks/_scale.py's result dict)."""

from __future__ import annotations

from typing import Any


def format_table(r: dict[str, Any]) -> str:
    """The figures as a readable table."""
    mix = ", ".join(f"{t} {s['tools']}" for t, s in r["per_transport"].items())
    lines = [
        f"{r['tools']} emulated tools ({mix}); broker {r['broker']}; time scale {r['time_scale']:g}; "
        f"poll interval {r['poll_interval_s'] * 1000:.1f} ms",
        f"connected {r['connected']}/{r['tools']} in {r['connect_s']} s; window {r['seconds']:g} s "
        f"(+ running jobs finish: {r['elapsed_s']} s)",
        "",
        f"{'transport':<12}{'tools':>6}{'jobs':>7}{'polls/s':>9}{'rtt p50':>9}{'rtt p99':>9}"
        f"{'rtt max':>9}{'missed':>8}{'%':>6}{'gap/err':>10}{'worst gap':>11}  errors",
    ]
    for t, s in r["per_transport"].items():
        lines.append(
            f"{t:<12}{s['tools']:>6}{s['jobs']:>7}{s['polls_per_s']:>9.1f}{s['rtt_p50_ms']:>7.2f}ms"
            f"{s['rtt_p99_ms']:>7.2f}ms{s['rtt_max_ms']:>7.1f}ms{s['missed']:>8}{s['missed_pct']:>6.1f}"
            f"{s['missed_gap']:>5}/{s['missed_error']:<4}{s['worst_gap_ms']:>9.1f}ms  {s['errors'] or '-'}")
    lines.append(
        f"{'total':<12}{r['tools']:>6}{r['jobs']:>7}{r['polls_per_s']:>9.1f}  (nominal "
        f"{r['polls_per_s_nominal']:g}/s: one per tool per interval); missed polls {r['missed_polls']} "
        f"({r['missed_pct']}% of polls); "
        f"errors {r['errors'] or 'none'}")
    lag, c, e = r["event_loop_lag"], r["controller"], r["emulator"]
    lines += [
        "",
        f"controller event loop lag (10 ms ticker, {lag['ticks']} ticks): max {lag['max_ms']} ms, "
        f"p99 {lag['p99_ms']} ms, p50 {lag['p50_ms']} ms",
        f"controller: RSS {c['rss_before_mb']} MB before connecting, {c['rss_connected_mb']} MB connected, "
        f"{c['rss_end_mb']} MB at the end ({c['rss_per_tool_kb']} KB/tool); CPU {c['cpu_s']} s in the "
        f"window ({c['cpu_core_pct']}% of one core, {c['cpu_ms_per_status_read']} ms per status read)",
        f"emulators (pid {e['pid']}): RSS {e['rss_start_mb']} MB at start, {e['rss_end_mb']} MB at the end; "
        f"CPU {e['cpu_s']} s in the window ({e['cpu_core_pct']}% of one core; main thread "
        f"{e['main_thread_core_pct']}%; {e['cpu_ms_per_status_read']} ms per status read), "
        f"{e['cpu_total_s']} s in all; start-up {e.get('startup_s')} s; "
        f"exit code {e.get('exit_code')}",
    ]
    if (el := e.get("event_loop_lag")) is not None:
        lines.append(f"emulators' event loop lag (10 ms ticker, {el['ticks']} ticks): max {el['max_ms']} ms, "
                     f"p99 {el['p99_ms']} ms, p50 {el['p50_ms']} ms")
    mach = r["machine"]
    lines.append(f"machine: {mach['cores']} cores, busy {mach['busy_core_pct']}% of one core in the window; "
                 f"not this benchmark's processes: {mach['others_core_pct']}% (irq+softirq "
                 f"{mach['irq_core_pct']}%, steal {mach['steal_core_pct']}%)")
    if mach["busiest_others"]:
        lines.append("  busiest other processes: " + "; ".join(mach["busiest_others"]))
    if (m := r.get("broker_process")) is not None:
        lines.append(f"{r.get('broker', 'broker')} (pid {m['pid']}): RSS {m['rss_end_mb']} MB; "
                     f"CPU {m['cpu_s']} s in the "
                     f"window ({m['cpu_core_pct']}% of one core)")
    nf = r["nofile"]
    note = nf["controller"]["note"]
    lines.append(f"RLIMIT_NOFILE: controller {nf['controller']['soft']}/{nf['controller']['hard']} "
                 f"(estimate needed ~{nf['controller']['wanted']}), emulators {nf['emulator']}; open fds "
                 f"at the end: controller {c['fds_end']}, emulators {e['fds_end']}"
                 + (f"; {note}" if note else ""))
    return "\n".join(lines)


def print_report(result: dict[str, Any]) -> None:
    """What benchmarks/line.py prints for its scale part."""
    print(format_table(result))
