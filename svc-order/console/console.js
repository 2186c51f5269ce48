// The saga console: one page, no framework, no build step.
//
// Everything it shows comes from svc-order's /console/api (see svc-order/src/console). Payloads
// and reasons are attacker-controlled text (anyone allowed to publish an event writes them), so
// the DOM is only ever built with createElement/textContent, never innerHTML.
"use strict";

const API = "/console/api";
const STATES = ["PENDING", "STOCK_RESERVED", "PAID", "FAILED", "CANCELLED", "EXPIRED"];
const LANES = ["svc-order", "svc-product", "svc-payment", "svc-settlement"];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const SAGA_REFRESH_MS = 2000;
const DEAD_LETTER_REFRESH_MS = 3000;

// ---------------------------------------------------------------------------------------------
// Small helpers

/** `el("td", {class: "x", dataset: {orderId}}, "text", node)`: children are text or nodes. */
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const byTestId = (id, root = document) => root.querySelector(`[data-testid="${id}"]`);

/** Integer won with thousands separators, by string manipulation: money never goes through a float. */
function formatWon(amount) {
  if (amount === null || amount === undefined) return "—";
  if (!Number.isSafeInteger(amount)) return String(amount);
  const digits = String(Math.abs(amount)).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return `${amount < 0 ? "-" : ""}₩${digits}`;
}

