// tidegate's status page. The table polls /status once a second; the charts
// draw the last 15 minutes that the gateway itself sampled (/status/history),
// fetched whole on load and then only the new samples, so a reload keeps
// them. Every value is written with textContent (never as HTML): route names
// come from the config, reasons from Redis. No build step, no library; no
// inline style either (the Content-Security-Policy allows this origin only),
// so every colour is a CSS class.
"use strict";

const POLL_MS = 1000;
const SVG = "http://www.w3.org/2000/svg";

// One chart per figure group: [column of /status/history, legend name].
const CHARTS = [
  { id: "backlog", title: "backlog", unit: "entries",
    series: [["backlog", "waiting"], ["pending", "pending"]] },
  { id: "rates", title: "in / out / refused", unit: "requests/s",
    series: [["in_per_s", "in"], ["out_per_s", "out"], ["refused_per_s", "refused"]] },
  { id: "replicas", title: "replicas", unit: "pods",
    series: [["desired_replicas", "desired"], ["ready_replicas", "ready"], ["max_replicas", "max"]],
    band: ["exhausted", "exhausted"] },
  { id: "throttle", title: "throttle rate", unit: "requests/s",
    series: [["throttle_per_s", "throttle"]],
    empty: "not throttled in this window" },
];

const WIDTH = 300, HEIGHT = 140;
const LEFT = 40, RIGHT = 14, TOP = 10, BOTTOM = 22;

let history = null; // {interval_s, window_s, now_s, routes: {name: {column: [...]}}}
let queued = [];    // queued routes in config order, from /status

function fmt(value, digits) {
  if (value === null || value === undefined) return "";
  return typeof value === "number" ? value.toFixed(digits) : String(value);
}

function age(seconds) {
  if (seconds === null || seconds === undefined) return "";
  if (seconds < 60) return seconds.toFixed(1) + " s";
  if (seconds < 3600) return (seconds / 60).toFixed(1) + " min";
  return (seconds / 3600).toFixed(1) + " h";
}

function cell(row, text, field, numeric) {
  const td = document.createElement("td");
  td.textContent = text;
  if (numeric) td.className = "num";
  if (field) td.dataset.field = field;
  row.appendChild(td);
  return td;
}

function render(status) {
  const body = document.querySelector("#routes tbody");
  const rows = [];
  queued = [];
  for (const [name, route] of Object.entries(status.routes)) {
    const row = document.createElement("tr");
    row.dataset.route = name;
    cell(row, name);
    cell(row, route.mode);
    rows.push(row);
    if (route.mode === "proxy") {
      cell(row, "to " + (route.upstream || "")).colSpan = 9;
      continue;
    }
    queued.push(name);
    const scaler = route.scaler;
    const throttle = route.throttle;
    const now = Date.now() / 1000;
    const oldest = route.oldest_waiting_ms ? Math.max(0, now - route.oldest_waiting_ms / 1000) : null;
    cell(row, fmt(route.waiting, 0) + (route.exact === false ? "+" : ""), "backlog", true);
    cell(row, fmt(route.pending, 0), "pending", true);
    cell(row, age(oldest), "oldest", true);
    cell(row, scaler ? `${fmt(scaler.arrival_rate, 1)} / ${fmt(scaler.drain_rate, 1)}` : "", "rates", true);
    cell(row, scaler ? fmt(scaler.refused_rate, 1) : "", "refused", true);
    cell(row, scaler
      ? `${scaler.desired_replicas} / ${scaler.ready_replicas} / ${scaler.max_replicas}` : "",
    "replicas", true);
    cell(row, scaler ? (scaler.exhausted ? "yes" : "no") : "", "exhausted");
    const td = cell(row, "", "throttle");
    const badge = document.createElement("span");
    badge.className = "badge " + (throttle ? "on" : "off");
    badge.textContent = throttle ? `${fmt(throttle.rate_per_s, 1)}/s (${throttle.reason})` : "off";
    td.appendChild(badge);
    cell(row, scaler ? scaler.reason : "", "reason");
    const classes = [];
    if (throttle) classes.push("throttled");
    if (scaler && scaler.exhausted) classes.push("exhausted");
    row.className = classes.join(" ");
  }
  body.replaceChildren(...rows);
}

