// tidegate's status page: polls /status once a second and draws one row per
// route. Every value is written with textContent (never as HTML): route
// names come from the config, reasons from Redis. No build step, no library.
"use strict";

const POLL_MS = 1000;
const KEEP = 300; // samples kept per route: five minutes at one a second
const history = new Map(); // route -> {backlog: [], arrival: [], drain: []}

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

function cell(row, text, numeric) {
  const td = document.createElement("td");
  td.textContent = text;
  if (numeric) td.className = "num";
  row.appendChild(td);
  return td;
}

function remember(name, backlog, arrival, drain) {
  let h = history.get(name);
  if (!h) {
    h = { backlog: [], arrival: [], drain: [] };
    history.set(name, h);
  }
  for (const [series, value] of [[h.backlog, backlog], [h.arrival, arrival], [h.drain, drain]]) {
    series.push(value === null || value === undefined ? 0 : value);
    if (series.length > KEEP) series.shift();
  }
  return h;
}

const SVG = "http://www.w3.org/2000/svg";

function spark(lines) {
  const width = 160, height = 32;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  const top = Math.max(1, ...lines.flatMap(([values]) => values));
  for (const [values, cls] of lines) {
    const path = document.createElementNS(SVG, "polyline");
    const step = width / Math.max(1, KEEP - 1);
    const offset = width - step * (values.length - 1);
    path.setAttribute("points", values
      .map((v, i) => `${(offset + i * step).toFixed(1)},${(height - 1 - (v / top) * (height - 2)).toFixed(1)}`)
      .join(" "));
    path.setAttribute("class", cls);
    svg.appendChild(path);
  }
  svg.dataset.points = String(lines[0][0].length);
  return svg;
}

function render(status) {
  const body = document.querySelector("#routes tbody");
  const rows = [];
  for (const [name, route] of Object.entries(status.routes)) {
    const row = document.createElement("tr");
    row.dataset.route = name;
    const scaler = route.scaler || {};
    const throttle = route.throttle;
    cell(row, name);
    cell(row, route.mode);
    if (route.mode === "proxy") {
      const td = cell(row, "to " + (route.upstream || ""));
      td.colSpan = 8;
      rows.push(row);
      continue;
    }
    const now = Date.now() / 1000;
    const oldest = route.oldest_waiting_ms ? Math.max(0, now - route.oldest_waiting_ms / 1000) : null;
    cell(row, fmt(route.waiting, 0) + (route.exact === false ? "+" : ""), true).dataset.field = "backlog";
    cell(row, fmt(route.pending, 0), true).dataset.field = "pending";
    cell(row, age(oldest), true).dataset.field = "oldest";
    cell(row, route.scaler ? `${fmt(scaler.arrival_rate, 1)} / ${fmt(scaler.drain_rate, 1)}` : "", true)
      .dataset.field = "rates";
    cell(row, route.scaler
      ? `${scaler.desired_replicas} / ${scaler.ready_replicas} / ${scaler.max_replicas}` : "", true)
      .dataset.field = "replicas";
    const td = cell(row, "");
    td.dataset.field = "throttle";
    const badge = document.createElement("span");
    badge.className = "badge " + (throttle ? "on" : "off");
    badge.textContent = throttle ? `${fmt(throttle.rate_per_s, 1)}/s (${throttle.reason})` : "off";
    td.appendChild(badge);
    if (throttle) row.className = "throttled";
    const h = remember(name, route.waiting, scaler.arrival_rate, scaler.drain_rate);
    const backlogChart = document.createElement("td");
    backlogChart.appendChild(spark([[h.backlog, "backlog"]]));
    row.appendChild(backlogChart);
    const ratesChart = document.createElement("td");
    ratesChart.appendChild(spark([[h.arrival, "in"], [h.drain, "out"]]));
    row.appendChild(ratesChart);
    rows.push(row);
  }
  body.replaceChildren(...rows);
}

async function poll() {
  const state = document.getElementById("state");
  try {
    const answer = await fetch("/status", { cache: "no-store" });
    const status = await answer.json();
    if (!answer.ok) throw new Error(status.detail || status.title || answer.statusText);
    render(status);
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