function formatMs(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "—";
  const sign = ms < 0 ? "-" : "";
  ms = Math.abs(ms);
  if (ms < 1000) return `${sign}${Math.round(ms)} ms`;
  if (ms < 60_000) return `${sign}${(ms / 1000).toFixed(1)} s`;
  const s = Math.floor(ms / 1000);
  if (s < 3600) return `${sign}${Math.floor(s / 60)} min ${s % 60} s`;
  return `${sign}${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function formatTime(rfc3339) {
  if (!rfc3339) return "—";
  const d = new Date(rfc3339);
  if (Number.isNaN(d.getTime())) return String(rfc3339);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

function sinceNow(rfc3339) {
  const t = new Date(rfc3339).getTime();
  return Number.isNaN(t) ? "—" : `${formatMs(Date.now() - t)} ago`;
}

const shortId = (id) => (typeof id === "string" && id.length > 13 ? `${id.slice(0, 8)}…${id.slice(-4)}` : String(id ?? "—"));

function statusPill(status) {
  return el("span", { class: `status status-${String(status).toLowerCase()}`, dataset: { testid: "status" } }, status ?? "—");
}

function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.code = problem?.code ?? null;
    this.problem = problem;
  }
}

/** Calls the console API; a 401 (outside the login itself) sends the page to its login form. */
async function api(path, { method = "GET", body, login = false } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(API + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (res.status === 401 && !login) showLogin();
  if (!res.ok) throw new ApiError(res.status, json);
  return json;
}

// ---------------------------------------------------------------------------------------------
// State

const state = {
  me: null,
  view: null,
  sagaId: null,
  filters: { state: "", user: "", product: "" },
  stuckSecs: 10,
  source: null,
  retryMs: 1000,
  retryTimer: null,
  sagaTimer: null,
  sagaSignature: null,
  overview: null,
  deadLetterTimer: null,
  deadLetterCards: new Map(),
};

// ---------------------------------------------------------------------------------------------
// Session

function setConnection(what) {
  const node = byTestId("conn-status");
  node.dataset.state = what;
  node.textContent = { connected: "live", reconnecting: "reconnecting…", connecting: "connecting…", offline: "offline" }[what] ?? what;
}

function showLogin() {
  state.me = null;
  disconnect();
  stopTimers();
  setConnection("offline");
  byTestId("nav").hidden = true;
  byTestId("logout").hidden = true;
  byTestId("who").textContent = "";
  for (const view of document.querySelectorAll(".view")) view.hidden = view.id !== "view-login";
  byTestId("login-email").focus();
}

function signedIn(me) {
  state.me = me;
  byTestId("nav").hidden = false;
  byTestId("logout").hidden = false;
  byTestId("who").textContent = me.email ?? `${me.role} ${shortId(me.userId)}`;
  byTestId("view-login").hidden = true;
  connect();
  route();
}

async function onLogin(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const error = byTestId("login-error");
  error.hidden = true;
  const submit = byTestId("login-submit");
  submit.disabled = true;
  try {
    const me = await api("/login", {
      method: "POST",
      body: { email: form.email.value.trim(), password: form.password.value },
      login: true,
    });
    form.password.value = "";
    signedIn(me);
  } catch (err) {
    error.textContent =
      err.status === 401 ? "Wrong email or password." : err.status === 403 ? "This account is not an admin." : `Sign-in failed: ${err.message}`;
    error.hidden = false;
  } finally {
    submit.disabled = false;
  }
}

async function onLogout() {
  try {
    await api("/logout", { method: "POST", login: true });
  } catch {
    // Signed out locally whatever the server said.
  }
  showLogin();
}

// ---------------------------------------------------------------------------------------------
// The live stream: overview, feed and stuck every second

function streamQuery() {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(state.filters)) if (value) q.set(key, value);
  q.set("stuckSecs", String(state.stuckSecs));
  return q.toString();
}

function connect() {
  disconnect();
  setConnection("connecting");
  const source = new EventSource(`${API}/stream?${streamQuery()}`);
  state.source = source;
  const handle = (render) => (event) => {
    if (source !== state.source) return;
    state.retryMs = 1000;
    setConnection("connected");
    let data;
    try {
      data = JSON.parse(event.data);
    } catch {
      return;
    }
    render(data);
  };
  source.addEventListener("open", () => source === state.source && setConnection("connected"));
  source.addEventListener("overview", handle(renderOverview));
  source.addEventListener("feed", handle(renderFeed));
  source.addEventListener("stuck", handle(renderStuck));
  source.addEventListener("error", () => {
    if (source !== state.source) return;
    setConnection("reconnecting");
    // EventSource retries by itself after a dropped connection, but gives up for good on an
    // answer that is not a stream (401 once the session expired, 400, 5xx): find out which.
    if (source.readyState === EventSource.CLOSED) {
      source.close();
      state.source = null;
      scheduleReconnect();
    }
  });
}

function disconnect() {
  clearTimeout(state.retryTimer);
  if (state.source) state.source.close();
  state.source = null;
}

function scheduleReconnect() {
  clearTimeout(state.retryTimer);
  const wait = state.retryMs;
  state.retryMs = Math.min(state.retryMs * 2, 10_000);
  state.retryTimer = setTimeout(async () => {
    try {
      await api("/me"); // a 401 shows the login form
      connect();
    } catch (err) {
      if (err.status !== 401) scheduleReconnect();
    }
  }, wait);
}

// ---------------------------------------------------------------------------------------------
// Overview

function renderOverview(overview) {
  state.overview = overview;
  byTestId("overview-at").textContent = `as of ${formatTime(overview.at)}`;
  const cards = STATES.map((s) =>
    el(
      "div",
      { class: `state-card state-${s.toLowerCase()}`, dataset: { testid: `state-card-${s}` } },
      el("div", { class: "state-name" }, s.replace("_", " ")),
      el("div", { class: "state-count", dataset: { testid: `count-${s}` } }, String(overview.sagas?.[s] ?? 0)),
    ),
  );
  const rate = typeof overview.ordersPerSecond === "number" ? overview.ordersPerSecond.toFixed(1) : "—";
  cards.push(
    el(
      "div",
      { class: "state-card state-rate", dataset: { testid: "state-card-rate" } },
      el("div", { class: "state-name" }, "orders / s (10 s)"),
      el("div", { class: "state-count", dataset: { testid: "orders-per-second" } }, rate),
    ),
  );
  byTestId("state-cards").replaceChildren(...cards);

  const rows = (overview.services ?? []).map(serviceRow);
  byTestId("services").tBodies[0].replaceChildren(...rows);

  const unreplayed = (overview.services ?? []).reduce((n, s) => n + (s.deadLetters?.unreplayed ?? 0), 0);
  const badge = byTestId("dl-badge");
  badge.hidden = unreplayed === 0;
  badge.textContent = String(unreplayed);
}

const small = (cls, text) => el("span", { class: `${cls} small` }, text);
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

/** One service's row of the overview: "—" wherever the service did not answer. */
function serviceRow(s) {
  const health = [el("span", { class: `health ${s.up ? "up" : "down"}` }, s.up ? "up" : "down")];
  if (s.error) health.push(el("div", { class: "error small" }, s.error));
  const outbox = s.outbox ? [String(s.outbox.unpublished)] : ["—"];
  if (s.outbox?.oldest) outbox.push(small("muted", ` oldest ${formatMs(Date.now() - s.outbox.oldest)}`));
  const consumers = s.consumers ?? [];
  const lag = [s.lag === null || s.lag === undefined ? "—" : String(s.lag)];
  if (consumers.length) lag.push(small("muted", ` over ${plural(consumers.length, "consumer")}`));
  const lagDetail = consumers.map((c) => `${c.name}: ${c.pending} pending, ${c.ackPending} unacked`).join("\n");
  const dead = s.deadLetters ? [String(s.deadLetters.total)] : ["—"];
  if (s.deadLetters?.unreplayed) dead.push(small("warn", ` (${s.deadLetters.unreplayed} not replayed)`));
  const breaker = s.gateway
    ? el("span", { class: `breaker breaker-${String(s.gateway.breaker).toLowerCase()}`, title: s.gateway.url ?? "" }, s.gateway.breaker)
    : "—";
  return el(
    "tr",
    { dataset: { testid: `service-${s.name}`, up: String(Boolean(s.up)) } },
    el("td", {}, el("strong", {}, s.name)),
    el("td", { title: s.error ?? "" }, health),
    el("td", {}, s.version ?? "—"),
    el("td", { dataset: { testid: "outbox" } }, outbox),
    el("td", { title: lagDetail, dataset: { testid: "lag" } }, lag),
    el("td", { dataset: { testid: "dead-letters" } }, dead),
    el("td", {}, breaker),
  );
}

// ---------------------------------------------------------------------------------------------
// Feed and stuck: tables of sagas, rows kept by order id so a click survives a refresh

function openSaga(orderId) {
  location.hash = `#/saga/${encodeURIComponent(orderId)}`;
}

