// tunewright ui: one page, routed by the address's #fragment, over the JSON API in ui/app.py.
// Text from run folders is always set as textContent, never parsed as HTML.
"use strict";

const page = document.getElementById("page");
let stopPage = () => {}; // the current page's timers and streams, ended when leaving it

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== null && value !== undefined && value !== false) node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.appendChild(typeof child === "string" || typeof child === "number" ? document.createTextNode(String(child)) : child);
  }
  return node;
}

async function api(path, options) {
  const init = Object.assign({ headers: {} }, options || {});
  if (init.method && init.method !== "GET") {
    init.headers["X-Tunewright-UI"] = "1"; // see guard.py: writes need this header
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, init);
  const body = await response.json().catch(() => ({}));
  if (!response.ok && response.status !== 422) {
    throw new Error(body.error || body.detail || `${response.status} ${response.statusText}`);
  }
  return body;
}

const post = (path, body) => api(path, { method: "POST", body: JSON.stringify(body || {}) });
const fmt = (v) => (typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toPrecision(4)) : v === null || v === undefined ? "–" : String(v));
const runLink = (id, what) => `#/${what}/${encodeURIComponent(id)}`;

function showError(error) {
  page.prepend(el("p", { class: "error" }, String(error.message || error)));
}

function every(ms, fn) {
  let timer = null;
  let live = true;
  const tick = async () => {
    try { await fn(); } catch (error) { console.error(error); }
    if (live) timer = setTimeout(tick, ms);
  };
  tick();
  return () => { live = false; clearTimeout(timer); };
}

// ---- runs table and comparison -----------------------------------------------------------------

function stageBadges(stages) {
  return el("span", { class: "stages" }, Object.entries(stages).map(([stage, state]) =>
    el("span", { class: `badge ${state || "none"}`, "data-stage": stage, "data-state": state || "none", title: `${stage}: ${state || "not run"}` }, stage)));
}

function primaryCell(run) {
  const row = (run.metrics || []).find((m) => m.metric === run.primary_metric);
  if (!row) return "–";
  return `${row.metric}: ${fmt(row.base)} → ${fmt(row.tuned)} (${fmt(row.diff)}, CI ${fmt(row.ci_low)}…${fmt(row.ci_high)})`;
}

function runRow(run, checked, onchange) {
  return el("tr", { class: "run-row", "data-run": run.id },
    el("td", {}, el("input", { type: "checkbox", class: "pick", value: run.id, onchange, checked: checked || null })),
    el("td", {}, el("a", { href: runLink(run.id, "run") }, run.id)),
    el("td", {}, stageBadges(run.stages)),
    el("td", {}, fmt(run.method)),
    el("td", { class: "model" }, fmt(run.model)),
    el("td", {}, run.final_loss === undefined || run.final_loss === null ? "–" : `${fmt(run.final_loss)} (${fmt(run.steps)} steps)`),
    el("td", {}, primaryCell(run)),
    el("td", { class: "verdict" }, fmt(run.verdict)));
}

// The table refreshes every few seconds (new runs appear, stages change); ticked runs stay ticked.
async function runsPage() {
  const compare = el("button", { id: "compare", disabled: true, onclick: () => {
    const ids = [...page.querySelectorAll("input.pick:checked")].map((box) => box.value);
    location.hash = `#/compare/${ids.map(encodeURIComponent).join(",")}`;
  } }, "Compare selected");
  const update = () => { compare.disabled = page.querySelectorAll("input.pick:checked").length < 2; };
  const body = el("tbody", {});
  const where = el("p", { class: "muted" });
  const empty = el("p", { id: "no-runs", hidden: true }, "No runs yet: start one under New run, or run `tunewright run config.yaml`.");
  page.replaceChildren(el("h1", {}, "Runs"), where, empty,
    el("table", { id: "runs" },
      el("thead", {}, el("tr", {}, ["", "run", "stages", "method", "model", "final loss", "primary metric (base → tuned, 95% CI)", "verdict"].map((h) => el("th", {}, h)))),
      body),
    compare);
  const refresh = async () => {
    const data = await api("/api/runs");
    const ticked = new Set([...body.querySelectorAll("input.pick:checked")].map((box) => box.value));
    body.replaceChildren(...data.runs.map((run) => runRow(run, ticked.has(run.id), update)));
    where.textContent = `from ${data.runs_dirs.join(", ")}`;
    empty.hidden = data.runs.length > 0;
    update();
  };
  await refresh();
  stopPage = every(2000, refresh);
}