// The smallest of 1, 2, 2.5, 5 times a power of ten at or above value.
function niceTop(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const m of [1, 2, 2.5, 5, 10]) if (value <= m * power * (1 + 1e-9)) return m * power;
  return 10 * power;
}

function tickLabel(value) {
  return String(Number(value.toPrecision(3)));
}

function svg(name, attributes, parent) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  if (parent) parent.appendChild(element);
  return element;
}

function text(parent, x, y, content, cls) {
  svg("text", { x, y, class: cls }, parent).textContent = content;
}

// A path through the points of one column, broken where a value is missing
// or samples are more than two and a half intervals apart (Redis was down, or
// the gateway restarted); a lone point is drawn as a dot.
function trace(times, values, x, y, interval) {
  const parts = [];
  let run = 0;
  for (let i = 0; i < times.length; i++) {
    const value = values[i];
    if (value === null || value === undefined) { run = 0; continue; }
    const gap = i > 0 && times[i] - times[i - 1] > 2.5 * interval;
    if (run === 0 || gap) {
      if (run === 1) parts.push("h0.5");
      parts.push(`M${x(times[i]).toFixed(1)},${y(value).toFixed(1)}`);
      run = 1;
    } else {
      parts.push(`L${x(times[i]).toFixed(1)},${y(value).toFixed(1)}`);
      run += 1;
    }
  }
  if (run === 1) parts.push("h0.5");
  return parts.join(" ");
}

function chart(spec, columns) {
  const figure = document.createElement("figure");
  figure.className = "chart";
  figure.dataset.chart = spec.id;
  const caption = document.createElement("figcaption");
  const title = document.createElement("span");
  title.className = "title";
  title.textContent = spec.title;
  const unit = document.createElement("span");
  unit.className = "unit";
  unit.textContent = `(${spec.unit})`;
  caption.append(title, " ", unit);
  const legend = document.createElement("span");
  legend.className = "legend";
  for (const [column, name] of spec.band ? [...spec.series, spec.band] : spec.series) {
    const key = document.createElement("span");
    key.className = "key s-" + column;
    key.textContent = name;
    legend.appendChild(key);
  }
  caption.appendChild(legend);
  figure.appendChild(caption);

  const times = columns.t_s || [];
  const end = history.now_s, start = end - history.window_s;
  const plotWidth = WIDTH - LEFT - RIGHT, plotHeight = HEIGHT - TOP - BOTTOM;
  const values = spec.series.flatMap(([column]) => columns[column] || []).filter((v) => v !== null);
  const top = niceTop(Math.max(0, ...values));
  const x = (t) => LEFT + ((t - start) / history.window_s) * plotWidth;
  const y = (v) => TOP + plotHeight - (v / top) * plotHeight;

  const root = svg("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`, width: WIDTH, height: HEIGHT, role: "img",
    "aria-label": `${spec.title} in ${spec.unit}, last ${history.window_s / 60} minutes`,
  });
  root.dataset.points = String(times.length);
  if (spec.band) {
    const flags = columns[spec.band[0]] || [];
    for (let i = 0; i < times.length; i++) {
      if (!flags[i]) continue;
      let j = i;
      while (j + 1 < times.length && flags[j + 1] && times[j + 1] - times[j] <= 2.5 * history.interval_s) j++;
      const from = Math.max(x(times[i]), LEFT);
      const to = Math.min(x(times[j] + history.interval_s), LEFT + plotWidth);
      svg("rect", { x: from, y: TOP, width: Math.max(1, to - from), height: plotHeight,
        class: "band s-" + spec.band[0] }, root);
      i = j;
    }
  }
  for (const fraction of [0, 0.5, 1]) {
    const value = top * fraction;
    svg("line", { x1: LEFT, x2: LEFT + plotWidth, y1: y(value), y2: y(value),
      class: fraction === 0 ? "axis" : "grid" }, root);
    text(root, LEFT - 4, y(value) + 4, tickLabel(value), "tick tick-y");
  }
  const minutes = history.window_s / 60;
  const step = minutes > 10 ? 5 : minutes > 4 ? 2 : 1;
  for (let m = Math.floor(minutes / step) * step; m >= 0; m -= step) {
    const at = x(end - m * 60);
    svg("line", { x1: at, x2: at, y1: TOP, y2: TOP + plotHeight, class: m === 0 ? "axis" : "grid" }, root);
    text(root, at, HEIGHT - 6, m === 0 ? "now" : `-${m} min`, "tick tick-x");
  }
  for (const [column] of spec.series) {
    const path = svg("path", { d: trace(times, columns[column] || [], x, y, history.interval_s),
      class: "line s-" + column }, root);
    path.dataset.series = column;
  }
  if (spec.empty && values.length === 0) {
    text(root, LEFT + plotWidth / 2, TOP + plotHeight / 2, spec.empty, "empty");
  }
  figure.appendChild(root);
  return figure;
}

