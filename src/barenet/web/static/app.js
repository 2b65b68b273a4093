// barenet's demo page: draw and predict, look inside the network, watch one learn.
// Plain JavaScript, no libraries; every number comes from the server's JSON API.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  models: [],
  defaults: { mnist: null, fashion: null },
  chosen: { digits: null, fashion: null },  // the network picked on the Draw page, per mode
  learned: null,  // the name the network trained on the Learn page is served by
  mode: "digits",
  result: null,
  lastBody: null,  // the latest prediction request, to ask again when the network changes
  weightsFor: null,
  insideFor: null,
  why: { cls: null, method: "gradient", data: null },
};

// ---- helpers --------------------------------------------------------------------------------
async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  };
  const response = await fetch(path, options);
  const data = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
  return data;
}

function paintGrey(canvas, pixels, invert = false) {
  // Draw 784 grey values (0..255) on a 28x28 canvas.
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(28, 28);
  pixels.forEach((v, i) => {
    const g = invert ? 255 - v : v;
    img.data.set([g, g, g, 255], 4 * i);
  });
  ctx.putImageData(img, 0, 0);
}

function heat(t) {
  // 0..1 -> dark blue, purple, orange, pale yellow.
  const stops = [[13, 8, 48], [120, 28, 109], [237, 105, 37], [252, 255, 164]];
  const x = Math.min(Math.max(t, 0), 1) * (stops.length - 1);
  const i = Math.min(Math.floor(x), stops.length - 2);
  const f = x - i;
  return stops[i].map((a, k) => Math.round(a + f * (stops[i + 1][k] - a)));
}

function diverging(t) {
  // -1..1 -> blue, white, red.
  const a = Math.min(Math.abs(t), 1);
  const fade = Math.round(255 * (1 - a));
  return t >= 0 ? [255, fade, fade] : [fade, fade, 255];
}

function gridCanvas(values, cols, color, scale) {
  const rows = Math.ceil(values.length / cols);
  const canvas = document.createElement("canvas");
  canvas.width = cols;
  canvas.height = rows;
  canvas.style.width = `${cols * scale}px`;
  canvas.style.height = `${rows * scale}px`;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(cols, rows);
  for (let i = 0; i < cols * rows; i++) {
    img.data.set(i < values.length ? [...color(values[i]), 255] : [228, 231, 236, 255], 4 * i);
  }
  ctx.putImageData(img, 0, 0);
  return canvas;
}

// ---- tabs -----------------------------------------------------------------------------------
function showTab() {
  const name = (location.hash || "#draw").slice(1);
  const known = ["draw", "inside", "learn"].includes(name) ? name : "draw";
  document.querySelectorAll(".tab").forEach((s) => { s.hidden = s.id !== known; });
  document.querySelectorAll("nav a").forEach((a) => {
    a.classList.toggle("active", a.dataset.tab === known);
  });
  if (known === "inside") {
    showInside();
    loadWeights();
  }
}

// ---- models ---------------------------------------------------------------------------------
const datasetOf = (mode) => (mode === "fashion" ? "fashion" : "mnist");

function modelName() {
  // The network chosen for this mode, else the server's default (the most accurate).
  const chosen = state.chosen[state.mode];
  if (chosen && state.models.some((m) => m.name === chosen)) return chosen;
  return state.defaults[datasetOf(state.mode)];
}

function currentModel() {
  return state.models.find((m) => m.name === modelName()) || null;
}

function describeModel() {
  const m = currentModel();
  if (!m) {
    $("model-info").textContent = "no model served for this mode";
    return;
  }
  const acc = m.test_accuracy ? `, ${(100 * m.test_accuracy).toFixed(1)}% test accuracy` :
    m.val_accuracy ? `, ${(100 * m.val_accuracy).toFixed(1)}% validation accuracy` : "";
  $("model-info").textContent = `${m.name}: ${m.shape}${acc}`;
}

function fillModelChoice() {
  const select = $("model-choice");
  const dataset = datasetOf(state.mode);
  select.replaceChildren(...state.models.filter((m) => m.dataset === dataset).map((m) => {
    const option = document.createElement("option");
    option.value = m.name;
    const acc = m.test_accuracy || m.val_accuracy;
    option.textContent = acc ? `${m.name} (${(100 * acc).toFixed(1)}%)` : m.name;
    return option;
  }));
  select.value = modelName() || "";
  select.disabled = select.options.length < 2;
}

