/* Captioning dashboard: tabs, file browser, live queue (Socket.IO), jobs, inspect, analytics. */
"use strict";

const $ = (sel, el = document) => el.querySelector(sel);
const $$ = (sel, el = document) => Array.from(el.querySelectorAll(sel));
const defaults = JSON.parse($("#app").dataset.defaults);
const vocab = JSON.parse($("#app").dataset.vocabulary);   // statuses, stages, models, rows, inspect methods: from Python
const stageLabel = stage => vocab.stages[stage] || stage;
const state = { path: null, sort: "name", order: "asc", filter: "", page: 1, selected: new Set(),
                listing: null, jobsPage: 1, jobDetail: null, jobs: new Map(), lastQueue: null };

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (v !== false && v !== null && v !== undefined) el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c.nodeType ? c : String(c));
  return el;
}

async function api(path, options = {}) {
  const resp = await fetch(path, { credentials: "same-origin", ...options,
    headers: { "Content-Type": "application/json", ...(options.headers || {}) } });
  const body = (resp.headers.get("Content-Type") || "").includes("json") ? await resp.json() : {};
  if (!resp.ok) throw Object.assign(new Error(body.error || resp.statusText), { status: resp.status, body });
  return body;
}

const fmtSize = n => n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KB`
  : n < 1073741824 ? `${(n / 1048576).toFixed(1)} MB` : `${(n / 1073741824).toFixed(2)} GB`;
const fmtDur = s => s == null ? "" : `${Math.floor(s / 60)}:${String(Math.round(s % 60)).padStart(2, "0")}`;
const fmtTime = iso => iso ? new Date(iso).toLocaleString() : "";
const baseName = p => (p || "").split("/").pop();
function fmtEta(iso) {
  if (!iso) return "";
  const s = Math.max(0, Math.round((new Date(iso) - Date.now()) / 1000));
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m ${s % 60}s`;
}
function bar(pct) {
  const fill = h("div", { class: "fill" });
  fill.style.width = `${Math.max(0, Math.min(100, pct || 0))}%`;
  return h("div", { class: "progress", title: `${(pct || 0).toFixed(1)}%` }, fill, h("span", {}, `${Math.round(pct || 0)}%`));
}

/* ---------- tabs ---------- */
function showTab(name) {
  $$("#tabs button").forEach(b => b.classList.toggle("active", b.dataset.tab === name));
  $$(".tab").forEach(t => t.classList.toggle("active", t.id === `tab-${name}`));
  if (name === "jobs") loadJobs();
  if (name === "workers") renderWorkers();
  if (name === "analytics") Analytics.load();
  history.replaceState(null, "", `#${name}`);
}
$$("#tabs button").forEach(b => b.addEventListener("click", () => showTab(b.dataset.tab)));

/* ---------- file browser ---------- */
async function loadRoots() {
  const { roots } = await api("/api/roots");
  const sel = $("#root-select");
  sel.replaceChildren(...roots.map(r => h("option", { value: r.path }, r.path)));
  sel.onchange = () => browse(sel.value);
  if (roots.length) browse(roots[0].path);
  else $("#file-rows").replaceChildren(h("tr", {}, h("td", { colspan: 6 }, "No storage roots are mounted (STORAGE_ROOTS).")));
}

async function browse(path, page = 1) {
  state.path = path; state.page = page;
  const q = new URLSearchParams({ path, sort: state.sort, order: state.order, filter: state.filter, page, page_size: 200 });
  try {
    state.listing = await api(`/api/browse?${q}`);
  } catch (e) {
    $("#file-rows").replaceChildren(h("tr", {}, h("td", { colspan: 6, class: "error" }, e.message)));
    return;
  }
  renderListing();
  fetchDurations();
}

