// waferline HMI: renders the line, the runs and one run from the JSON API; server-sent events
// (/api/events) push every change, so several browsers see the same state within a second.
"use strict";
let me = null;
let snapshot = { tools: [], runs: [] };
let runTimer = null;

const $ = (id) => document.getElementById(id);
const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const badge = (s) => `<span class="state ${esc(s)}">${esc(s)}</span>`;

async function api(path, options = {}) {
  const headers = { "Content-Type": "application/json" };
  if (me) headers["X-CSRF-Token"] = me.csrf;
  const res = await fetch(path, { ...options, headers, credentials: "same-origin" });
  if (res.status === 401) { location.href = "/login"; throw new Error("not logged in"); }
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.detail || res.statusText);
  return body;
}

function route() {
  const path = location.pathname;
  if (me) listen();
  $("nav-line").className = path === "/" ? "on" : "";
  $("nav-runs").className = path.startsWith("/runs") ? "on" : "";
  $("nav-alarms").className = path === "/alarms" ? "on" : "";
  if (runTimer) { clearInterval(runTimer); runTimer = null; }
  if (path === "/") renderLine();
  else if (path === "/runs") renderRuns();
  else if (path === "/alarms") renderAlarms();
  else if (path.startsWith("/runs/")) { renderRun(decodeURIComponent(path.slice(6))); }
}

function renderLine() {
  const byKind = {};
  for (const t of snapshot.tools) (byKind[t.kind] = byKind[t.kind] || []).push(t);
  let html = `<h2>Line</h2>`;
  for (const kind of Object.keys(byKind).sort()) {
    html += `<table class="tools"><tr><th>${esc(kind)}</th><th>state</th><th>job</th><th>alarm</th><th>interlocks</th><th>process values</th></tr>`;
    for (const t of byKind[kind]) {
      if (!t.ok) {
        html += `<tr id="tool-${esc(t.name)}"><td>${esc(t.name)}<br><span class="note">${esc(t.transport)}</span></td><td>${badge("UNREACHABLE")}</td><td colspan="4" class="error">${esc(t.error)}</td></tr>`;
        continue;
      }
      const s = t.status;
      const locks = Object.entries(s.interlocks).map(([n, ok]) => `<span class="chip ${ok ? "" : "bad"}">${esc(n)}${ok ? "" : " OPEN"}</span>`).join("");
      const values = Object.entries(s.values).map(([n, v]) => `${esc(n)} ${typeof v === "number" ? v.toFixed(2) : esc(v)}`).join("<br>");
      const alarm = s.alarm ? `<span class="alarm">${esc(s.alarm.id)} ${esc(s.alarm.text)} (${esc(s.alarm.alarm_class)})</span>` : "";
      html += `<tr id="tool-${esc(t.name)}"><td>${esc(t.name)}<br><span class="note">${esc(t.transport)}${t.via ? " via " + esc(t.via) : ""}</span></td>` +
        `<td>${badge(s.state)}</td><td>${esc(s.job_id || "")} ${esc(s.job_outcome)}${t.step ? `<br><span class="note">step ${esc(t.step)} of <a href="/runs/${encodeURIComponent(t.run)}">${esc(t.run)}</a></span>` : ""}</td><td>${alarm}</td><td>${locks}</td><td>${values}</td></tr>`;
    }
    html += `</table>`;
  }
  $("main").innerHTML = html;
}

let flows = null;
async function startRun() {
  const body = { flow: $("start-flow").value, stacks: Number($("start-stacks").value || 1) };
  if ($("start-wafers").value) body.wafers = Number($("start-wafers").value);
  try { await api("/api/runs", { method: "POST", body: JSON.stringify(body) }); $("start-note").textContent = `${body.flow} started`; }
  catch (e) { $("start-note").textContent = e.message; }
}