function lastEventCell(saga) {
  const last = saga.lastEvent;
  if (!last) return el("td", { class: "muted" }, "none yet");
  return el("td", {}, el("code", {}, last.type), el("span", { class: "muted small" }, ` by ${last.producer}, ${sinceNow(last.occurredAt)}`));
}

/** Who the saga waits on and, from the latest overview, why that one may be slow. */
function waitingCell(saga) {
  if (!saga.waitingOn) return el("td", {}, el("span", { class: "muted", dataset: { testid: "waiting-on" } }, "—"));
  const service = state.overview?.services?.find((s) => s.name === saga.waitingOn);
  let hint = null;
  if (service && !service.up) hint = "down";
  else if (service?.gateway && service.gateway.breaker !== "CLOSED") hint = `gateway breaker ${service.gateway.breaker}`;
  else if (service?.lag) hint = `lag ${service.lag}`;
  return el(
    "td",
    {},
    el("span", { class: "lane-tag", dataset: { testid: "waiting-on" } }, saga.waitingOn),
    hint ? el("span", { class: "warn small" }, ` ${hint}`) : null,
  );
}

function orderCell(saga) {
  return el("td", { title: saga.orderId }, el("a", { href: `#/saga/${encodeURIComponent(saga.orderId)}`, class: "mono" }, shortId(saga.orderId)));
}