function renderListing() {
  const L = state.listing;
  $("#crumbs").replaceChildren(...L.breadcrumbs.map((c, i) => [i ? " / " : "",
    h("a", { href: "#", onclick: ev => { ev.preventDefault(); browse(c.path); } }, c.name)]).flat());
  const rows = L.items.map(item => {
    const box = item.is_video ? h("input", { type: "checkbox", "aria-label": `select ${item.name}`,
      checked: state.selected.has(item.path), onchange: ev => toggle(item.path, ev.target.checked) }) : "";
    const name = item.is_dir
      ? h("a", { href: "#", class: "folder", onclick: ev => { ev.preventDefault(); browse(item.path); } }, `▸ ${item.name}/`)
      : h("span", { class: item.is_video ? "video" : "other" }, item.name);
    return h("tr", { "data-path": item.path }, h("td", {}, box), h("td", {}, name),
      h("td", { class: "num" }, item.is_dir ? "" : fmtSize(item.size)), h("td", {}, new Date(item.mtime * 1000).toLocaleString()),
      h("td", { class: "num duration" }, item.is_video ? fmtDur(item.duration) : ""),
      h("td", {}, item.is_video ? (item.captioned ? h("span", { class: "ok" }, "✓ captioned") : "") : ""));
  });
  $("#file-rows").replaceChildren(...(rows.length ? rows : [h("tr", {}, h("td", { colspan: 6, class: "muted" }, "Empty folder"))]));
  const pages = Math.max(1, Math.ceil(L.total / L.page_size));
  $("#file-pager").replaceChildren(
    h("button", { disabled: L.page <= 1, onclick: () => browse(state.path, L.page - 1) }, "‹ Prev"),
    ` Page ${L.page} of ${pages} · ${L.total} entries (${L.folders} folders, ${L.videos} videos) `,
    h("button", { disabled: L.page >= pages, onclick: () => browse(state.path, L.page + 1) }, "Next ›"));
  $$("th[data-sort]").forEach(th => th.classList.toggle("sorted", th.dataset.sort === state.sort));
  $("#select-all").checked = false;
}

async function fetchDurations() {
  const missing = state.listing.items.filter(i => i.is_video && i.duration == null).map(i => i.path);
  if (!missing.length) return;
  const { durations } = await api("/api/durations", { method: "POST", body: JSON.stringify({ paths: missing }) });
  for (const item of state.listing.items) {
    if (item.path in durations) {
      item.duration = durations[item.path];
      const cell = $(`tr[data-path="${CSS.escape(item.path)}"] .duration`);
      if (cell) cell.textContent = item.duration == null ? "unreadable" : fmtDur(item.duration);
    }
  }
}

function toggle(path, on) {
  on ? state.selected.add(path) : state.selected.delete(path);
  $("#selection-count").textContent = `${state.selected.size} selected`;
  $("#queue-selected").disabled = state.selected.size === 0;
}

$("#select-all").addEventListener("change", async ev => {
  const on = ev.target.checked;
  let page = 1, total = Infinity;
  while ((page - 1) * 1000 < total) {   // every video in the folder, not just this page
    const q = new URLSearchParams({ path: state.path, videos_only: 1, filter: state.filter, page, page_size: 1000 });
    const L = await api(`/api/browse?${q}`);
    total = L.total;
    L.items.filter(i => i.is_video).forEach(i => toggle(i.path, on));
    page += 1;
  }
  $$("#file-rows input[type=checkbox]").forEach(b => { b.checked = on; });
});

$$("th[data-sort]").forEach(th => th.addEventListener("click", () => {
  state.order = state.sort === th.dataset.sort && state.order === "asc" ? "desc" : "asc";
  state.sort = th.dataset.sort; browse(state.path);
}));
let filterTimer;
$("#filter").addEventListener("input", ev => {
  clearTimeout(filterTimer);
  filterTimer = setTimeout(() => { state.filter = ev.target.value; browse(state.path); }, 250);
});

$("#queue-selected").addEventListener("click", async () => {
  const body = { paths: [...state.selected], options: { model: $("#opt-model").value,
    language: $("#opt-language").value, burn_in: $("#opt-burn-in").checked, rows: Number($("#opt-rows").value),
    timecode_mode: $("#opt-ndf").checked ? "ndf" : "df", mov: $("#opt-mov").checked, qc_profile: $("#opt-qc").value,
    speaker_changes: $("#opt-speakers").checked,
    vocabulary: $("#opt-vocabulary").value.split(",").map(t => t.trim()).filter(Boolean) } };
  if ($("#opt-start-tc").value.trim()) body.options.start_timecode = $("#opt-start-tc").value.trim();
  if ($("#opt-priority").checked) body.priority = "high";
  const box = $("#submit-result");
  box.hidden = false;
  try {
    const r = await api("/api/transcribe/batch", { method: "POST", body: JSON.stringify(body) });
    box.className = "result ok";
    box.replaceChildren(h("p", {}, `Batch ${r.batch_id}: ${r.message}.`), rejectedList(r.rejected));
    state.selected.clear(); toggle("", false);
    $$("#file-rows input[type=checkbox]").forEach(b => { b.checked = false; });
  } catch (e) {
    box.className = "result error";
    box.replaceChildren(h("p", {}, e.message), rejectedList((e.body || {}).rejected || []));
  }
});
const rejectedList = rejected => rejected.length
  ? h("ul", { class: "rejected" }, rejected.map(r => h("li", {}, r.error))) : "";