function chooseModel(name) {
  state.chosen[state.mode] = name;
  try {
    localStorage.setItem(`barenet-model-${state.mode}`, name);
  } catch (e) { /* storage may be off: the choice then lasts as long as the page */ }
  fillModelChoice();
  describeModel();
  state.weightsFor = null;
  state.insideFor = null;
  state.why.cls = null;
  if (state.lastBody) predict(state.lastBody);
  else showInside();
}

async function loadModels() {
  const data = await api("/api/models");
  state.models = data.models;
  state.defaults = data.default;
  state.learned = data.learned;
  for (const mode of ["digits", "fashion"]) {
    try {
      state.chosen[mode] = state.chosen[mode] || localStorage.getItem(`barenet-model-${mode}`);
    } catch (e) { /* no storage: keep the defaults */ }
  }
  $("mode-fashion").disabled = !state.defaults.fashion;
  $("mode-fashion").title = state.defaults.fashion ? "" : "no Fashion-MNIST model is served";
  fillModelChoice();
  describeModel();
  if (!state.result) clearResult();
}

// ---- prediction -----------------------------------------------------------------------------
function clearResult() {
  state.result = null;
  state.lastBody = null;
  state.why.cls = null;
  state.why.data = null;
  const m = currentModel();
  const classes = m ? m.classes : [];
  $("bars").replaceChildren(...classes.map((c, i) => barRow(c, 0, false, i)));
  $("top").textContent = "?";
  $("top").classList.remove("long");
  $("confidence").textContent = state.mode === "digits" ? "draw a digit" : "";
  paintGrey($("seen"), new Array(784).fill(0));
  $("draw-error").textContent = "";
  $("why").hidden = true;
}

function barRow(label, p, best, index) {
  const li = document.createElement("li");
  li.className = best ? "best" : "";
  li.dataset.class = String(index);
  li.title = `why ${label}?`;
  li.addEventListener("click", () => {
    if (!state.result) return;
    state.why.cls = index;
    markChosen();
    explain();
  });
  li.innerHTML = '<span class="label"></span><span class="track"><span class="bar"></span></span>' +
    '<span class="value"></span>';
  li.querySelector(".label").textContent = label;
  li.querySelector(".bar").style.width = `${(100 * p).toFixed(1)}%`;
  li.querySelector(".value").textContent = `${(100 * p).toFixed(1)}%`;
  return li;
}

function showResult(r) {
  state.result = r;
  $("bars").replaceChildren(...r.classes.map((c, i) => barRow(c, r.probabilities[i], i === r.top, i)));
  $("top").textContent = r.label;
  $("top").classList.toggle("long", r.label.length > 3);
  $("confidence").textContent = `${(100 * r.probabilities[r.top]).toFixed(1)}% sure`;
  paintGrey($("seen"), r.input);
  $("draw-error").textContent = "";
  markChosen();
  showInside();
  explain();
}

let inFlight = false;
let pending = null;

async function predict(body) {
  // One request at a time; while one is out, only the newest next request is kept.
  if (inFlight) {
    pending = body;
    return;
  }
  inFlight = true;
  try {
    const mode = state.mode;
    const model = modelName();
    state.lastBody = body;
    const result = await api("/api/predict", { ...body, model });
    if (mode === state.mode && model === modelName() && state.lastBody === body) {
      showResult(result);
    }
  } catch (e) {
    $("draw-error").textContent = e.message;
  } finally {
    inFlight = false;
    if (pending) {
      const next = pending;
      pending = null;
      predict(next);
    }
  }
}

// ---- why: saliency ---------------------------------------------------------------------------
function whyClass() {
  const r = state.result;
  return state.why.cls === null ? (r ? r.top : null) : state.why.cls;
}

function markChosen() {
  const chosen = whyClass();
  [...$("bars").children].forEach((li, i) => li.classList.toggle("chosen", i === chosen));
}

function paintSaliency(canvas, input, values) {
  // The input in grey, dimmed, under the values in red (positive) and blue (negative),
  // scaled by the largest magnitude.
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(28, 28);
  const peak = Math.max(...values.map(Math.abs), 1e-12);
  values.forEach((v, i) => {
    const t = v / peak;
    const a = Math.min(Math.abs(t) * 1.6, 1);
    const grey = 40 + 0.45 * input[i];
    const [r, g, b] = t >= 0 ? [235, 60, 50] : [40, 110, 235];
    img.data.set([grey + a * (r - grey), grey + a * (g - grey), grey + a * (b - grey), 255], 4 * i);
  });
  ctx.putImageData(img, 0, 0);
  canvas.dataset.peak = String(peak);
}