/** Puts one `<tr>` per item in `tbody`, reusing the row of the same order. */
function renderRows(tbody, sagas, cells, rowTestId) {
  const existing = new Map([...tbody.rows].map((row) => [row.dataset.orderId, row]));
  const rows = sagas.map((saga) => {
    const row = existing.get(saga.orderId) ?? el("tr", { class: "clickable", dataset: { testid: rowTestId, orderId: saga.orderId } });
    row.dataset.status = saga.status;
    row.replaceChildren(...cells(saga));
    return row;
  });
  for (const [id, row] of existing) if (!sagas.some((s) => s.orderId === id)) row.remove();
  rows.forEach((row, i) => {
    if (tbody.rows[i] !== row) tbody.insertBefore(row, tbody.rows[i] ?? null);
  });
}

function renderFeed({ sagas = [] }) {
  renderRows(byTestId("feed").tBodies[0], sagas, (s) => [
    orderCell(s),
    el("td", {}, statusPill(s.status), s.failureReason ? el("div", { class: "muted small" }, s.failureReason) : null),
    lastEventCell(s),
    waitingCell(s),
    el("td", { class: "num" }, formatWon(s.amount)),
    el("td", { class: "num" }, String(s.quantity)),
    el("td", { class: "num" }, formatMs(s.ageMs)),
    el("td", { title: s.updatedAt }, formatTime(s.updatedAt)),
  ], "feed-row");
  byTestId("feed-empty").hidden = sagas.length > 0;
}

function renderStuck({ olderThanSecs, sagas = [] }) {
  renderRows(byTestId("stuck").tBodies[0], sagas, (s) => [
    orderCell(s),
    el("td", {}, statusPill(s.status)),
    waitingCell(s),
    lastEventCell(s),
    el("td", { class: "num" }, formatMs(s.ageMs)),
    el("td", { title: s.deadlineAt }, formatTime(s.deadlineAt)),
    el("td", { class: "num" }, formatWon(s.amount)),
  ], "stuck-row");
  byTestId("stuck-empty").hidden = sagas.length > 0;
  byTestId("stuck-summary").textContent = `${sagas.length} saga${sagas.length === 1 ? "" : "s"} older than ${olderThanSecs} s`;
  const badge = byTestId("stuck-badge");
  badge.hidden = sagas.length === 0;
  badge.textContent = String(sagas.length);
}

function onRowClick(event) {
  if (event.target.closest("a")) return; // the link navigates by itself
  const row = event.target.closest("tr[data-order-id]");
  if (row) openSaga(row.dataset.orderId);
}

const applyFilters = debounce(() => {
  const form = byTestId("feed-filters");
  const next = { state: form.state.value, user: form.user.value.trim(), product: form.product.value.trim() };
  const bad = ["user", "product"].filter((k) => next[k] && !UUID.test(next[k]));
  const error = byTestId("filter-error");
  error.hidden = bad.length === 0;
  error.textContent = bad.length ? `Not a UUID: ${bad.join(", ")} id` : "";
  if (bad.length || JSON.stringify(next) === JSON.stringify(state.filters)) return;
  state.filters = next;
  byTestId("feed").tBodies[0].replaceChildren(); // no stale rows under the new filters
  connect();
}, 300);

const applyThreshold = debounce(() => {
  const n = Math.floor(Number(byTestId("stuck-threshold").value));
  if (!Number.isFinite(n) || n < 1 || n === state.stuckSecs) return;
  state.stuckSecs = n;
  byTestId("stuck").tBodies[0].replaceChildren();
  connect();
}, 300);

// ---------------------------------------------------------------------------------------------
// Saga view: facts, a swimlane timeline, the watch commands

