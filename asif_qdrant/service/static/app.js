// The search page of `asif-qdrant serve`: plain JavaScript, no build step.
"use strict";
const $ = (id) => document.getElementById(id);
const state = { image: null, imageName: "", query: "", catalog: "" };

function headers() {
  const key = localStorage.getItem("asif-api-key");
  return key ? { "X-API-Key": key } : {};
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...headers(), ...(options.headers || {}) } });
  if (response.status === 401 || response.status === 403) $("key-box").hidden = false;
  if (!response.ok) {
    let message = response.statusText;
    try { message = (await response.json()).message; } catch (e) { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

const blobs = new Map();
async function imageUrl(path) {  // images need the API key header too: fetch them as blobs
  if (!blobs.has(path)) blobs.set(path, api(path).then((r) => r.blob()).then(URL.createObjectURL));
  return blobs.get(path);
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function thumb(url, alt) {
  if (!url) return el("div", { class: "thumb text" }, alt || "(no image)");
  const img = el("img", { class: "thumb", alt: alt || "", loading: "lazy" });
  imageUrl(url).then((src) => { img.src = src; }).catch(() => { img.alt = "(image unavailable)"; });
  return img;
}

const label = (payload) => payload.caption || payload.text || payload.title || payload.name || "";

async function loadModel() {
  try {
    const info = await (await api("/api/model")).json();
    $("model-name").textContent = `${info.name} · ${info.anchor_count} anchor pairs`;
    const select = $("catalog");
    select.replaceChildren(...Object.entries(info.catalogs).map(
      ([name, n]) => el("option", { value: name }, `${name} (${n})`)));
    state.catalog = select.value;
    $("status").textContent = select.options.length ? "" : "This model has no catalog yet.";
  } catch (e) {
    $("status").textContent = `Cannot read the model: ${e.message}`;
  }
}

async function search(event) {
  event && event.preventDefault();
  state.catalog = $("catalog").value;
  state.query = $("query").value.trim();
  if (!state.catalog || (!state.query && !state.image)) return;
  $("status").textContent = "Searching…";
  const base = `/api/catalogs/${encodeURIComponent(state.catalog)}`;
  try {
    let response;
    if (state.image) {
      const form = new FormData();
      form.append("image", state.image, state.imageName);
      form.append("limit", "24");
      response = await api(`${base}/search/image`, { method: "POST", body: form });
    } else {
      response = await api(`${base}/search`, {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ query: state.query, limit: 24 }),
      });
    }
    const data = await response.json();
    showHits(data.hits);
    $("status").textContent = `${data.hits.length} hits in ${(data.seconds * 1000).toFixed(0)} ms`;
  } catch (e) {
    $("status").innerHTML = "";
    $("status").append(el("span", { class: "error" }, e.message));
  }
}

function showHits(hits) {
  $("results").replaceChildren(...hits.map((hit) => {
    const card = el("button", { class: "hit", type: "button", "data-id": String(hit.id) },
      thumb(hit.image_url, label(hit.payload)),
      el("div", { class: "score" }, hit.score.toFixed(3)),
      el("div", { class: "caption" }, label(hit.payload)));
    card.addEventListener("click", () => explain(hit));
    return card;
  }));
}

async function explain(hit) {
  const base = `/api/catalogs/${encodeURIComponent(state.catalog)}`;
  const body = $("explain-body");
  body.replaceChildren(el("p", { class: "muted" }, "Explaining…"));
  $("explain").hidden = false;
  try {
    let response;
    if (state.image) {
      const form = new FormData();
      form.append("image", state.image, state.imageName);
      form.append("item_id", String(hit.id));
      response = await api(`${base}/explain/image`, { method: "POST", body: form });
    } else {
      response = await api(`${base}/explain`, {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ query: state.query, item_id: hit.id, top: 8 }),
      });
    }
    showExplanation(await response.json(), hit);
  } catch (e) {
    body.replaceChildren(el("p", { class: "error" }, e.message));
  }
}

function showExplanation(why, hit) {
  const queryView = state.image
    ? el("img", { class: "thumb", alt: "query image", src: URL.createObjectURL(state.image) })
    : el("div", { class: "thumb text" }, `“${why.query}”`);
  const biggest = Math.max(...why.anchors.map((a) => a.contribution), 1e-9);
  const rows = why.anchors.map((a) => el("div", { class: "anchor", "data-anchor": String(a.id) },
    thumb(a.image_url, a.caption),
    el("div", {},
      el("div", {}, a.caption || `anchor ${a.id}`),
      el("div", { class: "nums" },
        `${a.query_weight.toFixed(3)} × ${a.item_weight.toFixed(3)} = ${a.contribution.toFixed(4)}`),
      Object.assign(el("div", { class: "bar" }), { style: `width:${(100 * a.contribution / biggest).toFixed(1)}%` }))));
  const rest = why.rest > 0 ? [el("p", { class: "muted" }, `+ ${why.rest.toFixed(4)} from the other ${why.shared_anchors - why.anchors.length} shared anchors`)] : [];
  $("explain-body").replaceChildren(
    el("h2", {}, `score ${why.score.toFixed(4)}`),
    el("p", { class: "muted" },
      why.shared_anchors ? `the sum over ${why.shared_anchors} anchor pairs the query and the item share`
        : "no shared anchor: no match"),
    el("div", { class: "pair" },
      el("figure", {}, queryView, el("figcaption", {}, "query")),
      el("figure", {}, thumb(why.item_image_url || hit.image_url, why.item), el("figcaption", {}, why.item))),
    el("h3", {}, "Anchor pairs behind the score"), ...rows, ...rest);
}

function setImage(file) {
  if (!file || !file.type.startsWith("image/")) return;
  state.image = file;
  state.imageName = file.name || "query.png";
  $("query").value = "";
  $("image-chip").textContent = `🖼 ${state.imageName} ×`;
  $("image-chip").hidden = false;
  search();
}

function clearImage() {
  state.image = null;
  $("image-chip").hidden = true;
}

window.addEventListener("DOMContentLoaded", () => {
  $("api-key").value = localStorage.getItem("asif-api-key") || "";
  $("api-key").addEventListener("change", (e) => {
    localStorage.setItem("asif-api-key", e.target.value); blobs.clear(); loadModel();
  });
  $("search-form").addEventListener("submit", search);
  $("query").addEventListener("input", clearImage);
  $("image").addEventListener("change", (e) => setImage(e.target.files[0]));
  $("image-chip").addEventListener("click", clearImage);
  $("catalog").addEventListener("change", () => search());
  $("close-explain").addEventListener("click", () => { $("explain").hidden = true; });
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault(); drop.classList.remove("over"); setImage(e.dataTransfer.files[0]);
  });
  loadModel();
});