function renderRuns() {
  if (flows === null) { flows = []; api("/api/flows").then((f) => { flows = f.flows; renderRuns(); }); }
  const keep = { flow: $("start-flow")?.value, wafers: $("start-wafers")?.value, stacks: $("start-stacks")?.value, note: $("start-note")?.textContent };
  let html = `<h2>Start a run</h2><div class="actions"><select id="start-flow">${flows.map((f) => `<option>${esc(f)}</option>`).join("")}</select>` +
    ` wafers <input id="start-wafers" size="3" placeholder="flow's"> stacks <input id="start-stacks" size="3" value="1">` +
    ` <button id="start-run">start</button> <span class="note" id="start-note"></span></div>`;
  html += `<h2>Runs</h2><table id="runs"><tr><th>run</th><th>flow</th><th>state</th><th>held because</th><th>controller</th><th>claims</th></tr>`;
  for (const r of snapshot.runs) {
    html += `<tr><td><a href="/runs/${encodeURIComponent(r.id)}">${esc(r.id)}</a></td><td>${esc(r.flow)}</td><td>${badge(r.state)}</td>` +
      `<td>${esc(r.held_reason)}</td><td>${esc(r.controller)}</td><td>${r.claims_ok === true ? "ok" : r.claims_ok === false ? "NOT OK" : ""}</td></tr>`;
  }
  $("main").innerHTML = html + `</table>`;
  if (keep.flow) $("start-flow").value = keep.flow;
  $("start-wafers").value = keep.wafers || "";
  $("start-stacks").value = keep.stacks || "1";
  $("start-note").textContent = keep.note || "";
  $("start-run").onclick = startRun;
}

async function renderRun(id) {
  let r;
  try { r = await api(`/api/runs/${encodeURIComponent(id)}`); } catch (e) { $("main").innerHTML = `<p class="error">${esc(e.message)}</p>`; return; }
  if (location.pathname !== `/runs/${id}`) return;
  if (!$("run-actions") || $("run-actions").dataset.run !== id) {  // the frame once; the actions keep what was typed
    $("main").innerHTML = `<h2>Run ${esc(r.id)} - ${esc(r.flow)}, ${esc(r.wafers)} wafers on ${esc(r.line)}</h2><div id="run-top"></div>` +
      `<div class="actions" id="run-actions" data-run="${esc(id)}">` +
      ["hold", "restart", "stop", "abort"].map((c) => `<button id="cmd-${c}" data-cmd="${c}" class="${c === "abort" ? "danger" : ""}">${c}</button>`).join("") +
      ` <input id="scrap-stack" placeholder="stack (S1)" size="8"><button id="cmd-scrap" data-cmd="scrap" class="danger">scrap stack</button>` +
      ` <input id="bypass-interlock" placeholder="interlock" size="12"><input id="bypass-minutes" placeholder="minutes" size="6"><input id="bypass-why" placeholder="reason" size="16"><button id="cmd-bypass" data-cmd="bypass">bypass</button>` +
      `<p class="error" id="cmd-error"></p></div><div id="run-body"></div><div id="run-pictures"></div>`;
    for (const b of document.querySelectorAll("[data-cmd]")) b.onclick = () => command(id, b.dataset.cmd);
  }
  const pct = r.progress.planned ? Math.round(100 * r.progress.done / r.progress.planned) : 0;
  let top = `<p>state <span class="state ${esc(r.state)}" id="run-state">${esc(r.state)}</span></p>`;
  const final = ["COMPLETE", "ABORTED", "STOPPED"].includes(r.state);
  if (r.controller !== "running") top += `<div class="offline" id="offline">controller not running: the last journaled state is shown` + (final ? " (the run has ended)" : `; <code>waferline resume ${esc(r.id)}</code> picks it up again`) + `</div>`;
  if (r.held_reason) top += `<div class="held" id="held-reason">held: ${esc(r.held_reason)}</div>`;
  top += `<progress max="${r.progress.planned}" value="${r.progress.done}"></progress> <span id="progress">${r.progress.done} of ${r.progress.planned} steps done (${pct} %)</span>`;
  $("run-top").innerHTML = top;
  let body = "";
  const stamp = `${Math.floor(Date.now() / 5000)}-${r.travelers.join(",")}`;  // pictures: at most every 5 s
  if ($("run-pictures").dataset.stamp !== stamp) {
    $("run-pictures").dataset.stamp = stamp;
    const t = encodeURIComponent(stamp);
    $("run-pictures").innerHTML = `<h2>Gantt so far (holds shown)</h2><img id="gantt" alt="Gantt" src="/api/runs/${encodeURIComponent(r.id)}/pictures/gantt.png?t=${t}">` +
      r.travelers.map((s) => `<h2>Stack ${esc(s)}: traveler cross-section</h2><img class="xsection" alt="cross-section ${esc(s)}" src="/api/runs/${encodeURIComponent(r.id)}/pictures/xsection-${encodeURIComponent(s)}.png?t=${t}">`).join("");
  }
  if (r.report) body += `<p><a id="report" href="/runs/${encodeURIComponent(r.id)}/report/index.html" target="_blank">the report</a></p>`;
  if (r.claims && r.claims.length) body += `<h2 id="claims">Claims ${r.claims_ok ? "ok" : "NOT OK"}</h2><table>` + r.claims.map((c) => `<tr><td>${esc(c.claim)} ${esc(c.title)}</td><td>${c.ok ? "ok" : "NOT OK"}</td><td>${esc(c.detail)}</td></tr>`).join("") + `</table>`;
  else if (r.claims) body += `<h2 id="claims">Claims not judged: the run did not complete</h2>`;
  body += `<h2>Interlock and alarm history</h2><table id="history"><tr><th>seq</th><th>time</th><th>event</th><th>what</th></tr>` +
    r.history.slice().reverse().map((h) => `<tr><td>${h.seq}</td><td>${esc(h.ts)}</td><td>${esc(h.kind)}</td><td>${esc(JSON.stringify(h.data))}</td></tr>`).join("") + `</table>`;
  body += `<h2>Steps</h2><table id="steps"><tr><th>step</th><th>status</th><th>tool</th><th>job</th><th>why</th></tr>` +
    r.steps.map((s) => `<tr><td>${esc(s.uid)}</td><td>${esc(s.status)}</td><td>${esc(s.tool)}</td><td>${esc(s.job_id)}</td><td>${esc(s.reason)}</td></tr>`).join("") + `</table>`;
  $("run-body").innerHTML = body;
  if (!runTimer) runTimer = setInterval(() => { if (location.pathname === `/runs/${id}`) renderRun(id); }, 1000);
}