/* ---------- live queue ---------- */
const socket = io({ transports: ["websocket", "polling"] });
socket.on("connect", () => { $("#conn").textContent = "live"; $("#conn").className = "conn online"; });
socket.on("disconnect", () => { $("#conn").textContent = "disconnected — reconnecting…"; $("#conn").className = "conn offline"; });
socket.io.on("reconnect_attempt", n => { $("#conn").textContent = `disconnected — reconnecting (${n})…`; });
socket.on("queue_update", snap => { state.lastQueue = snap; renderQueue(snap); renderWorkers(); });
socket.on("worker_update", w => flash(`Worker ${w.name} is ${w.online ? "online" : "offline"}`));
socket.on("job_update", job => {
  if (job.deleted) { state.jobs.delete(job.job_id); $(`#job-rows tr[data-job="${job.job_id}"]`)?.remove(); return; }
  state.jobs.set(job.job_id, job);
  for (const row of $$(`[data-job="${job.job_id}"]`)) updateJobRow(row, job);
  if (state.jobDetail === job.job_id) showJob(job.job_id);
  // The job record is the truth: a finished job leaves the queue tables now, not at the next poll.
  if (state.lastQueue && vocab.finished.includes(job.status)) {
    for (const kind of ["active", "reserved", "scheduled", "waiting"])
      state.lastQueue[kind] = (state.lastQueue[kind] || []).filter(t => t.job_id !== job.job_id);
    renderQueue(state.lastQueue);
  }
});

function flash(text) {
  const n = h("div", { class: "flash" }, text);
  document.body.append(n); setTimeout(() => n.remove(), 4000);
}

function cancelButton(jobId) {
  return jobId ? h("button", { class: "danger", onclick: async () => {
    try { await api(`/api/jobs/${jobId}/cancel`, { method: "POST" }); } catch (e) { flash(e.message); }
  } }, "Cancel") : "";
}

function updateJobRow(row, job) {
  const progress = row.querySelector(".progress");
  if (progress) progress.replaceWith(bar(job.progress));
  const stage = row.querySelector(".stage");
  if (stage) stage.textContent = job.stage_label || stageLabel(job.stage) || job.status;
  const status = row.querySelector(".status");
  if (status) { status.textContent = job.status; status.className = `status s-${job.status}`; }
  const eta = row.querySelector(".eta");
  if (eta) eta.textContent = fmtEta(job.estimated_completion);
}

function renderQueue(snap) {
  const c = snap.counts;
  $("#queue-count").textContent = c.processing + c.pending || "";
  $("#queue-summary").textContent = `${c.processing} processing · ${c.pending} pending · ${c.completed} completed · ` +
    `${c.failed} failed · ${c.cancelled} cancelled · ${snap.workers.length} worker(s) · inspect ${snap.inspect_ms} ms`;
  const fileOf = t => t.file ? baseName(t.file) : `${t.name} ${t.task_id}`;
  const empty = (n, text) => [h("tr", {}, h("td", { colspan: n, class: "muted" }, text))];
  const active = snap.active.map(t => h("tr", { "data-job": t.job_id || "" }, h("td", { title: t.file || "" }, fileOf(t)),
    h("td", {}, t.worker), h("td", { class: "stage" }, (t.job && t.job.stage_label) || stageLabel(t.stage) || t.status || t.name.split(".").pop()), h("td", {}, bar(t.progress)),
    h("td", { class: "eta" }, fmtEta(t.estimated_completion)), h("td", {}, cancelButton(t.job_id))));
  $("#q-active").replaceChildren(...(active.length ? active : empty(6, "Nothing running")));
  const reserved = snap.reserved.map(t => h("tr", { "data-job": t.job_id || "" }, h("td", {}, fileOf(t)), h("td", {}, t.worker),
    h("td", { class: "status" }, t.status || ""), h("td", {}, t.priority === 0 ? "high" : "normal"), h("td", {}, cancelButton(t.job_id))));
  $("#q-reserved").replaceChildren(...(reserved.length ? reserved : empty(5, "Nothing reserved")));
  const scheduled = snap.scheduled.map(t => h("tr", { "data-job": t.job_id || "" }, h("td", {}, fileOf(t)), h("td", {}, t.worker),
    h("td", {}, t.eta || ""), h("td", {}, cancelButton(t.job_id))));
  $("#q-scheduled").replaceChildren(...(scheduled.length ? scheduled : empty(4, "Nothing scheduled")));
  const waiting = (snap.waiting || []).map(j => h("tr", { "data-job": j.job_id }, h("td", { title: j.source }, baseName(j.source)),
    h("td", {}, j.priority), h("td", {}, fmtTime(j.created_at)), h("td", {}, cancelButton(j.job_id))));
  $("#q-waiting").replaceChildren(...(waiting.length ? waiting : empty(4, "Nothing waiting")));
}