function renderWhy() {
  const d = state.why.data;
  const r = state.result;
  if (!d || !r) return;
  $("why").hidden = false;
  $("why-class").textContent = `${d.label}? (${(100 * d.probability).toFixed(1)}%)`;
  $("why-gradient").classList.toggle("active", state.why.method === "gradient");
  $("why-times").classList.toggle("active", state.why.method !== "gradient");
  const map = $("why-map");
  paintSaliency(map, r.input, state.why.method === "gradient" ? d.gradient : d.gradient_x_input);
  map.dataset.class = String(d.class);
  $("alternatives").replaceChildren(...d.alternatives.map((alt) => {
    const figure = document.createElement("figure");
    const c = document.createElement("canvas");
    c.width = c.height = 28;
    paintSaliency(c, r.input, alt.evidence);
    const caption = document.createElement("figcaption");
    caption.textContent = `a ${alt.label}? (${(100 * alt.probability).toFixed(1)}%)`;
    figure.append(c, caption);
    figure.title = `red: ink here would make it more a ${alt.label} than a ${d.label}`;
    figure.addEventListener("click", () => {
      state.why.cls = alt.class;
      markChosen();
      explain();
    });
    return figure;
  }));
}

const whyQueue = { busy: false, again: false };

async function explain() {
  // One request at a time; a newer wish waits for the current one and is sent after it.
  if (whyQueue.busy) {
    whyQueue.again = true;
    return;
  }
  const r = state.result;
  if (!r) return;
  whyQueue.busy = true;
  try {
    const body = { model: r.model, pixels: r.input, preprocess: false, class: whyClass() };
    const data = await api("/api/saliency", body);
    if (state.result === r) {
      state.why.data = data;
      renderWhy();
    }
  } catch (e) {
    $("draw-error").textContent = e.message;
  } finally {
    whyQueue.busy = false;
    if (whyQueue.again) {
      whyQueue.again = false;
      explain();
    }
  }
}

// ---- drawing pad ----------------------------------------------------------------------------
function setUpPad() {
  const pad = $("pad");
  const ctx = pad.getContext("2d");
  let drawing = false;
  let inked = null;  // the ink's extent [left, top, right, bottom], null while blank
  let last = null;
  const blank = () => {
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, pad.width, pad.height);
    inked = null;
  };
  const point = (e) => {
    const box = pad.getBoundingClientRect();
    return [(e.clientX - box.left) * pad.width / box.width,
      (e.clientY - box.top) * pad.height / box.height];
  };
  // A drawing is sent once its ink spans MIN_INK canvas pixels (4 of the network's 28):
  // a blank pad or a lone dot is not a digit, and asking would only earn a 400.
  const MIN_INK = 40;
  const send = () => {
    if (inked && Math.max(inked[2] - inked[0], inked[3] - inked[1]) >= MIN_INK) {
      predict({ image: pad.toDataURL("image/png") });
    }
  };
  const stroke = (to) => {
    ctx.strokeStyle = "#111";
    ctx.lineWidth = 20;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.moveTo(...(last || to));
    ctx.lineTo(...to);
    ctx.stroke();
    last = to;
    const [x, y] = to;
    inked = inked ? [Math.min(inked[0], x), Math.min(inked[1], y), Math.max(inked[2], x),
      Math.max(inked[3], y)] : [x, y, x, y];
  };
  pad.addEventListener("pointerdown", (e) => {
    drawing = true;
    last = null;
    pad.setPointerCapture(e.pointerId);
    stroke(point(e));
    send();
  });
  pad.addEventListener("pointermove", (e) => {
    if (!drawing) return;
    stroke(point(e));
    send();
  });
  const end = () => {
    if (!drawing) return;
    drawing = false;
    send();
  };
  pad.addEventListener("pointerup", end);
  pad.addEventListener("pointercancel", end);
  $("clear").addEventListener("click", () => {
    blank();
    pending = null;
    clearResult();
    showInside();
  });
  blank();
}