function drawCharts() {
  if (!history) return;
  const sections = [];
  for (const name of queued) {
    const section = document.createElement("section");
    section.className = "route-charts";
    section.dataset.route = name;
    const heading = document.createElement("h2");
    heading.textContent = name;
    section.appendChild(heading);
    const columns = history.routes[name] || {};
    for (const spec of CHARTS) section.appendChild(chart(spec, columns));
    sections.push(section);
  }
  document.getElementById("charts").replaceChildren(...sections);
}

// Add the new samples of each route to what the page has, and forget those
// that left the window.
function merge(update) {
  if (!history) { history = update; return; }
  history.now_s = update.now_s;
  history.interval_s = update.interval_s;
  history.window_s = update.window_s;
  const horizon = update.now_s - update.window_s;
  for (const [name, fresh] of Object.entries(update.routes)) {
    const kept = history.routes[name] || {};
    const merged = {};
    for (const [column, values] of Object.entries(fresh)) merged[column] = (kept[column] || []).concat(values);
    const first = merged.t_s.findIndex((t) => t >= horizon);
    const drop = first === -1 ? merged.t_s.length : first;
    for (const column of Object.keys(merged)) merged[column] = merged[column].slice(drop);
    history.routes[name] = merged;
  }
}

function newest() {
  let latest = null;
  for (const columns of Object.values(history ? history.routes : {})) {
    const times = columns.t_s || [];
    if (times.length && (latest === null || times[times.length - 1] > latest)) latest = times[times.length - 1];
  }
  return latest;
}

async function pollHistory() {
  let wait_s = 5;
  try {
    const since = newest();
    const answer = await fetch("/status/history" + (since === null ? "" : `?since=${since}`), { cache: "no-store" });
    const update = await answer.json();
    if (!answer.ok) throw new Error(update.detail || update.title || answer.statusText);
    merge(update);
    wait_s = update.interval_s;
    drawCharts();
    document.body.dataset.histories = String(Number(document.body.dataset.histories || 0) + 1);
  } catch (error) {
    document.getElementById("charts").dataset.error = error.message;
  }
  setTimeout(pollHistory, Math.max(1, wait_s) * 1000);
}

async function poll() {
  const state = document.getElementById("state");
  try {
    const answer = await fetch("/status", { cache: "no-store" });
    const status = await answer.json();
    if (!answer.ok) throw new Error(status.detail || status.title || answer.statusText);
    const before = queued.join("\n");
    render(status);
    if (queued.join("\n") !== before) drawCharts();
    state.textContent = `updated ${new Date().toLocaleTimeString()}; ` +
      `${status.waiting_requests} sync request(s) waiting at this gateway`;
    state.className = "state";
    document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);
  } catch (error) {
    state.textContent = "cannot read /status: " + error.message;
    state.className = "state down";
  }
  setTimeout(poll, POLL_MS);
}

poll();
pollHistory();