async function comparePage(ids) {
  const data = await api(`/api/compare?ids=${ids.split(",").map(encodeURIComponent).join(",")}`);
  const head = el("tr", {}, el("th", {}, "key"), data.runs.map((id) => el("th", {}, id)));
  const configRows = data.config_differences.map((d) => el("tr", { class: "diff-row" },
    el("td", {}, el("code", {}, d.key)), d.values.map((v) => el("td", {}, JSON.stringify(v) ?? "–"))));
  const names = [...new Set(data.metrics.flat().map((m) => m.metric))];
  const metricRows = names.map((name) => el("tr", { class: "metric-row" }, el("td", {}, name), data.metrics.map((rows) => {
    const m = rows.find((r) => r.metric === name);
    return el("td", {}, m ? `${fmt(m.tuned)} (Δ ${fmt(m.diff)}, CI ${fmt(m.ci_low)}…${fmt(m.ci_high)}) ${m.verdict}` : "–");
  })));
  page.replaceChildren(
    el("h1", {}, "Compare runs"),
    el("h2", {}, "Config differences"),
    configRows.length ? el("table", { id: "config-diff" }, el("thead", {}, head), el("tbody", {}, configRows)) : el("p", {}, "The configs are identical."),
    el("h2", {}, "Metrics (tuned, difference to base, 95% interval)"),
    el("table", { id: "metric-compare" }, el("thead", {}, head.cloneNode(true)), el("tbody", {}, metricRows,
      el("tr", {}, el("td", {}, "verdict"), data.verdicts.map((v) => el("td", {}, fmt(v)))))));
}

// ---- one run -----------------------------------------------------------------------------------

function runNav(id, here) {
  return el("nav", { class: "tabs" }, [["run", "Overview"], ["data", "Data"], ["chat", "Chat"], ["feedback", "Feedback"]].map(([what, label]) =>
    el("a", { href: runLink(id, what), class: what === here ? "here" : null }, label)));
}

const REWARD_KEYS = ["reward", "rewards/margins", "rewards/chosen", "rewards/rejected"];

function curveSeries(entries, keys) {
  return keys.map((key, i) => ({
    name: key, cls: `s${i}`,
    points: entries.filter((e) => typeof e[key] === "number" && typeof e.step === "number").map((e) => [e.step, e[key]]),
  })).filter((s) => s.points.length > 0);
}