/* ---------- jobs ---------- */
let jobsTimer;
$("#jobs-status").addEventListener("change", () => { state.jobsPage = 1; loadJobs(); });
$("#jobs-qc").addEventListener("change", () => { state.jobsPage = 1; loadJobs(); });
$("#jobs-q").addEventListener("input", () => { clearTimeout(jobsTimer); jobsTimer = setTimeout(() => { state.jobsPage = 1; loadJobs(); }, 250); });

async function loadJobs() {
  const q = new URLSearchParams({ status: $("#jobs-status").value, qc: $("#jobs-qc").value, q: $("#jobs-q").value,
    page: state.jobsPage, page_size: 50 });
  const r = await api(`/api/jobs?${q}`);
  r.items.forEach(j => state.jobs.set(j.job_id, j));
  const rows = r.items.map(j => h("tr", { "data-job": j.job_id, class: "clickable", onclick: () => showJob(j.job_id) },
    h("td", { title: j.source }, baseName(j.source)), h("td", { class: `status s-${j.status}` }, j.status),
    h("td", {}, qcBadge(j.result && j.result.qc_status)), h("td", {}, bar(j.progress)), h("td", {}, fmtTime(j.created_at))));
  $("#job-rows").replaceChildren(...(rows.length ? rows : [h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No jobs"))]));
  const pages = Math.max(1, Math.ceil(r.total / r.page_size));
  $("#job-pager").replaceChildren(
    h("button", { disabled: r.page <= 1, onclick: () => { state.jobsPage -= 1; loadJobs(); } }, "‹ Prev"),
    ` Page ${r.page} of ${pages} · ${r.total} jobs `,
    h("button", { disabled: r.page >= pages, onclick: () => { state.jobsPage += 1; loadJobs(); } }, "Next ›"));
}

function qcBadge(status) {
  return status ? h("span", { class: `badge qc-${status}`, title: `QC ${status}` }, status) : "";
}

function qcReport(report) {
  if (!report) return "";
  const rules = report.rules.filter(r => r.count).map(r => h("li", {}, h("span", { class: `badge qc-${r.status}` }, r.status),
    ` ${r.id}: ${r.count}`, h("ul", {}, r.items.slice(0, 20).map(i => h("li", {},
      `#${i.index + 1} ${i.start.toFixed(2)} s: ${i.text}`)))));
  return h("details", { open: report.status === "fail" }, h("summary", {}, "QC ", qcBadge(report.status), ` ${report.profile}`),
    rules.length ? h("ul", { class: "qc" }, rules) : h("p", { class: "muted" }, "Every rule passes."));
}

async function showJob(jobId) {
  state.jobDetail = jobId;
  let job;
  try { job = await api(`/api/status/${jobId}`); } catch (e) { $("#job-detail").hidden = true; return; }
  const outputs = (job.result && job.result.outputs) || {};
  const links = Object.keys(outputs).map(kind => h("a", { href: `/api/jobs/${jobId}/outputs/${kind}` }, kind.toUpperCase()));
  const actions = [];
  const revision = job.result && job.result.revision;
  if (revision) actions.push(h("button", { class: "primary", id: "edit-captions", onclick: () => openEditor(jobId) },
    "Edit captions"));
  if (["failed", "cancelled"].includes(job.status)) actions.push(h("button", { onclick: async () => { await api(`/api/jobs/${jobId}/retry`, { method: "POST" }); showJob(jobId); } }, "Retry"));
  if (vocab.active.includes(job.status)) actions.push(cancelButton(jobId));
  actions.push(h("button", { class: "danger", onclick: async () => {
    const withOutputs = confirm("Delete this job. Also delete its caption files and rendition?");
    await api(`/api/jobs/${jobId}?outputs=${withOutputs}`, { method: "DELETE" });
    $("#job-detail").hidden = true; state.jobDetail = null; loadJobs();
  } }, "Delete"));
  const detail = $("#job-detail");
  const existing = detail.querySelector("video");
  const preview = existing && existing.dataset.job === jobId && existing.dataset.output === (outputs.video || outputs.vtt || "")
    ? existing : previewPlayer(jobId, outputs);
  detail.replaceChildren(
    h("h2", {}, baseName(job.source)), h("p", { class: "muted" }, job.source),
    h("dl", {}, h("dt", {}, "Status"), h("dd", { class: `s-${job.status}` }, `${job.status}${job.stage ? ` (${job.stage_label || stageLabel(job.stage)})` : ""}`),
      revision ? [h("dt", {}, "Captions"), h("dd", {}, revision > 1 ? `revision ${revision} (edited)` : "revision 1 (machine)")] : "",
      h("dt", {}, "Progress"), h("dd", {}, bar(job.progress)),
      h("dt", {}, "Worker"), h("dd", {}, job.worker || ""), h("dt", {}, "Started"), h("dd", {}, fmtTime(job.started_at)),
      h("dt", {}, "Completed"), h("dd", {}, fmtTime(job.completed_at)),
      h("dt", {}, "Options"), h("dd", {}, JSON.stringify(job.options))),
    job.error ? h("pre", { class: "error" }, job.error) : "",
    links.length ? h("p", { class: "downloads" }, "Download: ", ...links.flatMap(l => [l, " "])) : "",
    h("div", { class: "actions" }, actions), preview || "", qcReport(job.result && job.result.qc),
    job.result && job.result.text ? h("details", {}, h("summary", {}, "Transcript"), h("p", {}, job.result.text)) : "");
  detail.hidden = false;
}

function previewPlayer(jobId, outputs) {
  if (outputs.video) {
    return h("video", { controls: true, preload: "metadata", class: "preview", "data-job": jobId, "data-kind": "video",
      "data-output": outputs.video, src: `/api/jobs/${jobId}/outputs/video?inline=1&v=${encodeURIComponent(baseName(outputs.video))}` });
  }
  if (!outputs.vtt) return null;
  const video = h("video", { controls: true, preload: "metadata", class: "preview", "data-job": jobId, "data-kind": "source",
    "data-output": outputs.vtt, src: `/api/jobs/${jobId}/source` },
    h("track", { kind: "captions", srclang: "en", label: "Captions", default: true,
      src: `/api/jobs/${jobId}/outputs/vtt?inline=1&v=${encodeURIComponent(baseName(outputs.vtt))}` }));
  return video;
}

/* ---------- workers / inspect ---------- */
$("#inspect-buttons").replaceChildren(...vocab.inspect_methods.map(m => h("button", { onclick: () => inspect(m) }, m)));
async function inspect(method) {
  $("#inspect-command").textContent = `celery -A core.tasks inspect ${method}`;
  $("#inspect-output").textContent = "asking the workers…";
  try {
    const r = await api(`/api/inspect/${method}`);
    $("#inspect-output").textContent = JSON.stringify(r.replies, null, 2);
  } catch (e) { $("#inspect-output").textContent = e.message; }
}
function renderWorkers() {
  const snap = state.lastQueue;
  if (!snap) return;
  const cards = snap.workers.map(w => h("div", { class: "card" }, h("h3", {}, w.name),
    h("p", {}, `${w.online ? "online" : "offline"} · pool ${w.pool || "?"} × ${w.concurrency ?? "?"}`),
    h("p", {}, `queues: ${w.queues.join(", ")}`), h("p", {}, `processed ${w.processed} · active ${w.active} · pid ${w.pid}`)));
  $("#worker-cards").replaceChildren(...(cards.length ? cards : [h("p", { class: "error" }, "No worker answers.")]));
}

/* ---------- start ---------- */
$("#opt-model").value = defaults.model;
$("#opt-language").value = defaults.language;
$("#opt-burn-in").checked = defaults.burn_in;
$("#opt-rows").value = String(defaults.rows);
$("#opt-start-tc").value = defaults.start_timecode === "00:00:00;00" ? "" : defaults.start_timecode;
$("#opt-ndf").checked = defaults.timecode_mode === "ndf";
$("#opt-mov").checked = defaults.mov;
$("#opt-qc").value = defaults.qc_profile;
$("#opt-speakers").checked = defaults.speaker_changes;
$("#opt-vocabulary").value = defaults.vocabulary.join(", ");
loadRoots();
showTab((location.hash || "#browser").slice(1));
