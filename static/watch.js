/* Watch folders tab: each folder's options, last scan, files queued (with job links), rejected and waiting.
   Uses app.js's helpers ($, h, api, fmtTime, fmtSize, baseName, showTab, showJob); polls while the tab is shown. */
"use strict";

const watchTab = { timer: null };

function watchAge(iso) {
  if (!iso) return "never";
  const s = Math.max(0, Math.round((Date.now() - new Date(iso)) / 1000));
  return s < 60 ? `${s} s ago` : s < 3600 ? `${Math.floor(s / 60)} min ago` : fmtTime(iso);
}

function watchOptions(folder) {
  const o = folder.options;
  const parts = [`model ${o.model}`, `language ${o.language}`, o.burn_in ? "burn-in" : "no burn-in", `${o.rows} rows`,
    `priority ${folder.priority}`];
  if (o.mov) parts.push("MOV");
  if (o.qc_profile) parts.push(`QC ${o.qc_profile}`);
  if (o.start_timecode && o.start_timecode !== "00:00:00;00") parts.push(`start ${o.start_timecode}`);
  return parts.join(" · ");
}

function watchJobLink(file) {
  if (!file.job_id) return "";
  return h("a", { href: "#jobs", class: "watch-job", "data-job": file.job_id, onclick: ev => {
    ev.preventDefault(); showTab("jobs"); showJob(file.job_id);
  } }, file.job_status ? `${file.job_status}` : "job");
}

function watchTable(title, files, columns) {
  if (!files.length) return "";
  return [h("h3", {}, title), h("table", { class: `watch-${title.split(" ")[0].toLowerCase()}` },
    h("thead", {}, h("tr", {}, columns.map(c => h("th", {}, c[0])))),
    h("tbody", {}, files.map(f => h("tr", { "data-path": f.path, title: f.path }, columns.map(c => h("td", {}, c[1](f)))))))];
}

function watchFolderCard(folder) {
  const c = folder.counts;
  const status = folder.watcher_running ? h("span", { class: "ok" }, "watching")
    : h("span", { class: "error" }, folder.last_scan_at ? "watcher not running" : "not scanned yet");
  const name = f => baseName(f.path);
  return h("div", { class: "detail watch-folder", "data-folder": folder.path },
    h("h2", {}, folder.path),
    h("dl", {},
      h("dt", {}, "Options"), h("dd", { class: "watch-options" }, watchOptions(folder)),
      h("dt", {}, "Status"), h("dd", {}, status, folder.mode ? ` · ${folder.mode}` : ""),
      h("dt", {}, "Last scan"), h("dd", { class: "watch-last-scan" }, watchAge(folder.last_scan_at),
        folder.files != null ? ` · ${folder.files} file(s) in the folder` : ""),
      h("dt", {}, "Files"), h("dd", { class: "watch-counts" },
        `${c.queued} queued · ${c.rejected} rejected · ${c.duplicate} already seen · ${c.settling + c.claimed} waiting`),
      folder.error ? [h("dt", {}, "Problem"), h("dd", { class: "error" }, folder.error)] : ""),
    watchTable("Queued", folder.queued, [["File", name], ["Size", f => fmtSize(f.size)],
      ["Queued", f => fmtTime(f.decided_at)], ["Job", watchJobLink]]),
    watchTable("Waiting to settle", folder.waiting, [["File", name], ["Size", f => fmtSize(f.size)],
      ["Unchanged since", f => fmtTime(f.stable_since)], ["Note", f => f.reason || ""]]),
    watchTable("Rejected files", folder.rejected, [["File", name], ["Reason", f => h("span", { class: "error" }, f.reason || "")],
      ["When", f => fmtTime(f.decided_at)]]),
    watchTable("Already seen (renamed or copied)", folder.duplicates, [["File", name], ["Why", f => f.reason || ""],
      ["Job", watchJobLink]]));
}

async function loadWatch() {
  const box = $("#watch-folders");
  let data;
  try { data = await api("/api/watch"); } catch (e) {
    box.replaceChildren(h("p", { class: "error" }, e.message)); return;
  }
  const problems = data.problems.map(p => h("p", { class: "error" }, p));
  const folders = data.folders.map(watchFolderCard);
  $("#watch-summary").textContent = `Settle ${data.settle_seconds} s · rescan every ${data.scan_seconds} s · `
    + `inotify events ${data.events ? "on" : "off"} · updated ${new Date().toLocaleTimeString()}`;
  box.replaceChildren(...problems, ...(folders.length ? folders
    : [h("p", { class: "muted" }, "No watch folders are configured (WATCH_FOLDERS in config.py).")]));
}

function watchPoll(active) {
  clearInterval(watchTab.timer);
  watchTab.timer = active ? setInterval(() => { if (!document.hidden) loadWatch(); }, 5000) : null;
}

document.querySelectorAll("#tabs button").forEach(b => b.addEventListener("click", () => {
  const active = b.dataset.tab === "watch";
  if (active) loadWatch();
  watchPoll(active);
}));
$("#watch-refresh").addEventListener("click", loadWatch);
if (location.hash === "#watch") { loadWatch(); watchPoll(true); }