const when = (t) => (t ? new Date(t * 1000).toLocaleTimeString() : "");

function renderAlarms() {
  const alarms = snapshot.alarms || { active: [], recent: [] };
  const row = (a, actions) => `<tr id="alarm-${esc(a.key)}"><td>${badge(a.state)}</td><td>${esc(a.tool)}</td><td>${esc(a.alarm_id)}</td>` +
    `<td>${esc(a.text)}</td><td>${esc(a.alarm_class)}</td><td>${when(a.raised)}</td><td>${when(a.cleared)}</td>` +
    `<td>${esc(a.acked_by)} ${when(a.acked)}</td><td>${a.shelved_until ? esc(a.shelved_by) + " until " + when(a.shelved_until) : ""}</td>` +
    (actions ? `<td>${a.acked ? "" : `<button data-ack="${esc(a.key)}">acknowledge</button>`}` +
      (a.alarm_class === "safety" ? "" : ` <input data-shelf-min="${esc(a.key)}" placeholder="min" size="4"><input data-shelf-why="${esc(a.key)}" placeholder="reason" size="12"><button data-shelve="${esc(a.key)}">shelve</button>`) + `</td>` : "") + `</tr>`;
  const head = `<tr><th>state</th><th>tool</th><th>ALID</th><th>text</th><th>class</th><th>raised</th><th>cleared</th><th>acknowledged</th><th>shelved</th>`;
  const keep = {};  // what was typed into the shelf fields survives a refresh
  for (const i of document.querySelectorAll("[data-shelf-min],[data-shelf-why]")) keep[(i.dataset.shelfMin ? "m" : "w") + (i.dataset.shelfMin || i.dataset.shelfWhy)] = i.value;
  $("main").innerHTML = `<h2>Alarms</h2><p class="error" id="alarm-error">${esc(alarmError)}</p>` +
    `<table id="alarms-active">${head}<th></th></tr>` + alarms.active.map((a) => row(a, true)).join("") + `</table>` +
    `<h2>Recent (back to normal)</h2><table id="alarms-recent">${head}</tr>` + alarms.recent.map((a) => row(a, false)).join("") + `</table>`;
  for (const i of document.querySelectorAll("[data-shelf-min]")) i.value = keep["m" + i.dataset.shelfMin] || "";
  for (const i of document.querySelectorAll("[data-shelf-why]")) i.value = keep["w" + i.dataset.shelfWhy] || "";
  for (const b of document.querySelectorAll("[data-ack]")) b.onclick = () => alarmAction(b.dataset.ack, "acknowledge", {});
  for (const b of document.querySelectorAll("[data-shelve]")) b.onclick = () => alarmAction(b.dataset.shelve, "shelve", {
    minutes: Number(document.querySelector(`[data-shelf-min="${b.dataset.shelve}"]`).value),
    reason: document.querySelector(`[data-shelf-why="${b.dataset.shelve}"]`).value });
}