// ---- fashion mode ---------------------------------------------------------------------------
function setMode(mode) {
  state.mode = mode;
  $("mode-digits").classList.toggle("active", mode === "digits");
  $("mode-fashion").classList.toggle("active", mode === "fashion");
  $("digit-input").hidden = mode !== "digits";
  $("fashion-input").hidden = mode !== "fashion";
  $("seen-note").textContent = mode === "digits" ? "28\u00d728 pixels, prepared like MNIST" :
    "28\u00d728 pixels, as in Fashion-MNIST";
  pending = null;
  fillModelChoice();
  describeModel();
  clearResult();
  showInside();
  if (mode === "fashion") randomGarment();
}

function showGarment(pixels) {
  const small = document.createElement("canvas");
  small.width = small.height = 28;
  paintGrey(small, pixels, true);
  const ctx = $("garment").getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(small, 0, 0, 280, 280);
}

async function randomGarment() {
  try {
    const s = await api("/api/sample?dataset=fashion");
    showGarment(s.pixels);
    $("truth").textContent = `Test image #${s.index}: a ${s.class}`;
    predict({ pixels: s.pixels, preprocess: false });
  } catch (e) {
    $("draw-error").textContent = e.message;
  }
}

// A photo is sent as itself (at most PHOTO_SIDE pixels a side, on white where transparent),
// so the server sees its own paper around the object; the canvas only shows it.
const PHOTO_SIDE = 640;

function uploadPicture(file, canvasId, onShown) {
  const url = URL.createObjectURL(file);
  const img = new Image();
  img.onload = () => {
    URL.revokeObjectURL(url);
    const fit = (side) => {
      const k = Math.min(side / img.width, side / img.height, 1);
      return [Math.max(1, Math.round(img.width * k)), Math.max(1, Math.round(img.height * k))];
    };
    const [sw, sh] = fit(PHOTO_SIDE);
    const photo = document.createElement("canvas");
    photo.width = sw;
    photo.height = sh;
    const pctx = photo.getContext("2d");
    pctx.fillStyle = "#fff";
    pctx.fillRect(0, 0, sw, sh);
    pctx.drawImage(img, 0, 0, sw, sh);
    const canvas = $(canvasId);
    const [w, h] = fit(canvas.width);
    const ctx = canvas.getContext("2d");
    ctx.imageSmoothingEnabled = true;
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.drawImage(photo, (canvas.width - w) / 2, (canvas.height - h) / 2, w, h);
    if (onShown) onShown();
    predict({ image: photo.toDataURL("image/jpeg", 0.92) });
  };
  img.onerror = () => {
    URL.revokeObjectURL(url);
    $("draw-error").textContent = `${file.name} is not a picture this browser can read`;
  };
  img.src = url;
}

function uploadGarment(file) {
  uploadPicture(file, "garment", () => { $("truth").textContent = `Your picture: ${file.name}`; });
}

// ---- inside view ----------------------------------------------------------------------------
function showInside() {
  const r = state.result;
  const holder = $("activations");
  const m = currentModel();
  $("conv-card").hidden = !m || m.kind !== "cnn";
  if (!r) {
    paintGrey($("inside-input"), new Array(784).fill(0));
    $("inside-answer").textContent = "Draw something on the Draw page first.";
    holder.replaceChildren();
    $("conv-blocks").replaceChildren();
    state.insideFor = null;
    return;
  }
  if (!$("inside").hidden) loadInside();
  paintGrey($("inside-input"), r.input);
  $("inside-answer").textContent = `${r.model} answers ${r.label} ` +
    `(${(100 * r.probabilities[r.top]).toFixed(1)}%)`;
  holder.replaceChildren(...r.activations.map((layer, k) => {
    const peak = Math.max(...layer.values, 1e-9);
    const cols = 2 ** Math.ceil(Math.log2(Math.sqrt(layer.units)));  // 512 units: 32x16
    const figure = document.createElement("figure");
    const scale = Math.max(3, Math.floor(192 / cols));
    figure.append(gridCanvas(layer.values.map((v) => v / peak), cols, heat, scale));
    const caption = document.createElement("figcaption");
    const active = layer.values.filter((v) => v > 0).length;
    caption.textContent = `hidden layer ${k + 1}: ${active} of ${layer.units} units active`;
    figure.append(caption);
    return figure;
  }));
}

