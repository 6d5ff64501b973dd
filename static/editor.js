/* Caption editor: correct a job's captions against its video, save a revision, watch it re-render.
   Uses app.js's h(), api(), $(), showTab(), showJob(), fmtTime(), baseName() and its Socket.IO connection (socket);
   adds only window.openEditor. */
(() => {
"use strict";

const FRAME = 1001 / 30000;           // one frame at 29.97
const HALF_FRAME = FRAME / 2;
const SPEAKER_MARK = ">> ";
// Characters the 608 set lacks, as the server maps them (core/services/captions.py _SUBSTITUTES).
const SUBSTITUTES = { "…": "...", "–": "-", "—": "--", "‐": "-", "‑": "-", "−": "-", "―": "--", "‒": "-",
  "‘": "'", "’": "'", "‚": "'", "‛": "'", "`": "'", "´": "'", "′": "'", "“": '"', "”": '"', "„": '"', "″": '"',
  "«": '"', "»": '"', "×": "x", "€": "EUR", "¼": "1/4", "¾": "3/4", "\u00a0": " ", "\t": " " };

const ed = { jobId: null, job: null, caps: [], rules: null, duration: 0, revision: 0, latest: 0, readonly: false,
             sel: -1, current: -1, undo: [], redo: [], typing: null, baseline: "[]", revisions: [], burnIn: false,
             awaiting: null, pollTimer: null, rendered: null, findAt: { i: -1, pos: 0 } };

const to608 = text => Array.from(text.normalize("NFC")).map(ch => SUBSTITUTES[ch] ?? ch).join("")
  .replace(/ +/g, " ").trim();
const round3 = x => Math.round(x * 1000) / 1000;
const norm = w => w.toLowerCase().replace(/[^\p{L}\p{N}']/gu, "");
const fmtT = s => {
  if (!Number.isFinite(s)) return "";
  const sign = s < 0 ? "-" : "", a = Math.abs(s);
  return `${sign}${Math.floor(a / 60)}:${(a % 60).toFixed(3).padStart(6, "0")}`;
};
const parseT = text => {   // "1:02.500", "62.5", "-0.2"
  const m = String(text).trim().match(/^(-)?(?:(\d+):)?(\d+(?:\.\d*)?)$/);
  if (!m) return NaN;
  return (m[1] ? -1 : 1) * ((m[2] ? Number(m[2]) * 60 : 0) + Number(m[3]));
};
const displayedChars = lines => lines.reduce((n, l) => n + to608(l).replace(/^>> /, "").length, 0);
const clone = caps => caps.map(c => ({ start: c.start, end: c.end, lines: [...c.lines], words: c.words || [] }));
const payload = () => ed.caps.map(c => ({ start: round3(c.start), end: round3(c.end),
  lines: c.lines.map(l => l.trim()).filter(l => l) }));
const dirty = () => !ed.readonly && JSON.stringify(payload()) !== ed.baseline;
const video = () => $("#ed-video");

/* ---------- opening, loading ---------- */
async function openEditor(jobId, revision = null) {
  if (ed.jobId && ed.jobId !== jobId && dirty() && !confirm("Leave the captions you changed without saving?")) return;
  ed.jobId = jobId;
  showTab("editor");
  history.replaceState(null, "", `#edit/${jobId}`);
  await loadRevision(revision, true);
}

async function loadRevision(revision = null, resetMedia = false) {
  message();
  let data;
  try {
    data = await api(`/api/jobs/${ed.jobId}/captions${revision ? `?revision=${revision}` : ""}`);
  } catch (e) {
    $("#ed-title").textContent = "Captions";
    message(e.message, "error");
    return;
  }
  ed.rules = data.rules; ed.duration = data.duration || 0; ed.revision = data.revision; ed.latest = data.latest;
  ed.readonly = data.revision !== data.latest; ed.burnIn = data.burn_in;
  ed.caps = clone(data.captions); ed.undo = []; ed.redo = []; ed.typing = null;
  ed.baseline = JSON.stringify(payload()); ed.sel = ed.caps.length ? 0 : -1; ed.current = -1;
  $("#ed-title").textContent = baseName(data.source);
  $("#ed-title").title = data.source;
  if (resetMedia) {
    const v = video();
    v.src = `/api/jobs/${ed.jobId}/source`;
    v.onerror = () => { if (!v.src.includes("/outputs/")) v.src = `/api/jobs/${ed.jobId}/outputs/video?revision=1&inline=1`; };
    $("#ed-rendered-box").hidden = true;
  }
  await loadRevisions();
  renderAll();
  setStatus(data.status === "completed" ? "" : `job ${data.status}${data.stage ? ` (${data.stage})` : ""}`);
}

async function loadRevisions() {
  const r = await api(`/api/jobs/${ed.jobId}/captions/revisions`);
  ed.revisions = r.revisions;
  $("#ed-revisions").replaceChildren(...r.revisions.slice().reverse().map(rev => h("option", { value: rev.number,
    selected: rev.number === ed.revision },
    `${rev.number}${rev.latest ? " (latest)" : ""} · ${rev.author || ""} · ${fmtTime(rev.created_at)}${rev.note ? ` · ${rev.note}` : ""}`)));
  const shown = r.revisions.find(rev => rev.number === ed.revision);
  $("#ed-files").replaceChildren(...(shown ? Object.keys(shown.files).map(kind => [h("a", {
    href: `/api/jobs/${ed.jobId}/outputs/${kind}?revision=${ed.revision}`, title: shown.files[kind] },
    kind.toUpperCase()), " "]).flat() : []));
  $("#ed-revert").hidden = !ed.readonly;
  $("#ed-save").disabled = ed.readonly;
  $("#ed-note").disabled = ed.readonly;
}

$("#ed-revisions").addEventListener("change", ev => {
  const n = Number(ev.target.value);
  if (dirty() && !confirm("Show another revision and drop the changes you have not saved?")) {
    ev.target.value = ed.revision; return;
  }
  loadRevision(n === ed.latest ? null : n);
});
$("#ed-close").addEventListener("click", () => {
  if (dirty() && !confirm("Leave the captions you changed without saving?")) return;
  ed.baseline = JSON.stringify(payload()); ed.readonly = true;   // nothing left to lose
  video().pause();
  showTab("jobs");
  if (ed.jobId) showJob(ed.jobId);
});
// Switching tabs or leaving the page with unsaved changes asks first.
$("#tabs").addEventListener("click", ev => {
  if ($("#tab-editor").classList.contains("active") && ev.target.closest("button") && dirty()
      && !confirm("Leave the captions you changed without saving?")) ev.stopImmediatePropagation();
  else if (ev.target.closest("button")) video().pause();
}, true);
window.addEventListener("beforeunload", ev => {
  if ($("#tab-editor").classList.contains("active") && dirty()) { ev.preventDefault(); ev.returnValue = ""; }
});

/* ---------- problems: the server's rules, checked as you type ---------- */
function problems(i) {
  const c = ed.caps[i], r = ed.rules, out = [];
  const rows = c.lines.map(to608).filter(l => l);
  const dur = c.end - c.start;
  if (c.start < 0 || c.end < 0) out.push(["error", "negative", "a time is negative"]);
  if (dur <= 0) out.push(["error", "order", "ends before it starts"]);
  if (ed.duration && Math.max(c.start, c.end) > ed.duration + HALF_FRAME) out.push(["error", "past_end", "past the media's end"]);
  if (i > 0 && c.start < ed.caps[i - 1].end - 0.0005) out.push(["error", "overlap", `overlaps caption ${i}`]);
  if (!rows.length) out.push(["error", "empty", "no text"]);
  const widest = Math.max(0, ...rows.map(l => l.length));
  if (widest > r.columns) out.push(["error", "columns", `${widest} columns (608: ${r.columns})`]);
  if (rows.length > r.rows) out.push(["error", "rows", `${rows.length} rows (allowed ${r.rows})`]);
  if (dur > 0 && dur < r.min_duration - HALF_FRAME) out.push(["warn", "min_duration", `${dur.toFixed(2)} s on screen (min ${r.min_duration} s)`]);
  if (dur > r.max_duration + HALF_FRAME) out.push(["warn", "max_duration", `${dur.toFixed(2)} s on screen (max ${r.max_duration} s)`]);
  if (dur > 0 && r.max_cps && displayedChars(c.lines) / dur > r.max_cps) out.push(["warn", "reading_rate", `${(displayedChars(c.lines) / dur).toFixed(1)} chars/s (max ${r.max_cps})`]);
  return out;
}
const cps = c => c.end > c.start ? displayedChars(c.lines) / (c.end - c.start) : 0;
const unsure = c => (c.words || []).filter(w => w.probability < ed.rules.low_confidence);

/* ---------- the caption list ---------- */
function findRegex(global = true) {
  const term = $("#ed-find").value;
  if (!term) return null;
  let src = term.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  if ($("#ed-word").checked) src = `(?<![\\p{L}\\p{N}])${src}(?![\\p{L}\\p{N}])`;
  return new RegExp(src, `u${global ? "g" : ""}${$("#ed-case").checked ? "" : "i"}`);
}

function rowNodes(line, low, re) {
  const nodes = [];
  const lowText = new Map(low.map(w => [norm(w.text), w]));
  const plain = text => text.split(/(\s+)/).forEach(tok => {
    const w = tok.trim() && lowText.get(norm(tok));
    nodes.push(w ? h("mark", { class: "lowconf", title: `low confidence: ${Math.round(w.probability * 100)}%` }, tok) : tok);
  });
  if (!re) { plain(line); return nodes; }
  let last = 0;
  for (const m of line.matchAll(re)) {
    if (!m[0]) break;
    plain(line.slice(last, m.index));
    nodes.push(h("mark", { class: "match" }, m[0]));
    last = m.index + m[0].length;
  }
  plain(line.slice(last));
  return nodes;
}

function item(i) {
  const c = ed.caps[i], probs = problems(i), re = findRegex();
  const cls = ["ed-item", i === ed.sel ? "selected" : "", i === ed.current ? "current" : "",
    probs.some(p => p[0] === "error") ? "bad" : probs.length ? "warned" : ""].filter(Boolean).join(" ");
  const rate = cps(c);
  return h("li", { class: cls, "data-index": i, onclick: () => select(i, true) },
    h("span", { class: "ed-num" }, i + 1),
    h("span", { class: "ed-times" }, `${fmtT(c.start)} → ${fmtT(c.end)}`),
    h("span", { class: `ed-cps${ed.rules.max_cps && rate > ed.rules.max_cps ? " over" : ""}`,
      title: "reading rate" }, `${rate.toFixed(1)} cps`),
    h("div", { class: "ed-text" }, c.lines.map(l => h("div", { class: "ed-row" }, rowNodes(l, unsure(c), re)))),
    probs.length ? h("div", { class: "ed-problems" }, probs.map(([sev, rule, text]) =>
      h("span", { class: `badge-${sev}`, "data-rule": rule }, text))) : "");
}

function renderList() {
  $("#ed-list").replaceChildren(...ed.caps.map((_, i) => item(i)));
  const errors = ed.caps.reduce((n, _, i) => n + problems(i).filter(p => p[0] === "error").length, 0);
  const lows = ed.caps.reduce((n, c) => n + unsure(c).length, 0);
  $("#ed-counts").textContent = `${ed.caps.length} captions · ${errors} problem(s) · ${lows} low-confidence word(s)` +
    (ed.readonly ? ` · revision ${ed.revision} (read only; the latest is ${ed.latest})` : ` · editing revision ${ed.revision}`);
  updateFindCount();
}

function refreshItem(i) {
  const old = $(`#ed-list li[data-index="${i}"]`);
  if (old && ed.caps[i]) old.replaceWith(item(i));
}

/* ---------- the selected caption ---------- */
function timeField(which) {
  const c = ed.caps[ed.sel];
  const input = h("input", { type: "text", class: "ed-time", id: `ed-${which}`, value: fmtT(c[which]),
    "aria-label": which, disabled: ed.readonly, onchange: ev => {
      const t = parseT(ev.target.value);
      if (Number.isFinite(t)) change(() => { ed.caps[ed.sel][which] = round3(t); });
      else ev.target.value = fmtT(ed.caps[ed.sel][which]);
    } });
  return h("span", { class: "ed-timefield" }, h("label", { for: `ed-${which}` }, which === "start" ? "Start" : "End"),
    h("button", { title: `${which} one frame earlier`, disabled: ed.readonly, onclick: () => nudge(which, -1) }, "−1f"),
    input,
    h("button", { title: `${which} one frame later`, disabled: ed.readonly, onclick: () => nudge(which, 1) }, "+1f"),
    h("button", { title: `set ${which} from the playhead`, disabled: ed.readonly, onclick: () => fromPlayhead(which) }, "⇤ playhead"));
}

function renderPanel() {
  const panel = $("#ed-panel");
  if (ed.sel < 0 || !ed.caps[ed.sel]) { panel.replaceChildren(h("p", { class: "muted" }, "No caption selected.")); return; }
  const c = ed.caps[ed.sel];
  const text = h("textarea", { id: "ed-text", rows: Math.max(ed.rules.rows, c.lines.length) + 1, spellcheck: "true",
    "aria-label": `text of caption ${ed.sel + 1}`, disabled: ed.readonly, oninput: onType });
  text.value = c.lines.join("\n");
  panel.replaceChildren(
    h("div", { class: "ed-panel-head" }, h("strong", {}, `Caption ${ed.sel + 1} of ${ed.caps.length}`),
      timeField("start"), timeField("end")),
    h("div", { class: "ed-edit" }, text, h("div", { id: "ed-counters", class: "ed-counters" })),
    h("div", { id: "ed-stats", class: "ed-stats muted" }),
    h("div", { class: "actions" },
      h("button", { id: "ed-split", disabled: ed.readonly, title: "Alt+Enter", onclick: split }, "Split at cursor"),
      h("button", { id: "ed-merge", disabled: ed.readonly || ed.sel >= ed.caps.length - 1, title: "Alt+M", onclick: merge }, "Merge with next"),
      h("button", { id: "ed-delete", class: "danger", disabled: ed.readonly, onclick: remove }, "Delete caption")));
  updatePanelStats();
}

function updatePanelStats() {
  const c = ed.caps[ed.sel];
  if (!c || !$("#ed-counters")) return;
  const r = ed.rules;
  $("#ed-counters").replaceChildren(...c.lines.map((line, k) => {
    const n = to608(line).length;
    return h("span", { class: `ed-counter${n > r.columns ? " over" : ""}${k >= r.rows ? " extra" : ""}` }, `${n}/${r.columns}`);
  }));
  const dur = c.end - c.start, probs = problems(ed.sel);
  const low = unsure(c);
  $("#ed-stats").replaceChildren(
    `${dur.toFixed(3)} s · ${cps(c).toFixed(1)} chars/s${r.max_cps ? ` (max ${r.max_cps})` : ""} · `,
    `${c.lines.filter(l => l.trim()).length}/${r.rows} rows`,
    low.length ? h("span", { class: "ed-unsure" }, " · unsure: ", low.map(w => h("mark", { class: "lowconf" },
      `${w.text} ${Math.round(w.probability * 100)}%`))) : "",
    probs.length ? h("div", { class: "ed-problems" }, probs.map(([sev, rule, t]) => h("span", { class: `badge-${sev}`, "data-rule": rule }, t))) : "");
}

function select(i, seek = false) {
  if (i < 0 || i >= ed.caps.length) return;
  const prev = ed.sel;
  ed.sel = i; ed.typing = null;
  refreshItem(prev); refreshItem(i);
  renderPanel();
  $(`#ed-list li[data-index="${i}"]`)?.scrollIntoView({ block: "nearest" });
  if (seek) { video().currentTime = ed.caps[i].start + 0.001; drawOverlay(); }
}

function renderAll() {
  if (ed.sel >= ed.caps.length) ed.sel = ed.caps.length - 1;
  renderList(); renderPanel(); drawOverlay(); updateButtons();
}

function updateButtons() {
  $("#ed-undo").disabled = ed.readonly || !ed.undo.length;
  $("#ed-redo").disabled = ed.readonly || !ed.redo.length;
  const unsaved = dirty();
  $("#ed-save").classList.toggle("unsaved", unsaved);
  $("#ed-save").textContent = unsaved ? "Save revision *" : "Save revision";
}

/* ---------- changes, undo ---------- */
function snapshot() { return { caps: clone(ed.caps), sel: ed.sel }; }
function change(fn, structural = true) {
  if (ed.readonly) return;
  ed.undo.push(snapshot()); ed.redo = []; ed.typing = null;
  if (ed.undo.length > 500) ed.undo.shift();
  fn();
  if (structural) renderAll(); else { refreshItem(ed.sel); updatePanelStats(); drawOverlay(); updateButtons(); }
}
function undo() { restore(ed.undo, ed.redo); }
function redo() { restore(ed.redo, ed.undo); }
function restore(from, to) {
  if (ed.readonly || !from.length) return;
  to.push(snapshot());
  const s = from.pop();
  ed.caps = s.caps; ed.sel = s.sel; ed.typing = null;
  renderAll();
}
function onType(ev) {
  const now = Date.now();
  if (!ed.typing || ed.typing.i !== ed.sel || now - ed.typing.at > 1500) {   // one undo step per burst of typing
    ed.undo.push(snapshot()); ed.redo = [];
  }
  ed.typing = { i: ed.sel, at: now };
  ed.caps[ed.sel].lines = ev.target.value.split("\n");
  refreshItem(ed.sel); updatePanelStats(); drawOverlay(); updateButtons(); updateFindCount();
}

function nudge(which, frames) {
  if (ed.sel < 0) return;
  change(() => { const c = ed.caps[ed.sel]; c[which] = round3(Math.max(0, c[which] + frames * FRAME)); });
}
function fromPlayhead(which) {
  if (ed.sel < 0) return;
  change(() => { ed.caps[ed.sel][which] = round3(video().currentTime); });
}

/* Rows for text that must fit ``rows`` rows of 32 columns: balanced at a space when two rows do. */
function wrapRows(text, rows = ed.rules.rows, width = ed.rules.columns) {
  const words = text.split(/\s+/).filter(Boolean);
  const one = words.join(" ");
  if (to608(one).length <= width || rows < 2) return one ? [one] : [];
  let best = null;
  for (let k = 1; k < words.length; k++) {
    const a = words.slice(0, k).join(" "), b = words.slice(k).join(" ");
    const wa = to608(a).length, wb = to608(b).length;
    if (wa <= width && wb <= width && (!best || Math.abs(wa - wb) < best[0])) best = [Math.abs(wa - wb), [a, b]];
  }
  if (best) return best[1];
  const out = [];   // greedy, more rows than allowed if need be (the counter shows it)
  let row = "";
  for (const w of words) {
    if (row && to608(`${row} ${w}`).length > width) { out.push(row); row = w; } else row = row ? `${row} ${w}` : w;
  }
  if (row) out.push(row);
  return out;
}

function split() {
  if (ed.sel < 0 || ed.readonly) return;
  const c = ed.caps[ed.sel], area = $("#ed-text");
  const full = c.lines.join("\n");
  let at = area ? area.selectionStart : Math.floor(full.length / 2);
  let first = full.slice(0, at).trim(), second = full.slice(at).trim();
  if (!first || !second) {            // cursor at an end: halve at the space nearest the middle
    const flat = full.replace(/\n/g, " ");
    const spaces = [...flat.matchAll(/ /g)].map(m => m.index);
    if (!spaces.length) { message("This caption has one word: nothing to split.", "error"); return; }
    at = spaces.reduce((a, b) => Math.abs(b - flat.length / 2) < Math.abs(a - flat.length / 2) ? b : a);
    first = flat.slice(0, at).trim(); second = flat.slice(at).trim();
  }
  const t = video().currentTime;
  let cut = t > c.start + 0.2 && t < c.end - 0.2 ? t
    : c.start + (c.end - c.start) * first.length / (first.length + second.length);
  cut = round3(cut);
  const rowsOf = text => text.includes("\n") ? text.split("\n").map(s => s.trim()).filter(Boolean) : wrapRows(text);
  const words = c.words || [];
  change(() => {
    ed.caps.splice(ed.sel, 1,
      { start: c.start, end: cut, lines: rowsOf(first), words: words.filter(w => (w.start + w.end) / 2 < cut) },
      { start: cut, end: c.end, lines: rowsOf(second), words: words.filter(w => (w.start + w.end) / 2 >= cut) });
  });
  select(ed.sel + 1);
}

function merge() {
  if (ed.sel < 0 || ed.sel >= ed.caps.length - 1 || ed.readonly) return;
  const a = ed.caps[ed.sel], b = ed.caps[ed.sel + 1];
  const rows = [...a.lines, ...b.lines].filter(l => l.trim());
  const lines = rows.length <= ed.rules.rows ? rows : wrapRows(rows.join(" "));
  change(() => {
    ed.caps.splice(ed.sel, 2, { start: a.start, end: b.end, lines, words: [...(a.words || []), ...(b.words || [])] });
  });
}

function remove() {
  if (ed.sel < 0 || ed.readonly) return;
  change(() => { ed.caps.splice(ed.sel, 1); ed.sel = Math.min(ed.sel, ed.caps.length - 1); });
}

$("#ed-undo").addEventListener("click", undo);
$("#ed-redo").addEventListener("click", redo);

/* ---------- find and replace ---------- */
function matchCount() {
  const re = findRegex();
  return re ? ed.caps.reduce((n, c) => n + c.lines.reduce((m, l) => m + [...l.matchAll(re)].length, 0), 0) : 0;
}
function updateFindCount() {
  $("#ed-find-count").textContent = $("#ed-find").value ? `${matchCount()} match(es)` : "";
}
function findNext() {
  const re = findRegex(false);
  if (!re) { $("#ed-find").focus(); return false; }
  const n = ed.caps.length;
  const start = ed.sel < 0 ? 0 : ed.sel;
  const area = $("#ed-text");
  let from = area && document.activeElement === area || ed.findAt.i === ed.sel ? (area ? area.selectionEnd : 0) : 0;
  for (let k = 0; k <= n; k++) {
    const i = (start + k) % n;
    const text = ed.caps[i].lines.join("\n");
    const pos = k === 0 ? from : 0;
    const m = re.exec(text.slice(pos));
    if (m) {
      if (i !== ed.sel) select(i, true);
      const t = $("#ed-text");
      const at = pos + m.index;
      t.focus(); t.setSelectionRange(at, at + m[0].length);
      ed.findAt = { i, pos: at };
      return true;
    }
    from = 0;
  }
  setStatus("no match");
  return false;
}
function replaceOne() {
  const re = findRegex(false), t = $("#ed-text");
  if (!re || !t || ed.readonly) return;
  const chosen = t.value.slice(t.selectionStart, t.selectionEnd);
  const whole = new RegExp(`^(?:${re.source})$`, re.flags);
  if (chosen && whole.test(chosen)) {
    const at = t.selectionStart, value = $("#ed-replace").value;
    change(() => {
      const text = ed.caps[ed.sel].lines.join("\n");
      ed.caps[ed.sel].lines = (text.slice(0, at) + value + text.slice(at + chosen.length)).split("\n");
    });
    const area = $("#ed-text");
    area.focus(); area.setSelectionRange(at + value.length, at + value.length);
    ed.findAt = { i: ed.sel, pos: at + value.length };
  }
  findNext();
}
function replaceAll() {
  const re = findRegex();
  if (!re || ed.readonly) return;
  const count = matchCount();
  if (!count) { setStatus("no match"); return; }
  const value = $("#ed-replace").value;
  change(() => { ed.caps.forEach(c => { c.lines = c.lines.map(l => l.replace(re, () => value)); }); });
  setStatus(`replaced ${count}`);
}
$("#ed-find").addEventListener("input", () => { renderList(); });
["#ed-case", "#ed-word"].forEach(sel => $(sel).addEventListener("change", () => renderList()));
$("#ed-find").addEventListener("keydown", ev => { if (ev.key === "Enter") { ev.preventDefault(); findNext(); } });
$("#ed-find-next").addEventListener("click", findNext);
$("#ed-replace-one").addEventListener("click", replaceOne);
$("#ed-replace-all").addEventListener("click", replaceAll);

/* ---------- video, overlay: the current caption as a 608 decoder shows it ---------- */
function indexAt(t) {
  for (let i = 0; i < ed.caps.length; i++) if (ed.caps[i].start <= t + 1e-6 && t < ed.caps[i].end) return i;
  return -1;
}
function drawOverlay() {
  const v = video(), overlay = $("#ed-overlay");
  const t = v.currentTime || 0;
  $("#ed-time").textContent = `${fmtT(t)} (frame ${Math.floor(t / FRAME + 1e-6)})`;
  const i = indexAt(t);
  if (i !== ed.current) {
    const was = ed.current;
    ed.current = i;
    [was, i].forEach(k => { $(`#ed-list li[data-index="${k}"]`)?.classList.toggle("current", k === i); });
    if (i >= 0 && !v.paused) $(`#ed-list li[data-index="${i}"]`)?.scrollIntoView({ block: "nearest" });
  }
  const lines = i >= 0 ? ed.caps[i].lines.map(to608).filter(Boolean) : [];
  overlay.replaceChildren(...lines.map(l => h("span", { class: "cc-row" }, l)));
  placeOverlay();
}
function placeOverlay() {   // on the picture itself (letterboxing aside), font like the burn-in's
  const v = video(), overlay = $("#ed-overlay");
  const w = v.clientWidth, hgt = v.clientHeight;
  if (!w || !hgt) return;
  const ratio = v.videoWidth && v.videoHeight ? v.videoWidth / v.videoHeight : 16 / 9;
  const pw = Math.min(w, hgt * ratio), ph = pw / ratio;
  const left = (w - pw) / 2, top = (hgt - ph) / 2;
  overlay.style.left = `${left}px`;
  overlay.style.width = `${pw}px`;
  overlay.style.bottom = `${top + ph * 0.1}px`;
  overlay.style.fontSize = `${Math.max(9, ph * 0.8 / 15 * 0.85)}px`;
}
let raf = 0;
function tick() { drawOverlay(); raf = video().paused ? 0 : requestAnimationFrame(tick); }
video().addEventListener("play", () => { if (!raf) raf = requestAnimationFrame(tick); });
["timeupdate", "seeked", "loadedmetadata", "pause"].forEach(e => video().addEventListener(e, drawOverlay));
window.addEventListener("resize", placeOverlay);
function playPause() { const v = video(); if (v.paused) v.play().catch(() => {}); else v.pause(); }
function seekBy(s) { const v = video(); v.currentTime = Math.max(0, Math.min(v.duration || 1e9, v.currentTime + s)); }

/* ---------- saving, reverting, the re-render ---------- */
function message(text, kind = "ok", extra = []) {
  const box = $("#ed-message");
  box.hidden = !text;
  if (!text) return;
  box.className = `result ${kind}`;
  box.replaceChildren(h("p", {}, text), ...extra);
}
function setStatus(text) { $("#ed-status").textContent = text; }

async function save() {
  if (ed.readonly || ed.saving) return;
  ed.saving = true; $("#ed-save").disabled = true;
  const started = performance.now();
  const body = { base_revision: ed.revision, captions: payload(), note: $("#ed-note").value };
  try {
    const r = await api(`/api/jobs/${ed.jobId}/captions`, { method: "PUT", body: JSON.stringify(body) });
    const ms = Math.round(performance.now() - started);
    ed.revision = r.revision; ed.latest = r.latest; ed.baseline = JSON.stringify(body.captions);
    ed.lastSave = { revision: r.revision, ms, server_ms: r.timings.total_ms, at: started };
    $("#ed-note").value = "";
    const warned = r.warnings.length ? [h("ul", { class: "ed-warnings" }, r.warnings.map(w =>
      h("li", {}, h("a", { href: "#", onclick: e => { e.preventDefault(); select(w.index, true); } },
        `caption ${w.index + 1}`), `: ${w.message}`)))] : [];
    message(`Saved revision ${r.revision} in ${ms} ms (caption files published${r.render_queued ? "; rendering the captioned video" : ""}).` +
      (r.render_error ? ` ${r.render_error}.` : "") + (r.warnings.length ? ` ${r.warnings.length} warning(s):` : ""), "ok", warned);
    $("#ed-save").dataset.savedMs = ms;
    $("#ed-save").dataset.serverMs = r.timings.total_ms;
    if (r.render_queued || r.render_error) awaitRender(r.revision, started);
    await loadRevisions();
    renderList(); updateButtons();
  } catch (e) {
    if (e.status === 409 && e.body && e.body.latest) {
      message(e.message, "error", [h("button", { onclick: () => { ed.baseline = JSON.stringify(payload()); loadRevision(); } },
        `Load revision ${e.body.latest} (drops your changes)`)]);
    } else if (e.status === 400 && e.body && e.body.violations) {
      message(e.message, "error", [h("ul", { class: "ed-violations" }, e.body.violations.map(v =>
        h("li", {}, h("a", { href: "#", onclick: ev => { ev.preventDefault(); select(v.index, true); } },
          `caption ${v.index + 1}`), ` (${v.rule}): ${v.message}`)))]);
    } else message(e.message, "error");
  } finally {
    ed.saving = false; $("#ed-save").disabled = ed.readonly;
  }
}
$("#ed-save").addEventListener("click", save);

$("#ed-revert").addEventListener("click", async () => {
  try {
    const r = await api(`/api/jobs/${ed.jobId}/captions/revert`, { method: "POST",
      body: JSON.stringify({ revision: ed.revision, base_revision: ed.latest }) });
    await loadRevision();
    message(`Revision ${r.revision} is revision ${ed.revisions.find(x => x.number === r.revision)?.reverted_from} again.`);
    if (r.render_queued) awaitRender(r.revision, performance.now());
  } catch (e) { message(e.message, "error"); }
});

function awaitRender(revision, started) {
  ed.awaiting = { revision, started };
  setStatus(`rendering revision ${revision}…`);
  clearInterval(ed.pollTimer);   // job_update drives this; polling only covers a lost connection
  ed.pollTimer = setInterval(async () => {
    if (!ed.awaiting || socket.connected) return;
    try { onJobUpdate(await api(`/api/status/${ed.jobId}`)); } catch (e) { /* try again */ }
  }, 3000);
}

function onJobUpdate(job) {
  if (!ed.jobId || job.job_id !== ed.jobId) return;
  const wait = ed.awaiting;
  if (job.status === "processing" || job.status === "pending") {
    if (wait) setStatus(`${job.stage_label || job.status} · ${Math.round(job.progress || 0)}%`);
    return;
  }
  if (!wait) return;
  const result = job.result || {};
  if (job.status === "completed" && result.revision === wait.revision && result.outputs && result.outputs.video) {
    const seconds = (performance.now() - wait.started) / 1000;
    ed.awaiting = null; clearInterval(ed.pollTimer);
    ed.rendered = { revision: wait.revision, seconds };
    setStatus(`revision ${wait.revision} rendered`);
    $("#ed-rendered-title").textContent = `Rendered revision ${wait.revision} (save to video: ${seconds.toFixed(1)} s)`;
    const player = $("#ed-rendered");
    player.dataset.revision = wait.revision;
    player.src = `/api/jobs/${ed.jobId}/outputs/video?revision=${wait.revision}&inline=1`;
    $("#ed-rendered-box").hidden = false;
    loadRevisions();
  } else if (job.status === "failed" || job.status === "cancelled") {
    ed.awaiting = null; clearInterval(ed.pollTimer);
    setStatus(`render ${job.status}`);
    message(`The render of revision ${wait.revision} ${job.status}: ${job.error || ""} Its caption files are kept.`, "error",
      [h("button", { onclick: async () => { await api(`/api/jobs/${ed.jobId}/retry`, { method: "POST" });
        awaitRender(wait.revision, performance.now()); message(); } }, "Render again")]);
  }
}
socket.on("job_update", onJobUpdate);

/* ---------- keyboard ---------- */
document.addEventListener("keydown", ev => {
  if (!$("#tab-editor").classList.contains("active")) return;
  const ctrl = ev.ctrlKey || ev.metaKey, alt = ev.altKey, shift = ev.shiftKey, code = ev.code;
  const inFind = ev.target.closest && ev.target.closest(".ed-find");
  let done = true;
  if (ctrl && !alt && code === "KeyS") save();
  else if (ctrl && !alt && code === "KeyZ" && !shift && !inFind) undo();
  else if (ctrl && !alt && ((code === "KeyZ" && shift) || code === "KeyY") && !inFind) redo();
  else if (ctrl && !alt && code === "KeyF") { $("#ed-find").focus(); $("#ed-find").select(); }
  else if ((ctrl && code === "Space") || (alt && code === "KeyK")) playPause();
  else if (alt && code === "KeyJ") seekBy(-1);
  else if (alt && code === "KeyL") seekBy(1);
  else if (alt && code === "ArrowUp") select(Math.max(0, ed.sel - 1), true);
  else if (alt && code === "ArrowDown") select(Math.min(ed.caps.length - 1, ed.sel + 1), true);
  else if (alt && code === "Comma") nudge(shift ? "end" : "start", -1);
  else if (alt && code === "Period") nudge(shift ? "end" : "start", 1);
  else if (alt && code === "BracketLeft") fromPlayhead("start");
  else if (alt && code === "BracketRight") fromPlayhead("end");
  else if (alt && code === "Enter") split();
  else if (alt && code === "KeyM") merge();
  else done = false;
  if (done) ev.preventDefault();
});

/* ---------- from the Jobs tab ---------- */
window.openEditor = openEditor;
if (location.hash.startsWith("#edit/")) openEditor(decodeURIComponent(location.hash.slice(6)));
})();
