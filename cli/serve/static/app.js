// The page of `embed serve`: draw (or upload) an image, ask the run what it is, enrol it, forget a class.
// Plain JavaScript, no library and no network beyond this server, so it works offline.
"use strict";

const $ = (id) => document.getElementById(id);
const pad = $("pad");
const ctx = pad.getContext("2d");
let drawn = false;        // something on the pad since the last clear
let photo = null;         // an uploaded file, asked about as it is until the next stroke
let runInfo = null;
let askTimer = null;

// --- the drawing pad: pointer events, so a mouse, a pen and a finger all draw ---
function clearPad() {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, pad.width, pad.height);
  drawn = false;
  photo = null;
}

function padPoint(event) {
  const box = pad.getBoundingClientRect();
  return [(event.clientX - box.left) * pad.width / box.width, (event.clientY - box.top) * pad.height / box.height];
}

let last = null;
pad.addEventListener("pointerdown", (event) => {
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  if (photo) clearPad();
  last = padPoint(event);
  ctx.fillStyle = "#000";
  ctx.beginPath();
  ctx.arc(last[0], last[1], pad.width / 28, 0, 2 * Math.PI);
  ctx.fill();
  drawn = true;
});
pad.addEventListener("pointermove", (event) => {
  if (!last) return;
  const point = padPoint(event);
  ctx.strokeStyle = "#000";
  ctx.lineWidth = pad.width / 14;
  ctx.lineCap = ctx.lineJoin = "round";
  ctx.beginPath();
  ctx.moveTo(last[0], last[1]);
  ctx.lineTo(point[0], point[1]);
  ctx.stroke();
  last = point;
});
function endStroke() {
  if (!last) return;
  last = null;
  clearTimeout(askTimer);
  askTimer = setTimeout(ask, 400);  // asks by itself once the drawing pauses
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

function currentImage() {
  if (photo) return Promise.resolve(photo);
  if (!drawn) return Promise.resolve(null);
  return new Promise((resolve) => pad.toBlob(resolve, "image/png"));
}

// --- talking to the server ---
function headers() {
  const token = $("token").value.trim();
  return token ? { Authorization: "Bearer " + token } : {};
}

async function call(method, path, form) {
  const response = await fetch(path, { method, body: form, headers: headers() });
  const body = await response.json().catch(() => ({ error: "the server sent no JSON (" + response.status + ")" }));
  if (!response.ok) {
    const field = body.field ? " [" + body.field + "]" : "";
    throw new Error((body.error || response.statusText) + field);
  }
  return body;
}

function say(message, isError) {
  $("status").textContent = message;
  $("status").className = isError ? "error" : "";
}

function classPath(name) {
  return "/classes/" + name.split("/").map(encodeURIComponent).join("/");
}

function picture(name, caption, count) {
  const figure = document.createElement("figure");
  const holder = count === 0 ? document.createElement("div") : document.createElement("img");
  if (count === 0) holder.className = "noimg";
  else { holder.src = classPath(name) + "/thumbnails/0"; holder.alt = name; }
  figure.append(holder);
  const text = document.createElement("figcaption");
  text.innerHTML = "<strong></strong><br>";
  text.firstChild.textContent = name;
  text.append(caption);
  figure.append(text);
  return figure;
}

let thumbnailCounts = {};

async function ask() {
  const image = await currentImage();
  if (!image) { say("draw something first, or upload a photo"); return; }
  const form = new FormData();
  form.append("images", image, photo ? photo.name : "drawing.png");
  try {
    const [answer] = await call("POST", "/predict", form);
    showAnswer(answer);
    if (runInfo && runInfo.adds) await askSum(image, answer);
    if ($("status").className === "error") say("");  // an answer clears an error, not what enrol or forget said
  } catch (error) { say(error.message, true); }
}

function showAnswer(answer) {
  const name = $("answer-name");
  name.textContent = answer.name;
  name.className = answer.label === null ? "unknown" : "";
  const confidence = answer.confidence === null ? "" : ", confidence " + (100 * answer.confidence).toFixed(1) + "%";
  const beyond = answer.label === null ? " (nearest: " + answer.nearest + ")" : "";
  $("answer-detail").textContent = "distance " + answer.distance.toFixed(3) + confidence + beyond;
  const strip = $("neighbours");
  strip.replaceChildren(...answer.neighbours.map((n) =>
    picture(n.name, n.distance.toFixed(3), thumbnailCounts[n.name] || 0)));
}

async function askSum(image, answer) {
  if (answer.label === null || !/^-?\d+$/.test(answer.name)) { $("sum").textContent = "– (not a digit)"; return; }
  const form = new FormData();
  form.append("image", image, "drawing.png");
  form.append("number", $("number").value || "0");
  try {
    const [result] = await call("POST", "/sum", form);
    $("sum").textContent = result.digit + " + " + result.number + " = " + result.sum;
  } catch (error) { $("sum").textContent = "– (" + error.message + ")"; }
}

async function enrol() {
  const name = $("enrol-name").value.trim();
  const image = await currentImage();
  if (!name) { say("give the drawing a name first", true); return; }
  if (!image) { say("draw something first, or upload a photo", true); return; }
  const form = new FormData();
  form.append("images", image, "drawing.png");
  try {
    const enrolled = await call("POST", classPath(name) + "/images", form);
    say("enrolled as " + enrolled.name + " (" + enrolled.shots + " shot" + (enrolled.shots === 1 ? "" : "s") + ")");
    await loadClasses();
  } catch (error) { say(error.message, true); }
}

async function forget(name) {
  if (!confirm("Forget the class " + name + "?")) return;
  try {
    await call("DELETE", classPath(name));
    say("forgot " + name);
    await loadClasses();
  } catch (error) { say(error.message, true); }
}

async function loadClasses() {
  const classes = await call("GET", "/classes");
  thumbnailCounts = Object.fromEntries(classes.map((c) => [c.name, c.thumbnails]));
  $("classes").replaceChildren(...classes.map((c) => {
    const item = document.createElement("li");
    const figure = picture(c.name, "", c.thumbnails);
    const image = figure.firstChild;
    const text = document.createElement("div");
    text.innerHTML = '<div class="name"></div><div class="meta"></div>';
    text.firstChild.textContent = c.name;
    text.lastChild.textContent = c.shots + " vector" + (c.shots === 1 ? "" : "s") + ", " + c.origin;
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = "Forget";
    button.title = "Forget " + c.name;
    button.addEventListener("click", () => forget(c.name));
    item.append(image, text, button);
    item.dataset.name = c.name;
    return item;
  }));
}

// --- the pool's clusters that no class claims: name one image to enrol its class ---
async function namePoolImage(id) {
  const name = prompt("Name the class of pool image " + id);
  if (!name || !name.trim()) return;
  const form = new FormData();
  form.append("name", name.trim());
  try {
    const enrolled = await call("POST", "/pool/images/" + id, form);
    say("enrolled pool image " + id + " as " + enrolled.name);
    await loadClasses();
    await loadPool();
  } catch (error) { say(error.message, true); }
}

async function loadPool() {
  const pool = await call("GET", "/pool");
  $("pool-card").hidden = pool.pool === null;
  if (pool.pool === null) return;
  $("pool-info").textContent = pool.pool + ". " + (pool.clusters.length ?
    "What the run would call unknown, largest first; click an image to name its class." : "Every image is claimed.");
  $("pool-clusters").replaceChildren(...pool.clusters.map((cluster) => {
    const row = document.createElement("div");
    row.className = "strip";
    const size = document.createElement("span");
    size.className = "muted";
    size.textContent = "about " + cluster.images + " images";
    row.append(size, ...cluster.ids.map((id) => {
      const image = document.createElement("img");
      image.src = "/pool/images/" + id;
      image.alt = "pool image " + id;
      image.title = "name the class of pool image " + id;
      image.dataset.poolId = id;
      image.addEventListener("click", () => namePoolImage(id));
      return image;
    }));
    return row;
  }));
}

async function loadRun() {
  try {
    runInfo = await call("GET", "/run");
    const threshold = runInfo.threshold === null ? "no threshold" : "unknown from distance " + runInfo.threshold.toFixed(3);
    $("run-info").textContent = runInfo.dataset + " run, trained on " + runInfo.trained_classes.join(", ") +
      "; " + runInfo.vectors + " vectors in the index; " + threshold;
    $("sum-box").hidden = !runInfo.adds;
    $("token-row").hidden = !(runInfo.auth.writes || runInfo.auth.reads);
    await loadClasses();
    await loadPool();
  } catch (error) { say(error.message, true); $("token-row").hidden = false; }
}

$("clear").addEventListener("click", () => { clearPad(); say(""); });
$("ask").addEventListener("click", () => { clearTimeout(askTimer); ask(); });  // one answer, not two
$("enrol").addEventListener("click", enrol);
$("enrol-name").addEventListener("keydown", (event) => { if (event.key === "Enter") enrol(); });
$("number").addEventListener("change", ask);
$("token").addEventListener("change", () => { sessionStorage.setItem("token", $("token").value); loadRun(); });
$("photo").addEventListener("change", async () => {
  const file = $("photo").files[0];
  if (!file) return;
  clearPad();
  const bitmap = await createImageBitmap(file).catch(() => null);
  if (bitmap) {
    const scale = Math.min(pad.width / bitmap.width, pad.height / bitmap.height);
    const w = bitmap.width * scale, h = bitmap.height * scale;
    ctx.drawImage(bitmap, (pad.width - w) / 2, (pad.height - h) / 2, w, h);
  }
  photo = file;
  $("photo").value = "";
  ask();
});

$("token").value = sessionStorage.getItem("token") || "";
clearPad();
loadRun();