async function loadSaga(orderId) {
  if (state.view !== "saga" || state.sagaId !== orderId) return;
  const error = byTestId("saga-error");
  try {
    const saga = await api(`/sagas/${encodeURIComponent(orderId)}`);
    if (state.view !== "saga" || state.sagaId !== orderId) return;
    error.hidden = true;
    renderSaga(saga);
  } catch (err) {
    if (state.view !== "saga" || state.sagaId !== orderId) return;
    if (err.status === 401) return;
    error.textContent = err.status === 404 ? "No order and no event with this id." : `Cannot load the saga: ${err.message}`;
    error.hidden = false;
  } finally {
    clearTimeout(state.sagaTimer);
    if (state.view === "saga" && state.sagaId === orderId) state.sagaTimer = setTimeout(() => loadSaga(orderId), SAGA_REFRESH_MS);
  }
}

function fact(label, value, testid) {
  return el("div", { class: "fact" }, el("dt", {}, label), el("dd", { dataset: testid ? { testid } : {} }, value));
}

function renderSaga({ order, events = [], watch = [] }) {
  byTestId("saga-status").replaceChildren(order ? statusPill(order.status) : el("span", { class: "muted" }, "no order"));
  byTestId("saga-status").dataset.status = order?.status ?? "";
  byTestId("saga-facts").replaceChildren(
    order
      ? el(
          "dl",
          { class: "facts" },
          fact("Status", order.status, "saga-fact-status"),
          fact("Waiting on", order.waitingOn ?? "nobody", "saga-fact-waiting"),
          fact("Failure", order.failureReason ?? "—"),
          fact("Amount", formatWon(order.amount), "saga-fact-amount"),
          fact("Quantity", String(order.quantity)),
          fact("User", el("code", {}, order.userId)),
          fact("Product", el("code", {}, order.productId)),
          fact("Created", `${formatTime(order.createdAt)} (${formatMs(order.ageMs)} ago)`),
          fact("Updated", formatTime(order.updatedAt)),
          fact("Deadline", formatTime(order.deadlineAt)),
        )
      : el("p", { class: "muted" }, "svc-order holds no order with this id; these are the events seen for it."),
  );
  byTestId("saga-watch").textContent = watch.join("\n");

  // Redraw the timeline only when it changed, so an expanded event stays expanded.
  const signature = events.map((e) => e.id).join(",");
  if (signature === state.sagaSignature) return;
  state.sagaSignature = signature;
  renderTimeline(events);
}

function renderTimeline(events) {
  const container = byTestId("timeline");
  const open = new Set([...container.querySelectorAll("details[open]")].map((d) => d.dataset.eventId));
  const lanes = [...LANES];
  for (const e of events) if (!lanes.includes(e.producer)) lanes.push(e.producer);
  const byId = new Map(events.map((e) => [e.id, e]));

  const grid = el("div", { class: "lanes", style: `grid-template-columns: 7.5rem repeat(${lanes.length}, minmax(10rem, 1fr))` });
  grid.append(el("div", { class: "lane-head gutter" }, "since start"));
  for (const lane of lanes) grid.append(el("div", { class: "lane-head", dataset: { testid: `lane-${lane}` } }, lane));
  events.forEach((e, i) => {
    const row = i + 2;
    grid.append(
      el(
        "div",
        { class: "gutter", style: `grid-row: ${row}` },
        el("div", { class: "since-start" }, `+${formatMs(e.sinceStartMs)}`),
        // A long wait between two steps is where a saga was held up: make it stand out.
        i > 0
          ? el("div", { class: e.sincePreviousMs >= 1000 ? "small slow" : "muted small", title: "since the previous event" }, `Δ ${formatMs(e.sincePreviousMs)}`)
          : null,
      ),
    );
    const cause = e.causationId ? byId.get(e.causationId) : null;
    const lane = lanes.indexOf(e.producer);
    grid.append(
      el(
        "div",
        {
          class: "event",
          style: `grid-row: ${row}; grid-column: ${lane + 2}`,
          id: `event-${e.id}`,
          dataset: { testid: "timeline-event", eventId: e.id, eventType: e.type, producer: e.producer, causationId: e.causationId ?? "" },
        },
        el("div", { class: "event-type", title: e.subject }, e.type),
        el("div", { class: "small" }, formatTime(e.occurredAt), el("span", { class: "muted", title: e.id }, ` · id ${shortId(e.id)}`)),
        e.subject !== `${e.type}.${state.sagaId}` ? el("div", { class: "muted small mono" }, e.subject) : null,
        causeLine(e, cause),
        el(
          "details",
          { dataset: { eventId: e.id }, open: open.has(e.id) },
          el("summary", {}, "envelope"),
          el("pre", { class: "json" }, JSON.stringify(e.envelope, null, 2)),
        ),
      ),
    );
  });
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.classList.add("links");
  const wrap = el("div", { class: "timeline-wrap" }, grid, svg);
  container.replaceChildren(events.length ? wrap : el("p", { class: "muted" }, "No event recorded yet."));
  drawCausation(wrap);
}