async function runPage(id) {
  const detail = await api(`/api/runs/${encodeURIComponent(id)}`);
  const lossSvg = svgEl("svg", { id: "loss-curve", class: "chart" });
  const rewardSvg = svgEl("svg", { id: "reward-curve", class: "chart" });
  const rewardBox = el("section", { hidden: true }, el("h2", {}, "Reward"), rewardSvg);
  const stages = el("div", { id: "run-stages" }, stageBadges(detail.stages));
  const status = el("span", { id: "curve-status", class: "muted" });
  page.replaceChildren(
    el("h1", {}, detail.id), runNav(id, "run"),
    el("p", { class: "muted" }, detail.path), stages,
    el("section", {}, el("h2", {}, "Loss ", status), lossSvg), rewardBox,
    el("section", {}, el("h2", {}, "Checkpoints"), detail.checkpoints.length ? el("ul", { id: "checkpoints" },
      detail.checkpoints.map((c) => el("li", {}, `${c.name}${c.complete ? "" : " (incomplete)"}`))) : el("p", { class: "muted" }, "none kept")),
    el("section", {}, el("h2", {}, "Artifacts"), el("table", { id: "artifacts" }, el("tbody", {},
      detail.artifacts.map((a) => el("tr", {}, el("td", {}, el("code", {}, a.path)), el("td", {}, a.kind), el("td", { class: "num" }, `${(a.bytes / 1048576).toFixed(2)} MiB`)))))),
    el("section", {}, el("h2", {}, "Eval report"), detail.has_report ?
      el("iframe", { id: "report", src: `/files/${encodeURIComponent(id)}/eval/report.html`, title: "eval report" }) :
      el("p", { class: "muted" }, "no report yet")),
    el("section", {}, el("h2", {}, "Manifests"), Object.entries(detail.manifests).map(([stage, m]) =>
      el("details", {}, el("summary", {}, stage), el("pre", {}, JSON.stringify(m, null, 2))))),
    el("section", {}, el("h2", {}, "Resolved config"), el("pre", { id: "config" }, detail.config_text)));

  // Poll metrics.jsonl for new lines (the server returns the lines after `next`) while the
  // training stage is not done; the chart redraws only when a point arrived.
  let entries = [];
  let next = 0;
  let trainState = detail.stages.train;
  const redraw = () => {
    drawChart(lossSvg, curveSeries(entries, ["loss", "eval_loss"]), "step");
    const rewards = curveSeries(entries, REWARD_KEYS);
    rewardBox.hidden = rewards.length === 0;
    if (rewards.length) drawChart(rewardSvg, rewards, "step");
    const points = entries.filter((e) => typeof e.loss === "number").length;
    status.textContent = trainState === "running" ? `live: ${points} points` : `${points} points`;
  };
  redraw();
  const stopCurve = every(1000, async () => {
    const fresh = await api(`/api/runs/${encodeURIComponent(id)}/history?after=${next}`);
    next = fresh.next;
    if (fresh.entries.length) { entries = entries.concat(fresh.entries); redraw(); }
  });
  const stopStages = every(3000, async () => {
    const now = await api(`/api/runs/${encodeURIComponent(id)}`);
    stages.replaceChildren(stageBadges(now.stages));
    trainState = now.stages.train;
    redraw();
  });
  stopPage = () => { stopCurve(); stopStages(); };
}

// ---- data ----------------------------------------------------------------------------------------

async function dataPage(id) {
  const data = await api(`/api/runs/${encodeURIComponent(id)}/data`);
  const report = data.report;
  const sourceBox = el("pre", { id: "source-row", hidden: true });
  const showSource = async (loc) => {
    const row = await api(`/api/runs/${encodeURIComponent(id)}/source?loc=${encodeURIComponent(loc)}`);
    sourceBox.hidden = false;
    sourceBox.textContent = `${row.location}\n${row.text}`;
  };
  const checks = report ? Object.entries(report.checks || {}).map(([name, c]) => el("tr", { class: `check ${c.count ? c.severity : "clean"}`, "data-check": name },
    el("td", {}, name), el("td", {}, c.severity), el("td", { class: "num" }, c.count), el("td", { class: "num" }, `${(100 * (c.share || 0)).toFixed(1)}%`),
    el("td", {}, (c.reasons || []).slice(0, 3).join("; ")),
    el("td", {}, (c.examples || []).slice(0, 5).map((loc) => el("a", { href: "#", class: "loc", onclick: (e) => { e.preventDefault(); showSource(loc).catch(showError); } }, loc.split("/").pop()))))) : [];
  const rejected = data.rejected.map((group) => el("details", { class: "reason", "data-reason": group.reason },
    el("summary", {}, `${group.reason} (${group.count})`),
    group.rows.map((row) => el("div", { class: "rejected-row" }, el("code", {}, row.source || ""), " ", row.reason || "", el("pre", {}, JSON.stringify(row.row ?? row, null, 1))))));
  const split = el("select", { id: "render-split" }, el("option", {}, "train"), el("option", {}, "eval"));
  const index = el("input", { id: "render-index", type: "number", min: 0, value: 0 });
  const rendered = el("div", { id: "rendered" });
  const render = async () => {
    rendered.replaceChildren(el("p", { class: "muted" }, "rendering (the tokenizer loads the first time)…"));
    const result = await api(`/api/runs/${encodeURIComponent(id)}/render?split=${split.value}&index=${index.value}`);
    rendered.replaceChildren(el("p", { class: "muted" }, `${result.location} — ${split.value} has ${result.count} examples`),
      ...result.sides.map((side) => el("div", { class: "side" },
        side.side ? el("h3", {}, side.side) : null,
        el("div", { class: "tokens" }, side.boxes.map(([text, loss]) => el("span", { class: loss ? "tok loss" : "tok" }, text.replace(/\n/g, "↵\n")))),
        el("p", { class: "muted" }, `${side.tokens} tokens, ${side.loss_tokens} with loss${side.truncated_from ? `, truncated from ${side.truncated_from}` : ""}`))));
  };
  page.replaceChildren(el("h1", {}, `${id}: data`), runNav(id, "data"),
    report ? el("p", { id: "row-counts" }, `${report.rows.total} rows → ${report.rows.train} train, ${report.rows.eval} eval, ${report.rows.rejected} rejected (task ${report.task})`) :
      el("p", {}, "No validation report yet (the data stage has not run)."),
    el("h2", {}, "Checks"), el("table", { id: "checks" }, el("thead", {}, el("tr", {}, ["check", "severity", "rows", "share", "reasons", "rows (click to see)"].map((h) => el("th", {}, h)))), el("tbody", {}, checks)),
    sourceBox,
    el("h2", {}, "Rejected rows by reason"), rejected.length ? el("div", { id: "rejected" }, rejected) : el("p", {}, "none"),
    el("h2", {}, "Rendered example"), el("p", { class: "muted" }, "As `tunewright data render` shows it: highlighted tokens carry loss."),
    el("div", { class: "row" }, split, index, el("button", { id: "render", onclick: () => render().catch(showError) }, "Render")), rendered);
}