function mapFigure(values, size, scale, label) {
  const figure = document.createElement("figure");
  figure.append(gridCanvas(values, size[1], heat, scale));
  const caption = document.createElement("figcaption");
  caption.textContent = label;
  figure.append(caption);
  return figure;
}

function renderBlocks(data) {
  $("conv-blocks").replaceChildren(...data.blocks.map((b, k) => {
    const section = document.createElement("section");
    section.className = "block";
    const title = document.createElement("h3");
    title.textContent = `Block ${k + 1}: ${b.channels} channels of ${b.size.join("\u00d7")}` +
      (b.channels > b.maps.length ? `, the ${b.maps.length} strongest` : "");
    const maps = document.createElement("div");
    maps.className = "maps";
    const scale = Math.max(2, Math.round(56 / b.size[1]));
    maps.append(...b.maps.map((m) => mapFigure(m.values, b.size, scale, `ch ${m.channel}`)));
    section.append(title, maps);
    if (b.pooled) {
      const pooled = document.createElement("div");
      pooled.className = "maps pooled";
      const small = Math.max(2, Math.round(28 / b.pooled_size[1]));
      pooled.append(...b.pooled.map((m) => mapFigure(m.values, b.pooled_size, small,
        `ch ${m.channel}`)));
      const note = document.createElement("p");
      note.className = "muted";
      note.textContent = `after 2\u00d72 max pooling: ${b.pooled_size.join("\u00d7")}`;
      section.append(note, pooled);
    }
    return section;
  }));
}

const insideQueue = { busy: false, again: false };

async function loadInside() {
  // The feature maps of a CNN for the current input, one request at a time.
  const r = state.result;
  const m = currentModel();
  if (!r || !m || m.kind !== "cnn" || state.insideFor === r) return;
  if (insideQueue.busy) {
    insideQueue.again = true;
    return;
  }
  insideQueue.busy = true;
  try {
    const data = await api("/api/inside", { model: r.model, pixels: r.input, preprocess: false });
    if (state.result === r) {
      state.insideFor = r;
      renderBlocks(data);
    }
  } catch (e) {
    $("conv-blocks").textContent = e.message;
  } finally {
    insideQueue.busy = false;
    if (insideQueue.again) {
      insideQueue.again = false;
      loadInside();
    }
  }
}

async function loadWeights() {
  const m = currentModel();
  if (!m || state.weightsFor === m.name) return;
  state.weightsFor = m.name;
  try {
    const w = await api(`/api/weights?model=${encodeURIComponent(m.name)}&count=32`);
    const conv = w.kind === "conv";
    $("weights-title").textContent = conv ? "First-layer kernels" : "First-layer weights";
    $("weights-note").textContent = conv ?
      `What the first convolution looks for: each ${w.size.join("\u00d7")} kernel slides over ` +
      "the image (red positive, blue negative); its maps are in the first block above." :
      "What the first units look for: each 28\u00d728 image holds one unit's weights on the " +
      "input pixels (red positive, blue negative).";
    $("weights").classList.toggle("kernels", conv);
    $("weights").replaceChildren(...w.images.map((img) => gridCanvas(
      img.map((v) => v / 127), w.size[1], diverging, conv ? 14 : 2)));
  } catch (e) {
    $("weights").textContent = e.message;
  }
}

// ---- learn page -----------------------------------------------------------------------------
const run = {
  source: null, steps: 1, points: [], val: [], classes: [], panel: null, dataset: "mnist",
};

function showConfusion(matrix, epoch) {
  // Rows: true classes; columns: answers. Shade by the share of the row.
  const table = $("confusion");
  const head = document.createElement("tr");
  head.append(document.createElement("th"), ...run.classes.map((c, j) => {
    const th = document.createElement("th");
    th.textContent = String(j);
    th.title = `answered ${c}`;
    return th;
  }));
  const rows = matrix.map((row, i) => {
    const tr = document.createElement("tr");
    const label = document.createElement("th");
    label.textContent = run.classes[i];
    const total = Math.max(1, row.reduce((a, b) => a + b, 0));
    tr.append(label, ...row.map((n, j) => {
      const td = document.createElement("td");
      td.textContent = n ? String(n) : "";
      const share = n / total;
      td.className = i === j ? "diagonal" : n ? "miss" : "";
      td.style.setProperty("--share", share.toFixed(3));
      td.title = `${n} ${run.classes[i]} answered ${run.classes[j]}`;
      return td;
    }));
    return tr;
  });
  table.replaceChildren(head, ...rows);
  table.dataset.epoch = String(epoch);
}