function causeLine(event, cause) {
  if (!event.causationId) return el("div", { class: "cause small muted" }, "root");
  const what = cause
    ? el("code", {}, cause.type)
    : el("span", { class: "muted", title: event.causationId }, `${shortId(event.causationId)} (not in this saga)`);
  return el("div", { class: "cause small" }, "caused by ", what);
}

/** Draws a curve from each event's cause to it, over the grid. */
function drawCausation(wrap) {
  const svg = wrap.querySelector("svg.links");
  if (!svg) return;
  const box = wrap.getBoundingClientRect();
  svg.setAttribute("width", String(box.width));
  svg.setAttribute("height", String(box.height));
  svg.replaceChildren();
  for (const node of wrap.querySelectorAll(".event[data-causation-id]")) {
    const causeId = node.dataset.causationId;
    if (!causeId) continue;
    const cause = wrap.querySelector(`.event[data-event-id="${CSS.escape(causeId)}"]`);
    if (!cause) continue;
    const a = cause.getBoundingClientRect();
    const b = node.getBoundingClientRect();
    const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
    if (Math.abs(a.left - b.left) < 4) {
      // Same lane: a straight line down the card's left side.
      const x = a.left + 12 - box.left;
      path.setAttribute("d", `M ${x} ${a.bottom - box.top} L ${x} ${b.top - box.top}`);
    } else {
      // Down from the cause's bottom, then across into the side of the effect that faces it.
      const x1 = a.left + a.width / 2 - box.left;
      const y1 = a.bottom - box.top;
      const x2 = (b.left > a.left ? b.left : b.right) - box.left;
      const y2 = b.top + 16 - box.top;
      path.setAttribute("d", `M ${x1} ${y1} C ${x1} ${y2}, ${x1} ${y2}, ${x2} ${y2}`);
    }
    svg.append(path);
  }
}

// ---------------------------------------------------------------------------------------------
// Dead letters: cards kept by service/seq, so an edited payload survives a refresh

async function loadDeadLetters() {
  clearTimeout(state.deadLetterTimer);
  if (state.view !== "dead-letters") return;
  try {
    renderDeadLetters(await api("/dead-letters"));
  } catch (err) {
    if (err.status !== 401) byTestId("dl-services").replaceChildren(el("p", { class: "error" }, `Cannot list dead letters: ${err.message}`));
  } finally {
    if (state.view === "dead-letters") state.deadLetterTimer = setTimeout(loadDeadLetters, DEAD_LETTER_REFRESH_MS);
  }
}