let alarmError = "";
async function alarmAction(key, action, body) {
  try { snapshotAlarm(await api(`/api/alarms/${encodeURIComponent(key)}/${action}`, { method: "POST", body: JSON.stringify(body) })); alarmError = ""; }
  catch (e) { alarmError = e.message; }
  renderAlarms();
}

function snapshotAlarm(record) {  // show the answer at once; the next event brings the rest
  const list = (snapshot.alarms || { active: [] }).active;
  const i = list.findIndex((a) => a.key === record.key);
  if (i >= 0) list[i] = record;
}

function countAlarms() {
  const n = ((snapshot.alarms || {}).active || []).filter((a) => a.state.startsWith("UNACK")).length;
  $("alarm-count").textContent = n ? `(${n})` : "";
}

function confirmed(text) {
  return new Promise((resolve) => {
    $("confirm-text").textContent = text;
    $("confirm").onclose = () => resolve($("confirm").returnValue === "yes");
    $("confirm").showModal();
  });
}

async function command(id, cmd) {
  const body = { why: `from the HMI by ${me.user}` };
  if (cmd === "scrap") body.stack = $("scrap-stack").value;
  if (cmd === "bypass") Object.assign(body, { interlock: $("bypass-interlock").value, minutes: Number($("bypass-minutes").value), why: $("bypass-why").value });
  if (cmd === "abort" || cmd === "scrap") {
    if (!(await confirmed(`${cmd} ${cmd === "scrap" ? "stack " + body.stack + " of " : ""}run ${id}?`))) return;
    body.confirm = true;
  }
  try { await api(`/api/runs/${encodeURIComponent(id)}/${cmd}`, { method: "POST", body: JSON.stringify(body) }); $("cmd-error").textContent = ""; }
  catch (e) { $("cmd-error").textContent = e.message; }
  renderRun(id);
}

let source = null;
let topics = "";
function listen() {  // each page subscribes to what it shows (the alarm count needs alarms everywhere)
  const path = location.pathname;
  const want = path === "/" ? "tools,alarms" : path === "/runs" ? "runs,alarms" : "alarms";
  if (source && want === topics) return;
  if (source) source.close();
  topics = want;
  source = new EventSource(`/api/events?topics=${want}`);
  source.onmessage = (m) => {
    Object.assign(snapshot, JSON.parse(m.data));
    $("live").textContent = "live " + new Date(snapshot.at * 1000).toLocaleTimeString();
    $("live").className = "live ok";
    countAlarms();
    if (["/", "/runs", "/alarms"].includes(location.pathname)) route();
  };
  source.onerror = () => { $("live").textContent = "reconnecting..."; $("live").className = "live stale"; };
}

async function main() {
  me = await api("/api/me");
  $("who").textContent = `${me.user} (${me.role})`;
  $("logout").onclick = async () => { await api("/api/logout", { method: "POST" }); location.href = "/login"; };
  for (const a of document.querySelectorAll("nav a")) a.onclick = (e) => { e.preventDefault(); history.pushState({}, "", a.getAttribute("href")); route(); };
  window.onpopstate = route;
  document.addEventListener("click", (e) => {
    const a = e.target.closest("a[href^='/runs/']");
    if (a && !a.target && !a.getAttribute("href").includes("/report/")) { e.preventDefault(); history.pushState({}, "", a.getAttribute("href")); route(); }
  });
  route();
  listen();
}
main();
