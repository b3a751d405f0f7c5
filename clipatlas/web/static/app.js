// clipatlas web: forms and buttons that call the API; all upstream text goes in as textContent.
"use strict";
(function () {
  const token = document.querySelector('meta[name="clipatlas-write-token"]').content;

  async function api(method, url, body) {
    const init = { method: method, headers: { "X-Clipatlas-Token": token, "Accept": "application/json" } };
    if (body instanceof FormData) { init.body = body; }
    else if (body !== undefined) { init.headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
    const res = await fetch(url, init);
    const data = await res.json().catch(() => ({ error: "http_" + res.status, detail: res.statusText }));
    if (!res.ok) { throw new Error((data.error || "error") + ": " + (data.detail || "")); }
    return data;
  }

  function flash(text, bad) {
    const el = document.getElementById("flash");
    el.textContent = text; el.hidden = false; el.classList.toggle("bad", !!bad);
  }

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) { node.setAttribute(k, v); }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }
  window.clipatlas = { api: api, flash: flash, el: el };

  // -- job forms: ingest, cluster, map -------------------------------------------------------
  function jobParams(form, kind) {
    const f = new FormData(form);
    const get = (n) => (f.get(n) || "").toString().trim();
    if (kind === "ingest") {
      const source = get("source");
      const options = {};
      const params = { source: source, options: options };
      if (source === "folder") { options.root = get("root"); }
      if (source === "urls") { params.urls = get("urls").split(/\r?\n/).map((s) => s.trim()).filter(Boolean); }
      if (source === "naver" || source === "civitai") { if (get("query")) { options.query = get("query"); } }
      if (get("limit") && source !== "folder") { options.limit = parseInt(get("limit"), 10); }
      return params;
    }
    if (kind === "cluster") {
      const p = { method: get("method") || "kmeans" };
      if (get("k")) { p.k = parseInt(get("k"), 10); }
      return p;
    }
    if (kind === "map") { return { run_id: parseInt(get("run_id"), 10) }; }
    if (kind === "build-dataset") {
      const p = { query: get("query"), source: get("source"), overwrite: f.get("overwrite") === "on" };
      const ints = ["limit", "min_side"], floats = ["min_sharpness", "eps"];
      for (const n of ints) { if (get(n)) { p[n] = parseInt(get(n), 10); } }
      for (const n of floats) { if (get(n)) { p[n] = parseFloat(get(n)); } }
      if (get("out")) { p.out = get("out"); }
      if (p.source === "folder") { p.root = get("root"); }
      if (p.source === "urls") { p.urls = get("urls").split(/\r?\n/).map((s) => s.trim()).filter(Boolean); }
      return p;
    }
    if (kind === "caption") {
      const p = { redo: f.get("redo") === "on" };
      if (get("model")) { p.model = get("model"); }
      if (get("k")) { p.k = parseInt(get("k"), 10); }
      if (get("prompt_chars")) { p.prompt_chars = parseInt(get("prompt_chars"), 10); }
      if (get("language")) { p.language = get("language"); }
      return p;
    }
    return {};
  }

  function showSourceFields(form) {
    const select = form.querySelector('select[name="source"]');
    if (!select) { return; }
    const update = () => form.querySelectorAll("[data-for-source]").forEach((label) => {
      label.hidden = !label.dataset.forSource.split(" ").includes(select.value);
    });
    select.addEventListener("change", update); update();
  }

  document.querySelectorAll("form[data-job-form]").forEach((form) => {
    showSourceFields(form);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const kind = form.dataset.jobForm;
      const collection = form.dataset.collection || new FormData(form).get("collection");
      try {
        const job = await api("POST", "/api/jobs", { collection: collection, kind: kind, params: jobParams(form, kind) });
        window.location.href = "/jobs/" + encodeURIComponent(job.collection) + "/" + job.id;
      } catch (err) { flash(err.message, true); }
    });
  });

  // -- job buttons ----------------------------------------------------------------------------
  document.addEventListener("click", async (ev) => {
    const button = ev.target.closest("button[data-action]");
    if (!button) { return; }
    const action = button.dataset.action;
    try {
      if (action === "clear") {
        const out = await api("DELETE", "/api/jobs");
        flash("-" + out.removed);
      } else {
        await api("POST", "/api/jobs/" + button.dataset.key + "/" + action);
      }
      refreshJobs(); refreshJob();
    } catch (err) { flash(err.message, true); }
  });

  // -- jobs list: polling ---------------------------------------------------------------------
  const table = document.getElementById("jobs-table");
  async function refreshJobs() {
    if (!table) { return; }
    let jobs;
    try { jobs = await api("GET", table.dataset.poll); } catch (err) { return; }
    const body = table.querySelector("tbody");
    body.replaceChildren();
    if (!jobs.length) { const tr = el("tr"); tr.append(el("td", { colspan: "6" }, table.dataset.empty)); body.append(tr); }
    for (const j of jobs) {
      const tr = el("tr", { "data-key": j.key, "data-status": j.status });
      const link = el("td"); link.append(el("a", { href: "/jobs/" + j.key }, j.key)); tr.append(link);
      tr.append(el("td", {}, j.kind), el("td", { class: "status" }, j.status));
      tr.append(el("td", {}, (j.stage || "") + " " + j.done + (j.total ? "/" + j.total : "")));
      tr.append(el("td", {}, j.error || ""));
      const act = el("td");
      if (j.status === "queued" || j.status === "running") {
        act.append(el("button", { type: "button", "data-action": "cancel", "data-key": j.key }, table.dataset.cancel));
      } else if (["failed", "cancelled", "interrupted"].includes(j.status)) {
        act.append(el("button", { type: "button", "data-action": "resume", "data-key": j.key }, table.dataset.resume));
      }
      tr.append(act); body.append(tr);
    }
  }
  if (table) { setInterval(refreshJobs, 1000); }

  // -- one job: server-sent events, then the log ------------------------------------------------
  const jobBox = document.getElementById("job");
  let source = null;
  function showJob(j) {
    jobBox.querySelector(".status").textContent = j.status;
    jobBox.querySelector(".progress-text").textContent = (j.stage || "") + " " + j.done + (j.total ? "/" + j.total : "");
    jobBox.querySelector("progress").value = j.fraction || 0;
    jobBox.querySelector(".job-error").textContent = j.error || "";
    jobBox.querySelector(".result").textContent = j.result ? JSON.stringify(j.result, null, 2) : "";
    const report = document.getElementById("job-report");
    if (report && j.result && j.result.build_id !== undefined && j.result.report) {
      report.href = "/c/" + encodeURIComponent(j.collection) + "/datasets/" + encodeURIComponent(j.result.build_id) + "/report";
      report.hidden = false;
    }
    if (j.logs) {
      const list = jobBox.querySelector(".logs"); list.replaceChildren();
      for (const line of j.logs) { list.append(el("li", { class: "log-" + line.level }, line.message)); }
    }
  }
  async function refreshJob() {
    if (!jobBox) { return; }
    try { showJob(await api("GET", "/api/jobs/" + jobBox.dataset.key + "?logs=true")); } catch (err) { return; }
    if (!source) { listen(); }
  }
  function listen() {
    source = new EventSource(jobBox.dataset.events);
    source.addEventListener("job", (ev) => {
      const j = JSON.parse(ev.data); showJob(j);
      if (!["queued", "running"].includes(j.status)) { source.close(); source = null; refreshJob(); }
    });
    source.onerror = () => { if (source) { source.close(); source = null; } };
  }
  if (jobBox) { listen(); }

  // -- search by picture or URL -----------------------------------------------------------------
  const results = document.getElementById("results");
  function showHits(hits) {
    results.replaceChildren();
    if (!hits.length) { results.append(el("p", {}, results.dataset.empty)); return; }
    const grid = el("div", { class: "thumbs" });
    for (const h of hits) {
      const a = el("a", { class: "thumb", href: h.page_url, title: "#" + h.id + " " + h.source_key });
      a.append(el("img", { src: h.thumbnail_url, alt: "#" + h.id, loading: "lazy" }));
      a.append(el("span", { class: "cap" }, results.dataset.score + " " + h.score.toFixed(3)));
      grid.append(a);
    }
    results.append(grid);
  }
  document.querySelectorAll("form[data-search]").forEach((form) => {
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const base = "/api/collections/" + encodeURIComponent(form.dataset.collection) + "/search/";
      try {
        const out = form.dataset.search === "image"
          ? await api("POST", base + "image?k=24", new FormData(form))
          : await api("POST", base + "url", { url: new FormData(form).get("url"), k: 24 });
        showHits(out.hits);
      } catch (err) { flash(err.message, true); }
    });
  });
})();