function prettyPayload(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

function renderDeadLetters({ services = [], deadLetters = [] }) {
  byTestId("dl-services").replaceChildren(
    ...services.map((s) =>
      el(
        "div",
        { class: "dl-service", dataset: { testid: `dl-service-${s.service}` } },
        el("strong", {}, s.service),
        " ",
        s.error ? el("span", { class: "error small" }, s.error) : el("span", { class: "count" }, String(s.total)),
      ),
    ),
  );
  const list = byTestId("dl-list");
  const showReplayed = byTestId("dl-show-replayed").checked;
  const keep = new Set();
  deadLetters.forEach((d, i) => {
    const key = `${d.service}/${d.seq}`;
    keep.add(key);
    let card = state.deadLetterCards.get(key);
    if (!card) {
      card = deadLetterCard(d);
      state.deadLetterCards.set(key, card);
    }
    updateDeadLetterCard(card, d);
    card.node.hidden = Boolean(d.replayedAt) && !showReplayed;
    if (list.children[i] !== card.node) list.insertBefore(card.node, list.children[i] ?? null);
  });
  for (const [key, card] of state.deadLetterCards) {
    if (!keep.has(key)) {
      card.node.remove();
      state.deadLetterCards.delete(key);
    }
  }
  byTestId("dl-empty").hidden = deadLetters.length > 0;
}

function orderIdOfSubject(subject) {
  const last = String(subject ?? "").split(".").pop();
  return UUID.test(last) ? last : null;
}

function deadLetterCard(d) {
  const payload = el("textarea", { class: "payload mono", rows: "10", spellcheck: "false", dataset: { testid: "dl-payload" } });
  payload.value = prettyPayload(d.payload);
  const card = { node: null, dirty: false, stored: d.payload, payload };
  payload.addEventListener("input", () => {
    card.dirty = payload.value !== prettyPayload(card.stored);
    card.node.classList.toggle("edited", card.dirty);
  });
  const result = el("p", { class: "small", dataset: { testid: "dl-result" }, role: "status" });
  const replay = el("button", { type: "button", class: "primary", dataset: { testid: "dl-replay" } }, "Replay");
  const reset = el(
    "button",
    {
      type: "button",
      class: "link",
      dataset: { testid: "dl-reset" },
      onclick: () => {
        payload.value = prettyPayload(card.stored);
        card.dirty = false;
        card.node.classList.remove("edited");
      },
    },
    "Reset payload",
  );
  replay.addEventListener("click", () => replayDeadLetter(card, replay, result));
  const orderId = orderIdOfSubject(d.subject);
  card.status = el("span", { dataset: { testid: "dl-status" } });
  card.deliveries = el("span", {});
  card.node = el(
    "article",
    { class: "card dead-letter", dataset: { testid: "dead-letter", service: d.service, seq: String(d.seq), messageId: d.messageId ?? "", subject: d.subject } },
    el(
      "header",
      { class: "dl-head" },
      el("span", { class: "lane-tag" }, d.service),
      el("strong", {}, ` #${d.seq}`),
      el("code", { class: "dl-subject" }, d.subject),
      card.status,
    ),
    el(
      "dl",
      { class: "facts" },
      fact("Consumer", d.consumer),
      fact("Message id", d.messageId ?? "none"),
      fact("Stream seq", String(d.streamSeq)),
      fact("Deliveries", card.deliveries),
      fact("Refused at", formatTime(d.createdAt)),
      orderId ? fact("Saga", el("a", { href: `#/saga/${orderId}`, dataset: { testid: "dl-open-saga" } }, shortId(orderId))) : null,
    ),
    el("div", { class: "reason-label" }, "Reason"),
    el("pre", { class: "reason", dataset: { testid: "dl-reason" } }, d.reason),
    el("div", { class: "reason-label" }, "Payload ", el("span", { class: "muted small" }, "(edit to fix it, then replay)")),
    payload,
    el("div", { class: "actions" }, replay, reset, result),
  );
  return card;
}

function updateDeadLetterCard(card, d) {
  card.deliveries.textContent = String(d.deliveries);
  card.node.dataset.replayed = String(Boolean(d.replayedAt));
  card.status.className = d.replayedAt ? "status status-paid" : "status status-failed";
  card.status.textContent = d.replayedAt ? `replayed ${formatTime(d.replayedAt)}` : "not replayed";
  if (card.stored !== d.payload && !card.dirty) {
    card.stored = d.payload;
    card.payload.value = prettyPayload(d.payload);
  }
}

async function replayDeadLetter(card, button, result) {
  result.className = "small";
  let body = {};
  if (card.dirty) {
    try {
      JSON.parse(card.payload.value);
    } catch (err) {
      result.className = "small error";
      result.textContent = `Not JSON: ${err.message}`;
      return;
    }
    body = { payload: card.payload.value };
  }
  button.disabled = true;
  result.textContent = "Publishing…";
  const { service, seq } = card.node.dataset;
  try {
    const answer = await api(`/dead-letters/${encodeURIComponent(service)}/${encodeURIComponent(seq)}/replay`, { method: "POST", body });
    const marked = (answer.marked ?? []).map((m) => `${m.service} #${m.seq}`).join(", ") || "none";
    result.className = "small ok";
    result.dataset.outcome = "published";
    result.textContent = `Published ${answer.messageId} on ${answer.subject} as ${answer.publishedBy}; marked replayed: ${marked}.`;
    card.dirty = false;
    card.node.classList.remove("edited");
    loadDeadLetters();
  } catch (err) {
    result.className = "small error";
    result.dataset.outcome = "refused";
    result.textContent = `Refused (${err.status}${err.code ? ` ${err.code}` : ""}): ${err.message}`;
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------------
// Routing: #/overview, #/feed, #/stuck, #/dead-letters, #/saga/<orderId>

function stopTimers() {
  clearTimeout(state.sagaTimer);
  clearTimeout(state.deadLetterTimer);
}

function route() {
  if (!state.me) return;
  const [, view = "overview", arg] = location.hash.split("/");
  const known = ["overview", "feed", "stuck", "dead-letters", "saga"];
  const next = known.includes(view) ? view : "overview";
  stopTimers();
  state.view = next;
  for (const section of document.querySelectorAll(".view")) section.hidden = section.id !== `view-${next}`;
  for (const link of document.querySelectorAll(".tabs a")) link.classList.toggle("active", link.dataset.view === next);
  const sagaTab = byTestId("nav-saga");
  if (next === "saga" && arg) {
    const id = decodeURIComponent(arg);
    if (id !== state.sagaId) {
      state.sagaSignature = null;
      byTestId("timeline").replaceChildren();
      byTestId("saga-facts").replaceChildren();
      byTestId("saga-status").replaceChildren();
    }
    state.sagaId = id;
    byTestId("saga-id").textContent = id;
    sagaTab.hidden = false;
    sagaTab.href = `#/saga/${encodeURIComponent(id)}`;
    loadSaga(id);
  } else if (next === "saga") {
    location.hash = "#/feed";
  }
  if (next === "dead-letters") loadDeadLetters();
}

async function boot() {
  byTestId("login-form").addEventListener("submit", onLogin);
  byTestId("logout").addEventListener("click", onLogout);
  byTestId("feed").addEventListener("click", onRowClick);
  byTestId("stuck").addEventListener("click", onRowClick);
  const filters = byTestId("feed-filters");
  filters.addEventListener("input", applyFilters);
  filters.addEventListener("change", applyFilters);
  filters.addEventListener("submit", (e) => e.preventDefault());
  byTestId("filter-clear").addEventListener("click", () => {
    filters.reset();
    applyFilters();
  });
  const threshold = byTestId("stuck-filters");
  threshold.addEventListener("input", applyThreshold);
  threshold.addEventListener("submit", (e) => e.preventDefault());
  byTestId("dl-refresh").addEventListener("click", loadDeadLetters);
  byTestId("dl-show-replayed").addEventListener("change", loadDeadLetters);
  window.addEventListener("hashchange", route);
  window.addEventListener("resize", debounce(() => {
    const wrap = document.querySelector(".timeline-wrap");
    if (wrap) drawCausation(wrap);
  }, 100));
  document.addEventListener("toggle", (e) => {
    const wrap = e.target.closest?.(".timeline-wrap");
    if (wrap) drawCausation(wrap);
  }, true);
  try {
    signedIn(await api("/me", { login: true }));
  } catch {
    showLogin();
  }
}

document.addEventListener("DOMContentLoaded", boot);