// ---- chat ----------------------------------------------------------------------------------------

async function chatPage(id) {
  const base = `/api/runs/${encodeURIComponent(id)}/chat`;
  const source = el("select", { id: "chat-source" }, el("option", { value: "adapter" }, "trained adapter / model"), el("option", { value: "merged" }, "merged model (export)"));
  const progress = el("p", { id: "chat-progress", class: "muted" }, "models not loaded");
  const prompt = el("textarea", { id: "chat-prompt", rows: 3, placeholder: "Ask both models the same thing" });
  const send = el("button", { id: "chat-send", disabled: true }, "Send to both");
  const answers = { base: el("div", { class: "answer", id: "answer-base" }), tuned: el("div", { class: "answer", id: "answer-tuned" }) };
  let stopPoll = () => {};
  let streams = [];
  const watch = () => {
    stopPoll();
    stopPoll = every(700, async () => {
      const s = await api(`${base}/status?source=${source.value}`);
      const settings = s.decoding ? ` — eval decoding: ${s.decoding.do_sample ? "sampled" : "greedy"}, max ${s.decoding.max_new_tokens} new tokens` : "";
      progress.textContent = s.state === "ready" ? `ready: base ${s.models.base}, tuned ${s.models.tuned}${settings}` :
        s.state === "failed" ? `failed: ${s.error}` : `${s.state}: ${s.step || ""} (${s.seconds ?? 0} s)`;
      progress.dataset.state = s.state;
      send.disabled = s.state !== "ready";
      if (s.state === "ready" || s.state === "failed") stopPoll();
    });
  };
  const load = el("button", { id: "chat-load", onclick: async () => { await post(`${base}/load`, { source: source.value }).catch(showError); watch(); } }, "Load models");
  // Both replies stream at once; the server takes them one at a time (one model, two adapters).
  send.addEventListener("click", () => {
    streams.forEach((s) => s.close());
    streams = ["base", "tuned"].map((which) => {
      const box = answers[which];
      box.textContent = "";
      box.dataset.state = "streaming";
      const url = `${base}/stream?source=${source.value}&which=${which}&prompt=${encodeURIComponent(prompt.value)}`;
      const stream = new EventSource(url);
      box.dataset.pieces = 0;
      stream.onmessage = (event) => { box.textContent += JSON.parse(event.data); box.dataset.pieces = Number(box.dataset.pieces) + 1; };
      stream.addEventListener("done", () => { box.dataset.state = "done"; stream.close(); });
      stream.addEventListener("failed", (event) => { box.dataset.state = "failed"; box.textContent += ` [failed: ${JSON.parse(event.data)}]`; stream.close(); });
      stream.onerror = () => { if (box.dataset.state === "streaming") box.dataset.state = "failed"; stream.close(); };
      return stream;
    });
  });
  page.replaceChildren(el("h1", {}, `${id}: chat`), runNav(id, "chat"),
    el("div", { class: "row" }, source, load), progress, prompt, send,
    el("div", { class: "columns" }, el("div", {}, el("h2", {}, "base"), answers.base), el("div", {}, el("h2", {}, "tuned"), answers.tuned)));
  watch();
  stopPage = () => { stopPoll(); streams.forEach((s) => s.close()); };
}