function drawCurve() {
  const canvas = $("curve");
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height;
  const pad = { l: 48, r: 48, t: 40, b: 36 };
  const w = W - pad.l - pad.r, h = H - pad.t - pad.b;
  ctx.clearRect(0, 0, W, H);
  ctx.font = "12px system-ui, sans-serif";
  const maxLoss = Math.ceil(2 * Math.max(0.5, ...run.points.map((p) => p.loss || 0))) / 2;
  const X = (step) => pad.l + w * step / Math.max(run.steps, 1);
  const Yloss = (v) => pad.t + h * (1 - v / maxLoss);
  const Yacc = (v) => pad.t + h * (1 - v);
  // Grid and axes.
  ctx.strokeStyle = "#e3e6ec";
  ctx.fillStyle = "#667";
  for (let i = 0; i <= 4; i++) {
    const y = pad.t + h * i / 4;
    ctx.beginPath(); ctx.moveTo(pad.l, y); ctx.lineTo(pad.l + w, y); ctx.stroke();
    ctx.textAlign = "right";
    ctx.fillText((maxLoss * (1 - i / 4)).toFixed(2), pad.l - 6, y + 4);
    ctx.textAlign = "left";
    ctx.fillText(`${100 - 25 * i}%`, pad.l + w + 6, y + 4);
  }
  ctx.textAlign = "center";
  ctx.fillText(`training steps (${run.steps} in all)`, pad.l + w / 2, H - 8);
  const line = (key, Y, color) => {
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    run.points.filter((p) => p[key] !== null).forEach((p, i) => {
      if (i === 0) ctx.moveTo(X(p.step), Y(p[key])); else ctx.lineTo(X(p.step), Y(p[key]));
    });
    ctx.stroke();
    ctx.lineWidth = 1;
  };
  line("loss", Yloss, "#d1495b");
  line("accuracy", Yacc, "#2e86ab");
  ctx.fillStyle = "#1b998b";
  run.val.forEach((p) => {
    ctx.beginPath(); ctx.arc(X(p.step), Yacc(p.val_accuracy), 5, 0, 2 * Math.PI); ctx.fill();
  });
  // Legend.
  const legend = [["#d1495b", "training loss (left)"], ["#2e86ab", "training accuracy (right)"],
    ["#1b998b", "validation accuracy"]];
  ctx.textAlign = "left";
  legend.forEach(([color, text], i) => {
    const x = pad.l + 10 + i * 185;
    ctx.fillStyle = color;
    ctx.fillRect(x, 12, 14, 4);
    ctx.fillStyle = "#334";
    ctx.fillText(text, x + 20, 18);
  });
  canvas.dataset.points = String(run.points.length);
}

function showPanel(predictions) {
  const holder = $("panel");
  if (!run.panel) return;
  if (holder.children.length !== run.panel.images.length) {
    holder.replaceChildren(...run.panel.images.map((pixels) => {
      const figure = document.createElement("figure");
      const c = document.createElement("canvas");
      c.width = c.height = 28;
      paintGrey(c, pixels);
      figure.append(c, document.createElement("figcaption"));
      return figure;
    }));
  }
  [...holder.children].forEach((figure, i) => {
    const truth = run.panel.labels[i];
    const guess = predictions ? predictions[i] : null;
    figure.className = guess === null ? "" : guess === truth ? "right" : "wrong";
    figure.querySelector("figcaption").textContent = guess === null ? run.classes[truth] :
      run.classes[guess];
    figure.title = `truth: ${run.classes[truth]}`;
  });
}

