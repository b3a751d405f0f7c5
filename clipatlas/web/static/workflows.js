// clipatlas web: the atlas (rename, name again, map selection -> tag / CSV), classify, match,
// and item tags. Everything from the server goes into the page as textContent.
"use strict";
(function () {
  const { api, flash, el } = window.clipatlas;
  const enc = encodeURIComponent;
  const base = (collection) => "/api/collections/" + enc(collection);

  // -- atlas: rename one cluster, name them all again -------------------------------------------
  document.querySelectorAll("form.rename").forEach((form) => {
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const d = form.dataset;
      try {
        const out = await api("POST", base(d.collection) + "/runs/" + d.run + "/clusters/" + d.label + "/name",
          { name: new FormData(form).get("name").toString() });
        form.closest("section").querySelector(".cluster-name").textContent = out.name;
        flash(out.name);
      } catch (err) { flash(err.message, true); }
    });
  });
  const again = document.getElementById("name-again");
  if (again) {
    again.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = new FormData(again);
      const words = (f.get("vocabulary") || "").toString().split(",").map((s) => s.trim()).filter(Boolean);
      const body = { force: f.get("force") === "on" };
      if (words.length) { body.vocabulary = words; }
      try {
        await api("POST", base(again.dataset.collection) + "/runs/" + again.dataset.run + "/names", body);
        window.location.reload();
      } catch (err) { flash(err.message, true); }
    });
  }

  // -- atlas: lasso / box selection inside the sandboxed map --------------------------------------
  const box = document.getElementById("selection");
  const frame = document.getElementById("atlas-map");
  let selected = [];
  function setSelection(ids) {
    selected = ids;
    document.getElementById("selection-count").textContent = String(ids.length);
    box.querySelectorAll("button").forEach((b) => { b.disabled = ids.length === 0; });
    box.dataset.ids = ids.join(",");
  }
  if (box && frame) {
    window.addEventListener("message", async (ev) => {
      if (ev.source !== frame.contentWindow || !ev.data || ev.data.clipatlas !== "selection") { return; }
      const points = Array.isArray(ev.data.points) ? ev.data.points : [];
      if (!points.length) { setSelection([]); return; }
      try {
        const out = await api("POST", base(box.dataset.collection) + "/runs/" + box.dataset.run + "/select", { points: points });
        setSelection(out.ids);
      } catch (err) { flash(err.message, true); }
    });
    const tagForm = document.getElementById("selection-tag");
    async function tag(remove) {
      const value = new FormData(tagForm).get("tag").toString().trim();
      if (!value) { flash(tagForm.querySelector("input").placeholder, true); return; }
      try {
        const out = await api("POST", base(box.dataset.collection) + "/items/tags", { ids: selected, tag: value, remove: remove });
        flash(out.tag + ": " + out.changed + " / " + out.requested);
      } catch (err) { flash(err.message, true); }
    }
    tagForm.addEventListener("submit", (ev) => { ev.preventDefault(); tag(false); });
    tagForm.querySelector("button[data-remove]").addEventListener("click", () => tag(true));
    document.getElementById("selection-export").addEventListener("click", async () => {
      const token = document.querySelector('meta[name="clipatlas-write-token"]').content;
      const res = await fetch(base(box.dataset.collection) + "/items/export", {
        method: "POST",
        headers: { "X-Clipatlas-Token": token, "Content-Type": "application/json" },
        body: JSON.stringify({ ids: selected, run: parseInt(box.dataset.run, 10) }),
      });
      if (!res.ok) { flash("export: " + res.status, true); return; }
      const link = document.getElementById("selection-download");
      if (link.href && link.href.startsWith("blob:")) { URL.revokeObjectURL(link.href); }
      link.href = URL.createObjectURL(await res.blob());
      link.hidden = false;
      link.click();
    });
  }

  // -- item: add a tag ------------------------------------------------------------------------------
  const itemTag = document.getElementById("item-tag");
  if (itemTag) {
    itemTag.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const d = itemTag.dataset;
      try {
        const out = await api("POST", base(d.collection) + "/items/tags",
          { ids: [parseInt(d.item, 10)], tag: new FormData(itemTag).get("tag").toString() });
        const list = document.getElementById("item-tags");
        if (out.changed) {
          if (!list.querySelector("a")) { list.replaceChildren(); }
          list.append(el("a", { class: "tag", href: "/c/" + enc(d.collection) + "?tag=" + enc(out.tag) }, out.tag), " ");
        }
      } catch (err) { flash(err.message, true); }
    });
  }

  // -- classify ----------------------------------------------------------------------------------------
  const classify = document.getElementById("classify-form");
  if (classify) {
    classify.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = new FormData(classify);
      const body = new FormData();
      const file = f.get("file");
      if (file && file.name) { body.append("file", file); }
      if ((f.get("url") || "").toString().trim()) { body.append("url", f.get("url").toString().trim()); }
      if ((f.get("civitai_model") || "").toString().trim()) { body.append("civitai_model", f.get("civitai_model").toString()); }
      try {
        showClassification(await api("POST", base(classify.dataset.collection) + "/classify?run=" + enc(f.get("run")), body));
      } catch (err) { flash(err.message, true); }
    });
  }
  function showClassification(out) {
    const box = document.getElementById("classify-result");
    const d = box.dataset;
    box.querySelector(".answer").textContent = out.unknown ? d.unknown : (out.name || "#" + out.label);
    box.querySelector(".explanation").textContent = out.explanation;
    box.querySelector(".margin").textContent = out.margin === null ? "–" : out.margin.toFixed(3);
    const thumbs = box.querySelector(".nearest-thumbs"); thumbs.replaceChildren();
    const first = out.nearest[0];
    for (const src of (first && first.thumbnails) || []) { thumbs.append(el("img", { src: src, alt: "", class: "small" })); }
    const body = box.querySelector(".nearest tbody"); body.replaceChildren();
    for (const s of out.nearest) {
      const tr = el("tr", { "data-label": String(s.label) });
      tr.append(el("td", {}, s.name || "#" + s.label), el("td", {}, s.cosine.toFixed(3)),
        el("td", {}, s.threshold.toFixed(3)), el("td", {}, s.within ? d.inside : d.outside), el("td", {}, String(s.size)));
      body.append(tr);
    }
    box.querySelector(".votes").textContent = JSON.stringify({ inputs: out.inputs, subject: out.subject }, null, 2);
    box.hidden = false;
  }

  // -- match ---------------------------------------------------------------------------------------------
  const results = document.getElementById("match-results");
  function showMatches(out) {
    results.replaceChildren();
    if (!out.matches.length) { results.append(el("p", {}, results.dataset.empty)); return; }
    const list = el("ol", { class: "matches" });
    for (const m of out.matches) {
      const li = el("li", { class: "match", "data-key": m.key });
      if (m.thumbnail_url) { li.append(el("img", { src: m.thumbnail_url, alt: "", class: "small" })); }
      li.append(el("strong", {}, m.key), " · " + results.dataset.score + " " + m.score.toFixed(3));
      if (m.category) { li.append(" · ", el("span", { class: "tag" }, m.category)); }
      li.append(el("p", {}, m.text || ""));
      const table = el("table", { class: "grid-table components" });
      for (const c of (m.explanation && m.explanation.components) || []) {
        const tr = el("tr", { "data-component": c.component });
        tr.append(el("td", {}, c.component), el("td", {}, "raw " + c.raw), el("td", {}, "log-odds " + c.log_odds),
          el("td", {}, results.dataset.weight + " " + c.weight));
        table.append(tr);
      }
      li.append(table);
      if (m.explanation && m.explanation.category) { li.append(el("p", { class: "muted" }, "category: " + m.explanation.category.effect)); }
      list.append(li);
    }
    results.append(list);
  }
  const matchForm = document.getElementById("match-form");
  if (matchForm) {
    matchForm.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = new FormData(matchForm);
      const photo = f.get("photo");
      if (!photo || !photo.name) { f.delete("photo"); }
      try { showMatches(await api("POST", base(matchForm.dataset.collection) + "/match", f)); }
      catch (err) { flash(err.message, true); }
    });
    const stored = document.getElementById("match-stored");
    stored.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const id = new FormData(stored).get("record").toString().trim();
      try { showMatches(await api("GET", base(stored.dataset.collection) + "/records/" + enc(id) + "/matches")); }
      catch (err) { flash(err.message, true); }
    });
  }
})();