// ---- feedback ------------------------------------------------------------------------------------

function promptText(prompt) {
  if (typeof prompt === "string") return prompt;
  if (Array.isArray(prompt)) return prompt.map((m) => (m && m.role ? `${m.role}: ${m.content ?? ""}` : JSON.stringify(m))).join("\n");
  return JSON.stringify(prompt);
}

async function feedbackPage(id) {
  const url = `/api/runs/${encodeURIComponent(id)}/feedback`;
  const data = await api(url);
  const result = el("div", { id: "import-result" });
  const items = data.exchanges.map((x) => {
    const correction = el("textarea", { class: "correction", rows: 2, placeholder: "corrected answer (optional)" }, x.correction || "");
    const state = el("span", { class: "rating", "data-rating": x.rating || "" }, x.rating || "not judged");
    const judge = async (rating) => {
      const saved = await post(url, { request_id: x.request_id, rating, correction: correction.value });
      state.textContent = saved.rating + (saved.correction ? " (corrected)" : "");
      state.dataset.rating = saved.rating;
    };
    return el("div", { class: "exchange", "data-request": x.request_id },
      el("div", { class: "muted" }, `${x.time} ${x.request_id} `, state),
      el("pre", { class: "prompt" }, promptText(x.prompt)),
      el("pre", { class: "output" }, typeof x.output === "string" ? x.output : JSON.stringify(x.output)),
      correction,
      el("div", { class: "row" },
        el("button", { class: "good", onclick: () => judge("good").catch(showError) }, "Good"),
        el("button", { class: "bad", onclick: () => judge("bad").catch(showError) }, "Bad / save correction")));
  });
  const importButton = el("button", { id: "import", onclick: async () => {
    result.textContent = "importing…";
    try {
      const report = await post(`${url}/import`);
      result.replaceChildren(el("p", { id: "import-counts" }, `${report.sft_rows} SFT rows, ${report.preference_pairs} preference pairs, ${report.rejected} rejected → ${report.out_dir}`),
        el("table", {}, el("tbody", {}, Object.entries(report.outcomes).map(([k, v]) => el("tr", {}, el("td", {}, k), el("td", { class: "num" }, v))))));
    } catch (error) { result.textContent = `import failed: ${error.message}`; }
  } }, "Import judged exchanges as training data");
  page.replaceChildren(el("h1", {}, `${id}: feedback`), runNav(id, "feedback"),
    el("p", { class: "muted" }, `${data.log}: ${data.total} exchanges with content${data.without_content ? `, ${data.without_content} without (model listings, or serve.log_content off)` : ""}`),
    importButton, result,
    items.length ? el("div", { id: "exchanges" }, items) : el("p", {}, "No exchanges logged with content: serve the run with serve.log_content: true."));
}

// ---- new run ------------------------------------------------------------------------------------

