"""The run report as one self-contained HTML page: PNGs embedded as base64, CSS inline, no scripts, no
network - it opens the same on an air-gapped fab PC, attached to an e-mail or archived with the run.
"""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path

from sequencer.reports.accounting import HOUR, Seconds, ToolAccount
from sequencer.reports.data import RunData, StackView

CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#222;max-width:1700px}
h1{font-size:20px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;margin:6px 0 12px;font-size:13px}
th,td{border:1px solid #d5d5d5;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f2f2f2} td.n{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#1e7b34;font-weight:600} .bad{color:#c00000;font-weight:600} .muted{color:#777}
.state{display:inline-block;padding:1px 8px;border-radius:3px;color:#fff;font-weight:600}
.bar{display:flex;width:160px;height:11px;border:1px solid #bbb}
.bar span{display:block;height:100%} tr.neck td{background:#fff4d6} tr.gone td{color:#999}
img{max-width:100%;border:1px solid #e3e3e3}
"""
STATE_BG = {"COMPLETE": "#1e7b34", "ABORTED": "#c00000", "HELD": "#d08000", "STOPPED": "#d08000"}
E10_COLOURS = (("productive", "#4caf50"), ("standby", "#d0d0d0"), ("down", "#d9534f"))


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def _h(s: Seconds) -> str:
    return f"{s.tool / HOUR:.1f}"


def _table(head: list[str], rows: list[list[str]], cls: list[str] | None = None) -> str:
    """Cells are trusted HTML (callers escape text); `cls` gives each row a class."""
    out = ["<table>" + ("<tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>" if head else "")]
    for i, row in enumerate(rows):
        attr = f' class="{cls[i]}"' if cls and cls[i] else ""
        out.append(f"<tr{attr}>" + "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in row)
                   + "</tr>")
    return "".join(out) + "</table>"


def _num(text: str) -> str:
    return f'<td class="n">{text}</td>'


def _bar(t: ToolAccount) -> str:
    total = t.productive.tool + t.standby.tool + t.down.tool or 1.0
    parts = "".join(f'<span style="width:{100 * getattr(t, name).tool / total:.2f}%;background:{c}" '
                    f'title="{name}"></span>' for name, c in E10_COLOURS)
    return f'<div class="bar">{parts}</div>'


def _summary(data: RunData) -> str:
    acc = data.accounting
    bg = STATE_BG.get(data.state, "#555")
    held = f"<p class='bad'>held: {escape(data.held_reason)}</p>" if data.held_reason else ""
    done = len(acc.stacks_completed)
    rows = [["flow", escape(data.flow)], ["line", escape(data.line)],
            ["stacks", f"{len(data.stacks)} x {data.size}; {done} completed"],
            ["window", f"{_h(acc.window)} tool h ({acc.window.wall:.2f} wall s at time_scale "
                       f"{acc.time_scale:g}), from {escape(acc.window_start)}"],
            ["makespan", f"{_h(acc.makespan)} tool h (first job start to last job end)"],
            ["steps per stack", str(len(data.steps))]]
    stacks = []
    for v in data.stacks:
        wafers = ", ".join(f"W{w.index} {w.state}" for w in v.traveler.wafers) if v.traveler else "-"
        claims = ("<span class='ok'>ok</span>" if v.claims_ok else "<span class='bad'>FAILED</span>"
                  if v.claims else "<span class='muted'>not checked</span>")
        stacks.append([escape(v.short), escape(v.stack_id), "yes" if v.completed else "no", escape(wafers),
                       claims])
    return (f"<h1>Run {escape(data.run_id)} <span class='state' style='background:{bg}'>"
            f"{escape(data.state)}</span></h1>{held}" + _table([], rows)
            + _table(["stack", "id", "completed", "wafers (E90 state)", "claims"], stacks))


def _utilization(data: RunData) -> str:
    acc = data.accounting
    head = ["tool", "kind", "jobs", "failed", "productive h", "standby h", "down h", "busy h", "idle h",
            "blocked h", "utilization", "E10 split"]
    rows = [[escape(t.tool), escape(t.kind), _num(str(t.jobs)), _num(str(t.failed_jobs)),
             *(_num(_h(s)) for s in (t.productive, t.standby, t.down, t.busy, t.idle, t.blocked)),
             _num(f"{t.utilization:.1%}"), _bar(t)] for t in acc.tools]
    legend = " ".join(f"<span style='color:{c}'>&#9632;</span> {n}" for n, c in E10_COLOURS)
    return ("<h2>Utilization per tool (E10 and E116)</h2><p class='muted'>Tool hours over the run window. "
            "E10: productive + standby + down = window. E116: busy (= productive) + idle + blocked = window; "
            "blocked = the tool had work it could not run (down, a refused permissive, or the run held while "
            f"a step waited for it). {legend}</p>" + _table(head, rows))


def _bound(data: RunData) -> str:
    acc = data.accounting
    rows, cls = [], []
    for k in acc.kinds:
        bound = f"{k.bound_per_hour:.4f}" if k.bound_per_hour is not None else "-"
        rows.append([escape(k.kind), escape(", ".join(k.pool)), _num(str(len(k.pool))),
                     _num(_h(k.occupancy_per_stack)), _num(bound), _num(f"{k.utilization:.1%}")])
        cls.append("neck" if k.kind == acc.bottleneck else "")
    if acc.bound_per_hour is None or acc.ratio is None:
        verdict = ("<p class='muted'>No stack completed: no bottleneck bound (it needs the occupancy of a "
                   "finished stack).</p>")
    else:
        verdict = (f"<p>Throughput <b>{acc.throughput_per_hour:.4f}</b> stacks per tool-hour; bottleneck "
                   f"bound <b>{acc.bound_per_hour:.4f}</b> ({escape(str(acc.bottleneck))}: pool size / "
                   f"occupancy per stack); ratio <b>{acc.ratio:.1%}</b>. The ratio equals the bottleneck "
                   "pool's utilization over the makespan when every job on it belongs to a completed "
                   "stack.</p>")
    return ("<h2>Throughput and bottleneck bound</h2>" + verdict + _table(
        ["kind", "pool", "m", "occupancy per stack (tool h)", "bound (stacks / tool h)",
         "pool utilization over makespan"], rows, cls))


def _history(data: RunData) -> str:
    if not data.history:
        return "<h2>Interlock and alarm history</h2><p class='muted'>No interlock, alarm, hold or bypass.</p>"
    rows = [[escape(r.ts), _num(f"{r.hours:.2f}"), escape(r.stack), escape(r.step), escape(r.tool),
             escape(r.interlock), escape(r.reason), escape(r.action), escape(r.who)] for r in data.history]
    return "<h2>Interlock and alarm history</h2>" + _table(
        ["time (UTC)", "tool h", "stack", "step", "tool", "interlock", "reason", "action", "who"], rows)


def _claims(view: StackView, state: str) -> str:
    if not view.claims:
        why = "the run ended " + state if not view.completed else "no claims check was filed"
        why = view.scrapped or why
        return f"<p class='muted'>No claims check for {escape(view.short)}: {escape(why)}.</p>"
    ok, bad = "<span class='ok'>ok</span>", "<span class='bad'>FAILED</span>"
    verdict = "<span class='ok'>all claims hold</span>" if view.claims_ok else bad
    rows = [[str(c.claim), escape(c.title), ok if c.ok else bad, escape(c.detail)] for c in view.claims]
    return f"<p>{verdict}</p>" + _table(["claim", "title", "check", "detail"], rows)


def _traveler_table(view: StackView) -> str:
    stack = view.traveler
    if stack is None:
        return "<p class='muted'>No traveler filed for this stack.</p>"
    rows, cls = [], []
    for w in stack.wafers:
        rows.append([f"W{w.index}", "substrate", escape(w.material), "substrate", _num(f"{w.thickness_um:g}"),
                     "", escape(f"{w.diameter_mm} mm, {w.state}"), "", ""])
        cls.append("")
        for face in ("back", "front"):
            for la in w.layers(face):
                gone = f"removed by {la.removed_by}" if la.removed_by else ""
                rows.append([f"W{w.index}", face, escape(la.material), escape(la.role),
                             _num(f"{la.thickness_um:g}"), "measured" if la.measured else "nominal",
                             escape(la.step), escape(la.tool), escape(gone)])
                cls.append("gone" if la.removed_by else "")
        for h in w.holes:
            done = f"lined {h.lined_by or '-'}, opened {h.opened_by or '-'}, filled {h.filled_by or '-'}"
            rows.append([f"W{w.index}", "holes", "", "through-holes", _num(f"{h.depth_um:g}"),
                         "measured" if h.measured else "nominal", escape(h.step), escape(h.tool),
                         escape(done)])
            cls.append("")
    for b in stack.bonds:
        rows.append([f"W{b.lower}-W{b.upper}", "bond", escape(str(b.through)), escape(str(b.through_role)),
                     _num(f"{b.through_um or 0:g}"), "", escape(b.step), escape(b.tool),
                     escape(f"W{b.lower} {b.lower_face} to W{b.upper} {b.upper_face}")])
        cls.append("")
    if stack.diced:
        rows.append(["all", "dicing", "", "", "", "", escape(str(stack.diced_by)), "", "diced"])
        cls.append("")
    return _table(["wafer", "face", "material", "role", "um", "", "step", "tool", "note"], rows, cls)


def _jobs(data: RunData, view: StackView) -> str:
    """Every step of the flow for one stack: its process jobs (retries too) or why it has none."""
    acc = data.accounting
    done = set(acc.steps_done.get(view.stack_id, []))
    rows, cls = [], []
    for uid in data.steps or sorted({j.uid for j in acc.jobs if j.stack == view.stack_id}):
        jobs = [j for j in acc.jobs if j.stack == view.stack_id and j.uid == uid]
        for j in jobs:
            bad = j.outcome not in ("completed",)
            outcome = j.outcome + (" (recovered)" if j.recovered else "")
            rows.append([escape(uid), escape(j.tool), escape(j.kind), _num(f"{j.start / HOUR:.2f}"),
                         _num(f"{(j.end - j.start) / HOUR:.2f}"), _num(f"{j.productive / HOUR:.2f}"),
                         f"<span class='bad'>{escape(outcome)}</span>" if bad else escape(outcome),
                         escape(j.reason or "")])
            cls.append("")
        if not jobs:
            state = "completed (no tool)" if uid in done else "not run"
            rows.append([escape(uid), "-", "-", "", "", "", state, ""])
            cls.append("" if uid in done else "gone")
    head = ["step", "tool", "kind", "start (tool h)", "duration h", "productive h", "outcome", "reason"]
    return (f"<details><summary>{escape(view.short)}: {len(done)} of {len(data.steps)} steps completed"
            f"</summary>{_table(head, rows, cls)}</details>")


def build_html(data: RunData, gantt: Path, sections: dict[str, Path]) -> str:
    parts = [_summary(data), "<h2>Tool lanes</h2>", _img(gantt, "Gantt chart"), _utilization(data),
             _bound(data), _history(data), "<h2>Claims check</h2>"]
    for view in data.stacks:
        parts += [f"<h3>{escape(view.short)} <span class='muted'>{escape(view.stack_id)}</span></h3>",
                  _claims(view, data.state)]
    parts.append("<h2>Steps and process jobs</h2>")
    parts += [_jobs(data, view) for view in data.stacks]
    parts.append("<h2>Travelers</h2>")
    for view in data.stacks:
        parts.append(f"<h3>{escape(view.short)} <span class='muted'>{escape(view.stack_id)}</span></h3>")
        if view.stack_id in sections:
            parts.append(_img(sections[view.stack_id], f"cross-section of {view.stack_id}"))
        parts.append(_traveler_table(view))
    body = "\n".join(parts)
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>waferline run "
            f"{escape(data.run_id)}</title><style>{CSS}</style></head><body>{body}</body></html>\n")
