// The mock server's dashboard: plain JavaScript, no build step, no library. Everything it
// shows and changes goes through the control API (JSON under /_mock), as any client's would.
"use strict";

(() => {
  const CONTROL = meta("mock-control");
  const CSRF = meta("mock-csrf");
  const PAGE = 50; // requests a page of the list shows
  const RECORDS_PAGE = 20;
  const SHOWN_BYTES = 100000; // a body longer than this (pretty-printed) is cut on screen
  const POLL_MS = 1000;

  const state = {
    session: new URLSearchParams(location.search).get("session") || "default",
    panel: "requests",
    requests: { offset: 0, last: null, byId: new Map(), selected: null },
    records: { offset: 0, label: "records", byId: new Map() },
    operations: [],
    health: null,
  };

  class ProblemError extends Error {
    constructor(status, problem) {
      super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
      this.status = status;
      this.problem = problem || {};
    }
  }

  // ------------------------------------------------------------------ helpers

  function meta(name) {
    const found = document.querySelector(`meta[name="${name}"]`);
    return found ? found.content : "";
  }

  function $(selector, root = document) {
    return root.querySelector(selector);
  }

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function notice(text) {
    $("#notice").textContent = text;
  }

  async function api(method, path, { params = {}, body } = {}) {
    const url = new URL(CONTROL + path, location.origin);
    url.searchParams.set("session", state.session);
    for (const [key, value] of Object.entries(params)) {
      if (value !== "" && value !== null && value !== undefined && value !== false) {
        url.searchParams.set(key, value);
      }
    }
    const headers = {};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET" && CSRF) headers["X-CSRF-Token"] = CSRF;
    const answer = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
    if (answer.status === 401) {
      location.reload(); // the cookie is gone or void: the login form
      throw new ProblemError(401, null);
    }
    const text = await answer.text();
    const data = text ? JSON.parse(text) : null;
    if (!answer.ok) throw new ProblemError(answer.status, data);
    return data;
  }

  function problemLines(error) {
    const errors = error.problem && error.problem.errors;
    const lines = [error.message];
    if (errors) {
      for (const [field, messages] of Object.entries(errors)) {
        lines.push(`${field}: ${messages.join(" ")}`);
      }
    }
    return lines;
  }

  function showError(target, error) {
    target.replaceChildren(...problemLines(error).map((line) => el("span", { text: line })));
  }

  function pretty(value) {
    const text = typeof value === "string" ? value : JSON.stringify(value, null, 2);
    return text === undefined ? "" : text;
  }

  function sized(bytes) {
    return bytes >= 1024 ? `${(bytes / 1024).toFixed(1)} KiB` : `${bytes} bytes`;
  }

  // ------------------------------------------------------------------ routing

  const PANELS = ["requests", "faults", "coverage", "records", "health"];

  function route() {
    const hash = location.hash.replace(/^#/, "") || "requests";
    const [head, query = ""] = hash.split("?");
    const [panel, id] = head.split("/");
    const name = PANELS.includes(panel) ? panel : "requests";
    show(name);
    if (name === "requests") {
      if (query) applyFilters(new URLSearchParams(query));
      if (id) selectRequest(Number(id));
    }
    if (name === "records" && id) selectRecord(decodeURIComponent(id));
    return refresh();
  }

  function show(panel) {
    state.panel = panel;
    for (const name of PANELS) {
      $(`#panel-${name}`).hidden = name !== panel;
      const tab = $(`#tab-${name}`);
      tab.setAttribute("aria-selected", String(name === panel));
      if (name === panel) tab.setAttribute("aria-current", "page");
      else tab.removeAttribute("aria-current");
    }
  }

  async function refresh() {
    try {
      if (state.panel === "requests") await loadRequests();
      else if (state.panel === "faults") await loadFaults();
      else if (state.panel === "coverage") await loadCoverage();
      else if (state.panel === "records") await loadRecords();
      else if (state.panel === "health") await loadHealth();
    } catch (error) {
      notice(problemLines(error).join(" "));
    }
  }

  // ------------------------------------------------------------------ sessions and health

  async function loadSessions() {
    const { data } = await api("GET", "/sessions");
    const select = $("#session");
    const names = data.map((one) => one.name);
    if (!names.includes(state.session)) names.push(state.session);
    select.replaceChildren(
      ...names.sort().map((name) => el("option", { value: name, selected: name === state.session }, name)),
    );
    return data;
  }

  async function loadHealth() {
    const health = (state.health = await api("GET", "/health"));
    $("#spec-title").textContent = `· ${health.spec.title} ${health.spec.version}`;
    const facts = [
      ["Spec", `${health.spec.title} ${health.spec.version}`],
      ["Spec file", health.spec.path],
      ["sha256", health.spec.sha256],
      ["Repairs", (health.spec.repairs || []).join("; ") || "none"],
      ["Mode", health.mode],
      ["Auth", health.auth],
      ["Session", health.session],
      ["Records", health.records ?? "–"],
      ["Event types", health.eventTypes ?? "–"],
      ["Fault rules", health.faults],
      ["Journal entries", health.journal],
      ["Uptime", `${Math.round(health.uptimeSeconds)} s`],
      ["Non-conforming answers", health.responseFindings ?? "not checked (--check-responses is off)"],
    ];
    $("#health-list").replaceChildren(
      ...facts.flatMap(([term, value]) => [el("dt", { text: term }), el("dd", { text: String(value) })]),
    );
    const { settings } = await api("GET", "/settings");
    $("#settings-list").replaceChildren(
      ...Object.entries(settings).flatMap(([name, value]) => [
        el("dt", {}, el("code", { text: `--${name}` })),
        el("dd", { text: value === null ? "not set" : Array.isArray(value) ? value.join(", ") || "none" : String(value) }),
      ]),
    );
    const sessions = await loadSessions();
    $("#sessions-table tbody").replaceChildren(
      ...sessions.map((one) =>
        el(
          "tr",
          {},
          el("td", {}, el("a", { href: `?session=${encodeURIComponent(one.name)}#health` }, one.name)),
          el("td", { text: one.records ?? "–" }),
          el("td", { text: one.journal }),
          el("td", { text: one.faults }),
        ),
      ),
    );
  }

  // ------------------------------------------------------------------ requests

  function filters() {
    const form = $("#request-filters");
    return {
      method: form.method.value,
      path: form.path.value.trim(),
      operation: form.operation.value,
      status: form.status.value.trim(),
      refused: form.refused.checked ? "true" : "",
      faulted: form.faulted.checked ? "true" : "",
    };
  }

  function applyFilters(query) {
    const form = $("#request-filters");
    form.reset();
    for (const name of ["method", "path", "status"]) form[name].value = query.get(name) || "";
    const operation = query.get("operation") || "";
    if (operation && ![...form.operation.options].some((o) => o.value === operation)) {
      form.operation.append(el("option", { value: operation }, operation));
    }
    form.operation.value = operation;
    form.refused.checked = query.get("refused") === "true";
    form.faulted.checked = query.get("faulted") === "true";
    state.requests.offset = 0;
  }

  let requestsAsked = 0; // an answer to an older question is dropped

  async function loadRequests() {
    const errorBox = $("#requests-error");
    const asked = ++requestsAsked;
    let page;
    try {
      page = await api("GET", "/requests", {
        params: { ...filters(), order: "newest", limit: PAGE, offset: state.requests.offset },
      });
      if (asked !== requestsAsked) return;
      errorBox.textContent = "";
    } catch (error) {
      if (!(error instanceof ProblemError)) throw error;
      if (asked === requestsAsked) showError(errorBox, error);
      return;
    }
    state.requests.last = page.last;
    for (const entry of page.data) state.requests.byId.set(entry.id, entry);
    $("#requests-table tbody").replaceChildren(...page.data.map(requestRow));
    const first = page.total ? state.requests.offset + 1 : 0;
    const last = state.requests.offset + page.data.length;
    const pager = $("#requests-pager");
    $(".count", pager).textContent = `${first}–${last} of ${page.total}`;
    pager.querySelector('[data-step="-1"]').disabled = state.requests.offset === 0;
    pager.querySelector('[data-step="1"]').disabled = last >= page.total;
    if (!document.body.dataset.firstPageMs) {
      document.body.dataset.firstPageMs = performance.now().toFixed(1); // bench/ui.py reads it
    }
    if (state.requests.byId.size > 2000) state.requests.byId = new Map(page.data.map((e) => [e.id, e]));
  }

  function statusClass(status) {
    if (status === 0) return "s0";
    return `s${String(status)[0]}`;
  }

  function requestRow(entry) {
    const target = entry.query ? `${entry.path}?${entry.query}` : entry.path;
    const selected = entry.id === state.requests.selected;
    return el(
      "tr",
      { class: selected ? "selected" : "", dataset: { id: entry.id }, "aria-selected": String(selected) },
      el("td", { text: entry.id }),
      el("td", { class: "wide", text: entry.time.slice(11, 23) }),
      el("td", { text: entry.method }),
      el("td", { class: "path" }, el("a", { href: `#requests/${entry.id}`, title: target }, target)),
      el("td", {}, el("span", { class: `status ${statusClass(entry.status)}` }, entry.status || "none")),
      el("td", { class: "wide", text: entry.operation || "–" }),
      el("td", { class: "wide", text: entry.durationMs.toFixed(1) }),
      el("td", { text: entry.fault || "" }),
    );
  }

  async function selectRequest(id) {
    state.requests.selected = id;
    let entry = state.requests.byId.get(id);
    if (!entry) {
      const page = await api("GET", "/requests", { params: { after: id - 1, limit: 1 } });
      entry = page.data.find((one) => one.id === id);
    }
    const detail = $("#request-detail");
    detail.hidden = false;
    if (!entry) {
      detail.replaceChildren(el("p", { text: `Request ${id} is no longer in the journal.` }));
      return;
    }
    detail.replaceChildren(...requestDetail(entry).flat().filter((node) => node));
    for (const row of document.querySelectorAll("#requests-table tbody tr")) {
      const on = Number(row.dataset.id) === id;
      row.classList.toggle("selected", on);
      row.setAttribute("aria-selected", String(on));
    }
  }

  function requestDetail(entry) {
    const target = entry.query ? `${entry.path}?${entry.query}` : entry.path;
    const violations = entry.violations || {};
    const placed = new Set();
    const body = requestBody(entry.body, violations, placed);
    const elsewhere = Object.entries(violations).filter(([field]) => !placed.has(field));
    const facts = [
      ["Status", entry.status || "no answer (connection fault)"],
      ["Operation", entry.operation || "none (no operation of the spec)"],
      ["Valid", entry.valid === null ? "–" : entry.valid ? "yes" : "no"],
      ["Fault rule", entry.fault || "none"],
      ["Delay", entry.delayMs ? `${entry.delayMs} ms` : "none"],
      ["Time taken", `${entry.durationMs.toFixed(1)} ms`],
      ["At", entry.time],
      ["Record", entry.recordId || "–"],
    ];
    const answer = entry.answer;
    return [
      el("h3", {}, el("span", { class: "method" }, entry.method), " ", el("code", { class: "target" }, target)),
      el("button", { type: "button", id: "copy-curl", onclick: () => copyCurl(entry) }, "Copy as curl"),
      el("pre", { id: "curl-text", class: "curl", hidden: true }),
      el("dl", { class: "facts" }, facts.flatMap(([t, v]) => [el("dt", { text: t }), el("dd", { text: String(v) })])),
      entry.warnings && entry.warnings.length
        ? el("ul", { class: "warnings", "aria-label": "Warnings" }, entry.warnings.map((w) => el("li", { text: w })))
        : null,
      elsewhere.length
        ? el(
            "div",
            { class: "violations", id: "violations-elsewhere" },
            el("h4", { text: "Refused at" }),
            el(
              "ul",
              {},
              elsewhere.map(([field, messages]) =>
                el("li", { dataset: { field } }, el("code", { text: field }), ": ", messages.join(" ")),
              ),
            ),
          )
        : null,
      el("h4", { text: "Request headers" }),
      headerTable(entry.headers),
      el("h4", {}, "Request body", entry.bodyTruncated ? truncatedNote(entry.bodySize) : null),
      body ? el("div", { class: "json", id: "request-body" }, body) : el("p", { class: "muted", text: "none" }),
      el("h4", {}, `Answer ${entry.status || ""}`),
      answer ? headerTable(answer.headers) : el("p", { class: "muted", text: "no answer was sent" }),
      answer ? answerBody(answer) : null,
    ];
  }

  // The body as lines of members, or, when it is too large to draw member by member, as text
  // cut at SHOWN_BYTES (its violations are then all listed above it).
  function requestBody(body, violations, placed) {
    if (body === null || body === undefined) return null;
    const text = pretty(body);
    if (text.length > SHOWN_BYTES) return el("pre", { class: "plain" }, cut(text));
    return jsonView(body, violations, placed);
  }

  function truncatedNote(size) {
    return el("span", { class: "truncated" }, ` (truncated: ${size === null ? "streamed" : sized(size)})`);
  }

  function answerBody(answer) {
    const head = el("h5", {}, "Answer body", answer.bodyTruncated ? truncatedNote(answer.bodySize) : null);
    if (answer.body === null || answer.body === "") return [head, el("p", { class: "muted", text: "empty" })];
    return [head, el("pre", { class: "json", id: "answer-body" }, cut(pretty(answer.body)))];
  }

  function cut(text) {
    if (text.length <= SHOWN_BYTES) return text;
    return `${text.slice(0, SHOWN_BYTES)}\n… (${sized(text.length)} in all; the rest is not shown)`;
  }

  function headerTable(headers) {
    const rows = Object.entries(headers || {});
    if (!rows.length) return el("p", { class: "muted", text: "none" });
    return el(
      "table",
      { class: "headers" },
      el("tbody", {}, rows.map(([name, value]) => el("tr", {}, el("th", { scope: "row", text: name }), el("td", { text: value })))),
    );
  }

  // A JSON value as lines, each member carrying its path (`object.id`, `[1].id`); a
  // violation of the spec is shown right after the member it names.
  function jsonView(value, violations, placed, path = "", key = null, last = true) {
    const line = el("div", { class: "member", dataset: { path: path || "$" } });
    if (key !== null) line.append(el("span", { class: "key", text: JSON.stringify(key) }), ": ");
    const comma = last ? "" : ",";
    const mark = (node) => {
      const messages = violations[path || "$"];
      if (messages) {
        placed.add(path || "$");
        node.classList.add("invalid");
        node.append(el("span", { class: "violation", role: "note" }, `⚠ ${messages.join(" ")}`));
      }
      return node;
    };
    if (value !== null && typeof value === "object") {
      const isArray = Array.isArray(value);
      const entries = isArray ? value.map((v, i) => [i, v]) : Object.entries(value);
      line.append(isArray ? "[" : "{");
      mark(line);
      const block = el("div", { class: "block" });
      entries.forEach(([k, v], index) => {
        const childPath = isArray ? `${path}[${k}]` : path ? `${path}.${k}` : k;
        block.append(jsonView(v, violations, placed, childPath, isArray ? null : k, index === entries.length - 1));
      });
      return el("div", {}, line, block, el("div", { class: "member" }, (isArray ? "]" : "}") + comma));
    }
    line.append(el("span", { class: `v ${value === null ? "null" : typeof value}`, text: JSON.stringify(value) }), comma);
    return mark(line);
  }

  function curlCommand(entry) {
    const quote = (text) => `'${String(text).replace(/'/g, "'\\''")}'`;
    const target = entry.query ? `${entry.path}?${entry.query}` : entry.path;
    const parts = ["curl", "-X", entry.method, quote(location.origin + target)];
    for (const [name, value] of Object.entries(entry.headers || {})) {
      if (["host", "content-length", "connection"].includes(name.toLowerCase())) continue;
      parts.push("-H", quote(`${name}: ${value}`));
    }
    if (entry.body !== null && entry.body !== undefined) {
      parts.push("--data-raw", quote(typeof entry.body === "string" ? entry.body : JSON.stringify(entry.body)));
    }
    return parts.join(" ");
  }

  async function copyCurl(entry) {
    const command = curlCommand(entry);
    const shown = $("#curl-text");
    shown.textContent = command;
    shown.hidden = false;
    try {
      await navigator.clipboard.writeText(command);
      notice("Copied the curl command (secrets masked as the journal shows them).");
    } catch {
      notice("The browser did not allow copying: the command is shown below the button.");
    }
  }

  async function poll() {
    if (document.hidden) return;
    try {
      if (state.panel === "requests") {
        const known = state.requests.last;
        const news = await api("GET", "/requests", { params: { limit: 0, after: known ?? 0 } });
        if (news.last !== known) await loadRequests();
      } else if (state.panel === "faults") {
        await loadFaults();
      } else if (state.panel === "coverage") {
        await loadCoverage();
      }
    } catch (error) {
      notice(problemLines(error).join(" "));
    }
  }

  // ------------------------------------------------------------------ faults

  // What a polled panel last drew: it is drawn again only when it changed, so the focus and
  // the elements a reader (or a test) holds stay put between polls.
  const drawn = { faults: null, coverage: null };

  function unchanged(panel, data) {
    const text = JSON.stringify([state.session, data]);
    if (drawn[panel] === text) return true;
    drawn[panel] = text;
    return false;
  }

  async function loadFaults() {
    const { data } = await api("GET", "/faults");
    if (unchanged("faults", data)) return;
    $("#faults-table tbody").replaceChildren(...data.map(faultRow));
    if (!data.length) {
      $("#faults-table tbody").append(el("tr", {}, el("td", { colspan: 9, class: "muted", text: "No rules: every request is answered normally." })));
    }
  }

  function does(rule) {
    const parts = [];
    if (rule.status) parts.push(`status ${rule.status}`);
    if (rule.fault) parts.push(rule.fault);
    if (rule.delay_ms !== undefined) parts.push(`delay ${JSON.stringify(rule.delay_ms)} ms`);
    if (rule.stream) parts.push(`stream ${JSON.stringify(rule.stream)}`);
    if (rule.headers) parts.push(`headers ${JSON.stringify(rule.headers)}`);
    if (rule.probability !== undefined) parts.push(`p=${rule.probability}`);
    return parts.join(", ");
  }

  function faultRow(state_) {
    const rule = state_.rule;
    const left = rule.times ? Math.max(rule.times - state_.fired, 0) : "∞";
    return el(
      "tr",
      { class: state_.active ? "" : "spent", dataset: { id: state_.id } },
      el("td", { text: state_.id }),
      el("td", { text: rule.method || "any" }),
      el("td", { class: "path", title: rule.path || "any", text: rule.path || "any" }),
      el("td", { text: does(rule) }),
      el("td", { class: "left", text: left }),
      el("td", { class: "matched", text: state_.matched }),
      el("td", { class: "fired", text: state_.fired }),
      el("td", { text: state_.documented ? "yes" : "no" }),
      el(
        "td",
        {},
        el("button", { type: "button", "aria-label": `Remove ${state_.id}`, onclick: () => removeFault(state_.id) }, "Remove"),
      ),
    );
  }

  async function removeFault(id) {
    await guarded(() => api("DELETE", `/faults/${encodeURIComponent(id)}`));
    await loadFaults();
  }

  async function guarded(work) {
    try {
      return await work();
    } catch (error) {
      notice(problemLines(error).join(" "));
      return null;
    }
  }

  function operationLike(test) {
    return state.operations.find(test);
  }

  function presets() {
    const create = operationLike((op) => op.method === "POST" && !op.path.endsWith("}"));
    const byId = operationLike((op) => op.method === "GET" && op.path.endsWith("}"));
    return {
      post503: { method: "POST", path: create ? create.path : undefined, status: 503, headers: { "Retry-After": "1" }, times: 2 },
      forbidden: { status: 403 },
      notFound: { method: "GET", path: byId ? byId.path : undefined, status: 404 },
      error500: { status: 500 },
      reset: { fault: "connection_reset", times: 1 },
      slow: { delay_ms: 2000 },
    };
  }

  async function addPreset(name) {
    const rule = presets()[name];
    const added = await guarded(() => api("POST", "/faults", { body: rule }));
    if (added) notice(`Added ${added.data[0].id}.`);
    await loadFaults();
  }

  function ruleFromForm(form) {
    const rule = {};
    const local = {};
    for (const name of ["method", "path", "fault"]) {
      const value = form[name].value.trim();
      if (value) rule[name] = value;
    }
    for (const name of ["status", "delay_ms", "times", "probability"]) {
      const value = form[name].value.trim();
      if (value) rule[name] = /^-?\d+(\.\d+)?$/.test(value) ? Number(value) : value;
    }
    const headers = form.headers.value.trim();
    if (headers) {
      rule.headers = {};
      for (const line of headers.split("\n")) {
        const at = line.indexOf(":");
        if (at < 1) local.headers = ["Write one header a line, as Name: value."];
        else rule.headers[line.slice(0, at).trim()] = line.slice(at + 1).trim();
      }
    }
    const body = form.body.value.trim();
    if (body) {
      try {
        rule.body = JSON.parse(body);
      } catch {
        local.body = ["This is not JSON."];
      }
    }
    return { rule, local };
  }

  function showFieldErrors(form, errors) {
    for (const span of form.querySelectorAll(".field-error")) span.textContent = "";
    for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
    const rest = [];
    for (const [field, messages] of Object.entries(errors)) {
      const name = field.replace(/^\[\d+\]\.?/, "").split(/[.[]/)[0];
      const span = name && form.querySelector(`.field-error[data-for="${name}"]`);
      if (span) {
        span.textContent = messages.join(" ");
        span.id = `error-${name}`;
        const input = form.elements[name];
        input.setAttribute("aria-invalid", "true");
        input.setAttribute("aria-describedby", span.id);
      } else {
        rest.push(`${field}: ${messages.join(" ")}`);
      }
    }
    return rest;
  }

  async function submitRule(event) {
    event.preventDefault();
    const form = event.target;
    const errorBox = $("#fault-form-error");
    errorBox.textContent = "";
    const { rule, local } = ruleFromForm(form);
    if (Object.keys(local).length) {
      showFieldErrors(form, local);
      return;
    }
    try {
      const added = await api("POST", "/faults", { body: rule });
      showFieldErrors(form, {});
      form.reset();
      notice(`Added ${added.data[0].id}.`);
    } catch (error) {
      if (!(error instanceof ProblemError)) throw error;
      const rest = showFieldErrors(form, error.problem.errors || {});
      errorBox.textContent = [error.message, ...rest].join(" ");
    }
    await loadFaults();
  }

  // ------------------------------------------------------------------ coverage

  async function loadOperations() {
    const report = await api("GET", "/coverage");
    state.operations = report.operations;
    const select = $("#f-operation");
    const chosen = select.value;
    select.replaceChildren(
      el("option", { value: "" }, "any"),
      ...report.operations.map((op) => el("option", { value: op.operation }, `${op.operation} (${op.method} ${op.path})`)),
    );
    select.value = chosen;
    return report;
  }

  async function loadCoverage() {
    const report = await loadOperations();
    if (unchanged("coverage", report)) return;
    const statuses = [...new Set(report.operations.flatMap((op) => Object.keys(op.statuses)))].sort();
    $("#coverage-table thead").replaceChildren(
      el("tr", {}, el("th", { scope: "col", text: "Operation" }), statuses.map((s) => el("th", { scope: "col", text: s }))),
    );
    $("#coverage-table tbody").replaceChildren(
      ...report.operations.map((op) =>
        el(
          "tr",
          { dataset: { operation: op.operation } },
          el("th", { scope: "row" }, el("span", { class: "method" }, op.method), " ", el("code", { text: op.path }), el("br"), el("small", { class: "muted", text: op.operation })),
          statuses.map((status) => coverageCell(op, status)),
        ),
      ),
    );
    $("#coverage-undocumented").replaceChildren(
      ...(report.undocumented.length
        ? report.undocumented.map((one) =>
            el(
              "li",
              {},
              el("a", { href: `#requests?${new URLSearchParams({ operation: one.operation || "", status: one.status })}` }, `${one.operation || "no operation"} answered ${one.status}`),
              `: ${one.count} time(s)`,
            ),
          )
        : [el("li", { class: "muted", text: "none" })]),
    );
    $("#coverage-faults").replaceChildren(
      ...(report.faults.length
        ? report.faults.map((one) => el("li", {}, el("a", { href: `#requests?faulted=true` }, one.id), `: fired ${one.fired} time(s)`))
        : [el("li", { class: "muted", text: "none" })]),
    );
  }

  function coverageCell(op, status) {
    if (!(status in op.statuses)) return el("td", { class: "cell none", title: "not declared" }, "–");
    const count = op.statuses[status];
    const kind = count ? "exercised" : "unexercised";
    const query = new URLSearchParams({ operation: op.operation, status });
    return el(
      "td",
      { class: `cell ${kind}`, dataset: { status } },
      el("a", { href: `#requests?${query}`, "aria-label": `${op.operation} ${status}: answered ${count} time(s)` }, String(count)),
    );
  }

  // ------------------------------------------------------------------ records

  function collections() {
    const health = state.health || {};
    return [
      ["records", "Audit records"],
      ["eventTypes", "Event types"],
    ].filter(([label]) => label in health);
  }

  async function loadRecords() {
    if (!state.health) state.health = await api("GET", "/health");
    const select = $("#rec-collection");
    if (!select.options.length) {
      select.replaceChildren(...collections().map(([label, text]) => el("option", { value: label }, text)));
      select.value = state.records.label;
    }
    state.records.label = select.value || "records";
    const errorBox = $("#records-error");
    let page;
    try {
      page = await api("GET", `/collections/${state.records.label}`, {
        params: { rql: $("#rec-rql").value.trim(), limit: RECORDS_PAGE, offset: state.records.offset },
      });
      errorBox.textContent = "";
    } catch (error) {
      if (!(error instanceof ProblemError)) throw error;
      showError(errorBox, error);
      $("#records-table tbody").replaceChildren();
      return;
    }
    state.records.byId = new Map(page.data.map((item) => [item.id, item]));
    $("#records-table tbody").replaceChildren(
      ...page.data.map((item) =>
        el(
          "tr",
          {},
          el("td", {}, el("a", { href: `#records/${encodeURIComponent(item.id)}` }, item.id)),
          el("td", { text: item.event || item.name || item.details || "" }),
          el("td", { class: "wide", text: item.timestamp || (item.audit && item.audit.created && item.audit.created.at) || "" }),
        ),
      ),
    );
    const first = page.total ? state.records.offset + 1 : 0;
    const last = state.records.offset + page.data.length;
    const pager = $("#records-pager");
    $(".count", pager).textContent = `${first}–${last} of ${page.total}`;
    pager.querySelector('[data-step="-1"]').disabled = state.records.offset === 0;
    pager.querySelector('[data-step="1"]').disabled = last >= page.total;
  }

  function selectRecord(id) {
    const item = state.records.byId.get(id);
    const detail = $("#record-detail");
    detail.hidden = false;
    detail.replaceChildren(
      el("h3", {}, el("code", { text: id })),
      item ? el("pre", { class: "json" }, pretty(item)) : el("p", { text: "Not on this page: filter for it." }),
    );
  }

  // ------------------------------------------------------------------ wiring

  function wire() {
    window.addEventListener("hashchange", route);
    $("#session").addEventListener("change", (event) => {
      state.session = event.target.value;
      state.requests = { offset: 0, last: null, byId: new Map(), selected: null };
      state.records.offset = 0;
      state.health = null;
      const url = new URL(location.href);
      url.searchParams.set("session", state.session);
      history.replaceState(null, "", url);
      $("#request-detail").hidden = true;
      refresh();
    });
    $("#session-reload").addEventListener("click", () => guarded(loadSessions));
    const requestForm = $("#request-filters");
    for (const kind of ["input", "change"]) {
      requestForm.addEventListener(kind, () => {
        state.requests.offset = 0;
        loadRequests();
      });
    }
    requestForm.addEventListener("submit", (event) => event.preventDefault());
    requestForm.addEventListener("reset", () =>
      setTimeout(() => {
        state.requests.offset = 0;
        loadRequests();
      }),
    );
    $("#requests-pager").addEventListener("click", (event) => {
      const step = Number(event.target.dataset.step || 0);
      if (!step) return;
      state.requests.offset = Math.max(0, state.requests.offset + step * PAGE);
      loadRequests();
    });
    $("#records-form").addEventListener("submit", (event) => {
      event.preventDefault();
      state.records.offset = 0;
      loadRecords();
    });
    $("#rec-collection").addEventListener("change", () => {
      state.records.offset = 0;
      loadRecords();
    });
    $("#records-pager").addEventListener("click", (event) => {
      const step = Number(event.target.dataset.step || 0);
      if (!step) return;
      state.records.offset = Math.max(0, state.records.offset + step * RECORDS_PAGE);
      loadRecords();
    });
    $("#fault-form").addEventListener("submit", submitRule);
    $("#faults-clear").addEventListener("click", async () => {
      await guarded(() => api("DELETE", "/faults"));
      await loadFaults();
    });
    for (const button of document.querySelectorAll("[data-preset]")) {
      button.addEventListener("click", () => addPreset(button.dataset.preset));
    }
  }

  async function start() {
    wire();
    await guarded(async () => {
      await loadSessions();
      await loadOperations();
      state.health = await api("GET", "/health");
      $("#spec-title").textContent = `· ${state.health.spec.title} ${state.health.spec.version}`;
    });
    await route();
    document.body.dataset.ready = "true";
    setInterval(poll, POLL_MS);
  }

  start();
})();