async function newRunPage() {
  const schema = await api("/api/schema");
  const inputs = {};
  const errors = {};
  const sections = {};
  for (const field of schema.fields) {
    const input = field.choices ?
      el("select", { name: field.key }, el("option", { value: "" }, `default (${field.default})`), field.choices.map((c) => el("option", { value: c === null ? "null" : String(c) }, c === null ? "null" : String(c)))) :
      el("input", { name: field.key, placeholder: field.default });
    inputs[field.key] = input;
    errors[field.key] = el("div", { class: "field-error", "data-error-for": field.key });
    (sections[field.section] ||= []).push(el("div", { class: "field", "data-key": field.key },
      el("label", {}, el("code", {}, field.key), input), el("div", { class: "help" }, field.description, el("span", { class: "muted" }, ` default: ${field.default}`)), errors[field.key]));
  }
  const configPath = el("input", { id: "config-path", placeholder: `<name>.yaml in ${schema.cwd}` });
  const general = el("div", { id: "general-errors", class: "field-error" });
  const preview = el("pre", { id: "yaml-preview" });
  const jobBox = el("div", { id: "job" });
  const values = () => Object.fromEntries(Object.entries(inputs).map(([k, i]) => [k, i.value]).filter(([, v]) => v.trim() !== ""));
  const show = (problems) => {
    for (const box of Object.values(errors)) box.textContent = "";
    general.textContent = (problems[""] || []).join("\n");
    for (const [key, messages] of Object.entries(problems)) if (errors[key]) errors[key].textContent = messages.join("; ");
    const first = Object.keys(problems).find((k) => errors[k]);
    if (first) errors[first].scrollIntoView({ block: "center" });
  };
  const validate = async () => {
    const result = await post("/api/validate", { values: values(), config_path: configPath.value });
    show(result.problems);
    preview.textContent = result.yaml;
    general.textContent = result.ok ? "valid" : general.textContent;
    general.dataset.ok = result.ok;
    return result.ok;
  };
  const start = async () => {
    const result = await post("/api/jobs", { values: values(), config_path: configPath.value });
    if (!result.ok) { show(result.problems); return; }
    followJob(result.job.id, jobBox);
  };
  page.replaceChildren(el("h1", {}, "New run"),
    el("p", { class: "muted" }, "Empty fields keep their defaults; values are YAML (lists as [a, b]). Checked like `tunewright validate`."),
    el("form", { id: "new-run", onsubmit: (e) => e.preventDefault() },
      Object.entries(sections).map(([name, fields]) => el("fieldset", {}, el("legend", {}, name), fields)),
      el("label", {}, "config file ", configPath), general,
      el("div", { class: "row" }, el("button", { id: "validate", type: "button", onclick: () => validate().catch(showError) }, "Validate"),
        el("button", { id: "start", type: "button", onclick: () => start().catch(showError) }, "Start run"))),
    el("h2", {}, "Config"), preview, jobBox);
}

function followJob(jobId, box) {
  const state = el("p", { id: "job-state" });
  const log = el("pre", { id: "job-log" });
  const cancel = el("button", { id: "cancel", onclick: () => post(`/api/jobs/${jobId}/cancel`).catch(showError) }, "Cancel");
  box.replaceChildren(el("h2", {}, "Progress"), state, cancel, log);
  const stop = every(1000, async () => {
    const job = await api(`/api/jobs/${jobId}`);
    state.textContent = `${job.state} after ${job.seconds} s — ${job.config}`;
    state.dataset.state = job.state;
    log.textContent = job.log;
    log.scrollTop = log.scrollHeight;
    if (job.state !== "running") { cancel.disabled = true; stop(); }
  });
  const previous = stopPage;
  stopPage = () => { previous(); stop(); };
}

// ---- routing -------------------------------------------------------------------------------------

async function route() {
  stopPage();
  stopPage = () => {};
  const [, what, arg] = location.hash.match(/^#\/([^/]*)\/?(.*)$/) || [null, "", ""];
  const id = decodeURIComponent(arg || "");
  const pages = { "": runsPage, compare: () => comparePage(arg), run: () => runPage(id), data: () => dataPage(id), chat: () => chatPage(id), feedback: () => feedbackPage(id), new: newRunPage };
  try {
    await (pages[what] || runsPage)();
  } catch (error) {
    page.replaceChildren(el("p", { class: "error" }, String(error.message || error)));
  }
}

window.addEventListener("hashchange", route);
route();