function onEvent(e) {
  const ev = JSON.parse(e.data);
  const status = $("train-status");
  if (ev.type === "start") {
    run.steps = ev.steps;
    run.points = [];
    run.val = [];
    run.classes = ev.classes;
    run.panel = ev.panel;
    run.dataset = ev.settings.dataset;
    $("panel").replaceChildren();
    $("confusion").replaceChildren();
    $("confusion").dataset.epoch = "0";
    $("use-learned").hidden = true;
    showPanel(null);
    status.textContent = `Training on ${ev.samples} images...`;
  } else if (ev.type === "progress") {
    run.points.push(ev);
    showPanel(ev.predictions);
    status.textContent = `Epoch ${ev.epoch}, step ${ev.step} of ${ev.steps}: ` +
      `loss ${ev.loss.toFixed(3)}, accuracy ${(100 * ev.accuracy).toFixed(1)}%`;
  } else if (ev.type === "epoch") {
    if (ev.val_accuracy !== null) run.val.push(ev);
    if (ev.confusion) showConfusion(ev.confusion, ev.epoch);
    status.textContent = `Epoch ${ev.epoch} done: validation accuracy ` +
      `${(100 * ev.val_accuracy).toFixed(1)}%`;
  } else if (ev.type === "end") {
    const last = run.val.length ? run.val[run.val.length - 1] : null;
    const acc = last ? `, validation accuracy ${(100 * last.val_accuracy).toFixed(1)}%` : "";
    status.textContent = ev.status === "done" ? `Done${acc}.` :
      ev.status === "stopped" ? `Stopped${acc}.` : `Failed: ${ev.message}`;
    status.classList.toggle("error", ev.status === "error");
    $("use-learned").hidden = ev.status !== "done";
    listen(false);
  }
  drawCurve();
}

function listen(on) {
  if (run.source) run.source.close();
  run.source = null;
  $("start").disabled = on;
  $("stop").disabled = !on;
  if (!on) return;
  run.source = new EventSource("/api/train/events");
  run.source.onmessage = onEvent;
  run.source.onerror = () => {
    // The server went away or the run has ended: ask what happened.
    api("/api/train").then((s) => {
      if (s.status !== "running") listen(false);
    }).catch(() => listen(false));
  };
}

function setUpLearn() {
  const form = $("train-form");
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = new FormData(form);
    const status = $("train-status");
    status.classList.remove("error");
    try {
      await api("/api/train", {
        dataset: f.get("dataset"),
        kind: f.get("kind"),
        channels: String(f.get("channels")).split(",").map((s) => Number(s.trim())),
        hidden: String(f.get("hidden")).split(",").map((s) => Number(s.trim())),
        lr: Number(f.get("lr")),
        epochs: Number(f.get("epochs")),
        samples: Number(f.get("samples")),
      });
      status.textContent = "Starting...";
      listen(true);
    } catch (err) {
      status.textContent = err.message;
      status.classList.add("error");
    }
  });
  const kind = form.elements.namedItem("kind");
  kind.addEventListener("change", () => { $("channels-field").hidden = kind.value !== "cnn"; });
  $("channels-field").hidden = kind.value !== "cnn";
  $("use-learned").addEventListener("click", async () => {
    // Serve the new network on the Draw page for its dataset, and go there.
    await loadModels();
    const mode = run.dataset === "fashion" ? "fashion" : "digits";
    if (!state.learned) return;
    if (state.mode !== mode) setMode(mode);
    chooseModel(state.learned);
    location.hash = "#draw";
  });
  $("stop").addEventListener("click", () => {
    $("stop").disabled = true;
    api("/api/train/stop", {}).catch((err) => { $("train-status").textContent = err.message; });
  });
  drawCurve();
  api("/api/train").then((s) => { if (s.status === "running") listen(true); }).catch(() => {});
}

// ---- start ----------------------------------------------------------------------------------
window.addEventListener("hashchange", showTab);
document.addEventListener("DOMContentLoaded", () => {
  setUpPad();
  setUpLearn();
  $("mode-digits").addEventListener("click", () => setMode("digits"));
  $("mode-fashion").addEventListener("click", () => setMode("fashion"));
  $("model-choice").addEventListener("change", (e) => chooseModel(e.target.value));
  $("why-gradient").addEventListener("click", () => { state.why.method = "gradient"; renderWhy(); });
  $("why-times").addEventListener("click", () => { state.why.method = "times"; renderWhy(); });
  $("random").addEventListener("click", randomGarment);
  $("upload").addEventListener("change", (e) => {
    if (e.target.files.length) uploadGarment(e.target.files[0]);
    e.target.value = "";
  });
  $("upload-digit").addEventListener("change", (e) => {
    if (e.target.files.length) uploadPicture(e.target.files[0], "pad");
    e.target.value = "";
  });
  showTab();
  loadModels().catch((e) => { $("draw-error").textContent = e.message; });
});
