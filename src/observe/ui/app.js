// WolfScale dashboard: polls this node's /cluster, /metrics and /events once a second.
// No external scripts: clusters often run without internet access.
"use strict";

const POLL_MS = 1000;
const POINTS = 120;
const TOKEN_KEY = "wolfscale-api-token";

let token = sessionStorage.getItem(TOKEN_KEY) || "";
// `#token=...` in the address (never sent to the server) is moved into the session.
(function tokenFromFragment() {
  const m = location.hash.match(/token=([^&]+)/);
  if (m) {
    token = decodeURIComponent(m[1]);
    sessionStorage.setItem(TOKEN_KEY, token);
    history.replaceState(null, "", location.pathname);
  }
})();

class Unauthorized extends Error {}

async function api(path, text) {
  const headers = token ? { Authorization: "Bearer " + token } : {};
  const r = await fetch(path, { headers, cache: "no-store" });
  if (r.status === 401) throw new Unauthorized(path);
  if (!r.ok) throw new Error(path + " answered " + r.status);
  return text ? r.text() : r.json();
}

// Sum of every sample of `name` in a Prometheus text exposition.
function metricSum(text, name) {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const end = line.search(/[{ ]/);
    if (end < 0 || line.slice(0, end) !== name) continue;
    const v = parseFloat(line.slice(line.lastIndexOf(" ") + 1));
    if (!Number.isNaN(v)) sum += v;
  }
  return sum;
}

const series = { writes: [], reads: [], commits: [], lag: [] };
let previous = null;

function push(key, value) {
  const s = series[key];
  s.push(value);
  if (s.length > POINTS) s.shift();
  document.getElementById("v-" + key).textContent = fmt(value);
}

function fmt(v) {
  return v >= 100 ? Math.round(v).toString() : (Math.round(v * 10) / 10).toString();
}

function draw(key) {
  const c = document.getElementById("c-" + key);
  const g = c.getContext("2d");
  const s = series[key];
  g.clearRect(0, 0, c.width, c.height);
  const max = Math.max(1, ...s);
  g.strokeStyle = "#2f6fb0";
  g.lineWidth = 1.5;
  g.beginPath();
  s.forEach((v, i) => {
    const x = (i / (POINTS - 1)) * c.width;
    const y = c.height - 2 - (v / max) * (c.height - 14);
    if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
  });
  g.stroke();
  g.fillStyle = "#677";
  g.font = "10px sans-serif";
  g.fillText("max " + fmt(max), 2, 10);
}

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function renderNodes(cluster) {
  const body = document.querySelector("#nodes tbody");
  body.replaceChildren();
  for (const n of cluster.nodes) {
    const tr = document.createElement("tr");
    const down = n.status === "OFFLINE";
    tr.dataset.node = n.node_id;
    tr.dataset.status = n.status;
    tr.dataset.role = n.role;
    if (n.role === "leader" && !down) tr.classList.add("leader");
    if (down) tr.classList.add("down");
    cell(tr, n.node_id);
    cell(tr, down ? "—" : n.role);
    const st = cell(tr, "");
    const badge = document.createElement("span");
    badge.className = "st st-" + n.status;
    badge.textContent = down ? "DOWN" : n.status;
    st.appendChild(badge);
    for (const k of ["term", "last_log_lsn", "commit_lsn", "applied_lsn", "lag"]) {
      cell(tr, down ? "—" : String(n[k]), "num");
    }
    cell(tr, n.address);
    cell(tr, n.api_address);
    body.appendChild(tr);
  }
  const leader = cluster.nodes.find((n) => n.role === "leader" && n.status !== "OFFLINE");
  const down = cluster.nodes.filter((n) => n.status === "OFFLINE").length;
  document.getElementById("summary").textContent =
    cluster.nodes.length + " nodes · leader " + (leader ? leader.node_id : "none") +
    " · term " + cluster.term + (down ? " · " + down + " down" : "");
}

function renderEvents(list) {
  const ol = document.getElementById("events");
  ol.replaceChildren();
  for (const e of list.events.slice(-50).reverse()) {
    const li = document.createElement("li");
    li.dataset.kind = e.kind;
    if (/DEGRADED|DIVERGED|NO_QUORUM|OFFLINE/.test(e.detail)) li.className = "warn";
    const t = document.createElement("time");
    t.textContent = new Date(e.at_ms).toLocaleTimeString();
    li.appendChild(t);
    li.appendChild(document.createTextNode(
      e.node_id + " (term " + e.term + ") " + e.kind.replace("_", " ") + ": " + e.detail));
    ol.appendChild(li);
  }
}

function showLogin() {
  const form = document.getElementById("login");
  form.hidden = false;
  document.getElementById("summary").textContent = "API token required";
}

document.getElementById("login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  token = document.getElementById("token").value.trim();
  sessionStorage.setItem(TOKEN_KEY, token);
  document.getElementById("login").hidden = true;
  poll();
});

async function poll() {
  const banner = document.getElementById("banner");
  try {
    const [cluster, metrics, events] = await Promise.all([
      api("/cluster"), api("/metrics", true), api("/events"),
    ]);
    banner.hidden = true;
    renderNodes(cluster);
    renderEvents(events);
    const now = performance.now();
    const sample = {
      t: now,
      writes: metricSum(metrics, "wolfscale_writes_total"),
      reads: metricSum(metrics, "wolfscale_reads_total"),
      commit: Math.max(0, ...cluster.nodes.map((n) => n.commit_lsn)),
    };
    if (previous) {
      const secs = Math.max(0.001, (sample.t - previous.t) / 1000);
      push("writes", Math.max(0, sample.writes - previous.writes) / secs);
      push("reads", Math.max(0, sample.reads - previous.reads) / secs);
      push("commits", Math.max(0, sample.commit - previous.commit) / secs);
    }
    previous = sample;
    const live = cluster.nodes.filter((n) => n.status !== "OFFLINE");
    push("lag", Math.max(0, ...live.map((n) => n.lag)));
    for (const k of Object.keys(series)) draw(k);
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    if (e instanceof Unauthorized) { showLogin(); return; }
    banner.hidden = false;
    banner.textContent = "this node does not answer: " + e.message;
  }
  setTimeout(poll, POLL_MS);
}

poll();
