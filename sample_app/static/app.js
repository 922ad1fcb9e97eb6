// The live timeline: a WebSocket feed drawn on plain <canvas> (no library, no CDN: works offline).
"use strict";

const WINDOW_SECONDS = 120;          // visible history once there is that much
const MIN_WINDOW_SECONDS = 30;       // a fresh page zooms in instead of squeezing points right
const MAX_POINTS = 600;              // memory bound on the client
const COLORS = { login: "#58a6ff", search: "#3fb950", other: "#8b98a5", p50: "#3fb950", p95: "#d29922",
                 p99: "#f85149", writer: "#f0883e", reader: "#58a6ff", errors: "#f85149", client: "#d29922" };

const state = { points: [], markers: [], controls: {}, ws: null, retry: 0 };
const $ = (id) => document.getElementById(id);

// ---------- the WebSocket, reconnecting with capped backoff (the app restarts during a demo)
function connect() {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/ws/timeline`);
  state.ws = ws;
  setBadge("ws-state", "wait", "connecting…", "connecting");
  ws.onopen = () => { state.retry = 0; setBadge("ws-state", "ok", "live", "open"); };
  ws.onmessage = (msg) => {
    const data = JSON.parse(msg.data);
    if (data.type === "hello") {
      state.points = []; state.markers = [];
      data.history.forEach(addPoint);
    } else if (data.type === "point") {
      addPoint(data.point);
    }
    if (data.controls) showControls(data.controls);
    render();
  };
  ws.onclose = () => {
    const delay = Math.min(5000, 250 * 2 ** state.retry++);
    setBadge("ws-state", "bad", `reconnecting in ${(delay / 1000).toFixed(1)}s`, "closed");
    setTimeout(connect, delay);
  };
  ws.onerror = () => ws.close();
}

function addPoint(p) {
  state.points.push(p);
  if (state.points.length > MAX_POINTS) state.points.shift();
  for (const e of p.events || []) {
    if (e.kind === "spike_start" || e.kind === "spike_stop") state.markers.push({ t: e.t, kind: e.kind });
  }
  const oldest = state.points[0].t;
  state.markers = state.markers.filter((m) => m.t >= oldest);
}

// ---------- status badges and numbers
function setBadge(id, cls, text, dataValue) {
  const el = $(id);
  el.className = `badge ${cls}`;
  el.textContent = text;
  if (dataValue !== undefined) el.dataset[Object.keys(el.dataset)[0]] = dataValue;
}

function showControls(controls) {
  state.controls = controls;
  document.querySelectorAll(".toggle").forEach((el) => {
    el.classList.toggle("running", Boolean(controls[el.dataset.target]));
  });
}

function fmt(v, digits = 1) { return v === null || v === undefined ? "–" : Number(v).toFixed(digits); }

function render() {
  const last = state.points[state.points.length - 1];
  $("stat-points").textContent = state.points.length;
  if (last) {
    const total = Object.values(last.rps).reduce((a, b) => a + b, 0);
    $("stat-rps").textContent = total;
    $("stat-p99").textContent = fmt(last.latency_ms.p99);
    $("stat-errors").textContent = last.errors;
    const s = last.spike || {};
    $("stat-spike").textContent = s.active ? `${fmt(s.achieved_rps, 0)} / ${fmt(s.target_rps, 0)}` : "–";
    if (s.active) setBadge("spike-state", "live", `spike: running ${fmt(s.target_rps, 0)} req/s`, "true");
    else setBadge("spike-state", "idle", `spike: ${s.state || "idle"}`, "false");
    if (last.reader_path === "writer") setBadge("reader-path", "bad", "reads: writer (no read-only user yet)", "writer");
    else setBadge("reader-path", "ok", "reads: reader path", "reader");
    const fr = last.follower_reads || { on: false, short: "", reason: "" };
    const why = fr.short ? ` (${fr.short})` : "";
    setBadge("follower-reads", fr.on ? "live" : "idle", `follower reads: ${fr.on ? "on" : "off"}${why}`, String(fr.on));
    $("follower-reads").title = fr.reason;  // why, on hover
    const u = last.db_users || {};  // which rotation user each path uses (rotate_credentials moves them)
    const users = `writer ${u.writer || "?"} · reader ${u.reader || "?"}`;
    setBadge("db-users", "idle", `db users: ${users}`, users);
    if (last.ready === true) setBadge("ready-state", "ok", "ready", "true");
    else if (last.ready === false) setBadge("ready-state", "bad", "NOT ready", "false");
  }
  const pts = state.points;
  drawChart("chart-rps", pts, [
    { name: "/login", color: COLORS.login, get: (p) => p.rps["/login"] || 0 },
    { name: "/search", color: COLORS.search, get: (p) => p.rps["/search"] || 0 },
  ]);
  drawChart("chart-latency", pts, [
    { name: "p50", color: COLORS.p50, get: (p) => p.latency_ms.p50 },
    { name: "p95", color: COLORS.p95, get: (p) => p.latency_ms.p95 },
    { name: "p99", color: COLORS.p99, get: (p) => p.latency_ms.p99 },
  ]);
  drawChart("chart-db", pts, [
    { name: "writer", color: COLORS.writer, get: (p) => (p.db_ms.writer || {}).p99 },
    { name: "reader", color: COLORS.reader, get: (p) => (p.db_ms.reader || {}).p99 },
  ]);
  drawChart("chart-errors", pts, [
    { name: "5xx", color: COLORS.errors, get: (p) => p.errors },
    { name: "4xx", color: COLORS.client, get: (p) => p.client_errors },
  ]);
}

// ---------- a small line chart: grid, y axis with nice ticks, series, legend, spike markers
// Top of the y axis: four equal steps of a round size (1, 2, 5 x 10^n) covering v.
function niceMax(v) {
  if (!(v > 0)) return 1;
  const raw = v / 4, mag = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (raw <= m * mag) return 4 * m * mag;
  return 40 * mag;
}

// 0, 12.5, 25 ... or 0, 0.25, 0.5: exact tick values, no rounding to misleading integers.
function tickLabel(v) {
  if (Number.isInteger(v)) return String(v);
  return String(Number(v.toFixed(2)));
}

function drawChart(id, points, series) {
  const canvas = $(id);
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== w * dpr || canvas.height !== h * dpr) { canvas.width = w * dpr; canvas.height = h * dpr; }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const pad = { l: 48, r: 12, t: 22, b: 22 };
  const pw = w - pad.l - pad.r, ph = h - pad.t - pad.b;
  const now = points.length ? points[points.length - 1].t : Date.now() / 1000;
  const span = points.length ? now - points[0].t : 0;
  const win = Math.min(WINDOW_SECONDS, Math.max(MIN_WINDOW_SECONDS, Math.ceil(span / 10) * 10));
  const t0 = now - win;
  const x = (t) => pad.l + ((t - t0) / win) * pw;
  let max = 0;
  for (const p of points) if (p.t >= t0) for (const s of series) { const v = s.get(p); if (v > max) max = v; }
  max = niceMax(max * 1.1);
  const y = (v) => pad.t + ph - (v / max) * ph;

  ctx.font = "11px system-ui, sans-serif";
  ctx.strokeStyle = "#26313c"; ctx.fillStyle = "#8b98a5"; ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4, yy = Math.round(y(v)) + 0.5;
    ctx.beginPath(); ctx.moveTo(pad.l, yy); ctx.lineTo(w - pad.r, yy); ctx.stroke();
    ctx.textAlign = "right"; ctx.fillText(tickLabel(v), pad.l - 6, yy + 4);
  }
  ctx.textAlign = "center";
  const step = win > 60 ? 30 : 10;
  for (let s = win; s >= 0; s -= step) {
    ctx.fillText(s === 0 ? "now" : `-${s}s`, x(now - s), h - 6);
  }

  for (const m of state.markers) {
    if (m.t < t0) continue;
    const xx = Math.round(x(m.t)) + 0.5;
    ctx.save();
    ctx.strokeStyle = m.kind === "spike_start" ? "#3fb950" : "#f85149";
    ctx.setLineDash([5, 4]); ctx.lineWidth = 1.5;
    ctx.beginPath(); ctx.moveTo(xx, pad.t); ctx.lineTo(xx, pad.t + ph); ctx.stroke();
    ctx.fillStyle = ctx.strokeStyle;
    const nearRight = xx > w - pad.r - 40;  // keep the label inside the plot
    ctx.textAlign = nearRight ? "right" : "left";
    ctx.fillText(m.kind === "spike_start" ? "spike" : "end", nearRight ? xx - 3 : xx + 3, pad.t + 10);
    ctx.restore();
  }

  series.forEach((s, i) => {
    ctx.strokeStyle = s.color; ctx.lineWidth = 2; ctx.beginPath();
    let pen = false;
    for (const p of points) {
      if (p.t < t0) continue;
      const v = s.get(p);
      if (v === null || v === undefined) { pen = false; continue; }
      if (pen) ctx.lineTo(x(p.t), y(v)); else { ctx.moveTo(x(p.t), y(v)); pen = true; }
    }
    ctx.stroke();
    ctx.fillStyle = s.color; ctx.textAlign = "left";
    ctx.fillRect(pad.l + 8 + i * 80, 6, 10, 10);
    ctx.fillStyle = "#e6edf3"; ctx.fillText(s.name, pad.l + 22 + i * 80, 15);
  });
  if (!points.length) {
    ctx.fillStyle = "#8b98a5"; ctx.textAlign = "center"; ctx.fillText("waiting for data…", pad.l + pw / 2, pad.t + ph / 2);
  }
}

// ---------- buttons: each one is a plain HTTP call of the app's API
async function call(method, path, body) {
  const msg = $("message");
  try {
    const res = await fetch(path, { method, headers: { "Content-Type": "application/json" },
                                    body: body === undefined ? undefined : JSON.stringify(body) });
    const data = await res.json();
    if (!res.ok) throw new Error(`${data.error}${data.detail ? ": " + JSON.stringify(data.detail) : ""}`);
    msg.className = ""; msg.textContent = `${method} ${path}: ok`;
    return data;
  } catch (err) {
    msg.className = "error"; msg.textContent = `${method} ${path} failed: ${err.message}`;
    return null;
  }
}

$("spike-start").onclick = () => {
  const login = Math.min(1, Math.max(0, Number($("spike-login").value)));
  call("POST", "/spike", { seconds: Number($("spike-seconds").value), rps: Number($("spike-rps").value),
                           mix: { login, search: 1 - login } });
};
$("spike-stop").onclick = () => call("DELETE", "/spike");
document.querySelectorAll(".toggle button").forEach((btn) => {
  btn.onclick = async () => {
    const target = btn.parentElement.dataset.target;
    const data = await call("POST", `/control/${target}/${btn.dataset.action}`);
    if (data) showControls(Object.fromEntries(Object.entries(data).map(([k, v]) => [k, v.running])));
  };
});
window.addEventListener("resize", render);
render();
connect();
