// sisgen scene editor: the page's logic. Plain JavaScript, no libraries, nothing fetched from
// anywhere but this server's /api. The server holds the scene; every tool sends one edit step
// (the edit library's ops) and draws the label map the server sends back, exactly (class ids
// arrive as zlib-packed bytes, not as an image, so no colour management can alter them).
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const ZOOMS = [0.125, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4, 5, 6, 8, 10, 12, 16];
  const RENDER_DELAY_MS = 120;  // debounce: regenerate once edits pause this long
  const S = {
    info: null, palette: new Uint8Array(256 * 3), names: new Map(), things: new Set(),
    scene: null, tool: "brush", cls: 0, zoom: 4, selected: null, drag: null, polygon: [],
    bankItem: null, bankOffset: 0, bankCount: 0, renderTimer: null, rendering: false,
    renderAgain: false, imageUrl: null, hover: null,
  };
  const labelCanvas = $("label-canvas");
  const overlay = $("overlay-canvas");
  const image = $("image");

  // ------------------------------------------------------------------ server calls
  async function api(method, path, body) {
    const options = { method, headers: {} };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const response = await fetch(path, options);
    if (!response.ok) {
      let detail = response.statusText;
      try {
        const data = await response.json();
        detail = typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail);
      } catch (e) { /* not JSON */ }
      throw new Error(`${response.status}: ${detail}`);
    }
    return response;
  }
  const call = async (method, path, body) => (await api(method, path, body)).json();

  function message(text, kind = "") {
    const el = $("message");
    el.textContent = text;
    el.className = kind;
  }

  async function guarded(fn) {
    try {
      await fn();
    } catch (e) {
      message(e.message, "error");
    }
  }

  async function unpack(b64, Type) {
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
    return new Type(await new Response(stream).arrayBuffer());
  }

  // ------------------------------------------------------------------ scene
  async function setScene(st) {
    if (S.scene && st.revision < S.scene.revision) return;  // an older answer came late
    const sem = await unpack(st.semantic, Uint8Array);
    const inst = st.instance ? await unpack(st.instance, Int32Array) : null;
    const restyled = st.restyled ? await unpack(st.restyled, Uint8Array) : null;
    const old = S.scene;
    const resized = !old || old.shape[0] !== st.shape[0] || old.shape[1] !== st.shape[1];
    S.scene = { ...st, sem, inst, restyled };
    if (S.selected && !(inst && inst.includes(S.selected.instance))) select(null);
    if (!old) fitZoom();
    if (resized) applyZoom();
    updateControls();
    drawLabel();
    drawOverlay();
    document.body.dataset.revision = String(st.revision);
    scheduleRender();
  }

  function updateControls() {
    const sc = S.scene;
    $("map-index").value = sc.index;
    $("map-index").max = sc.count - 1;
    $("map-count").textContent = `/ ${sc.count - 1}`;
    $("map-name").textContent = `${sc.id} (${sc.shape[0]}x${sc.shape[1]})`;
    $("prev-map").disabled = sc.index <= 0;
    $("next-map").disabled = sc.index >= sc.count - 1;
    $("undo").disabled = !sc.can_undo;
    $("redo").disabled = !sc.can_redo;
    if (document.activeElement !== $("seed")) $("seed").value = sc.seed;
    const steps = $("steps");
    steps.innerHTML = "";
    for (const step of sc.steps) {
      const li = document.createElement("li");
      const short = Object.entries(step).filter(([k]) => k !== "op").map(([k, v]) =>
        `${k}: ${Array.isArray(v) && Array.isArray(v[0]) ? `[${v.length} points]` : JSON.stringify(v)}`);
      li.textContent = `${step.op} ${short.join(", ")}`;
      steps.appendChild(li);
    }
  }

  function drawLabel() {
    const sc = S.scene;
    const [h, w] = sc.shape;
    labelCanvas.width = w;
    labelCanvas.height = h;
    const ctx = labelCanvas.getContext("2d");
    const img = ctx.createImageData(w, h);
    const px = img.data;
    const sel = S.selected ? S.selected.instance : null;
    for (let i = 0, y = 0; y < h; y++) {
      for (let x = 0; x < w; x++, i++) {
        const c = sc.sem[i] * 3;
        let r = S.palette[c], g = S.palette[c + 1], b = S.palette[c + 2];
        if (sc.restyled && sc.restyled[i] && (x + y) % 4 === 0) { r >>= 1; g >>= 1; b >>= 1; }
        if (sel !== null && sc.inst[i] === sel) {
          const edge = (x === 0 || sc.inst[i - 1] !== sel) || (x === w - 1 || sc.inst[i + 1] !== sel)
            || (y === 0 || sc.inst[i - w] !== sel) || (y === h - 1 || sc.inst[i + w] !== sel);
          if (edge) { r = 255; g = 255; b = 255; } else {
            r = (r + 255) >> 1; g = (g + 255) >> 1; b = (b + 255) >> 1;
          }
        }
        px[4 * i] = r; px[4 * i + 1] = g; px[4 * i + 2] = b; px[4 * i + 3] = 255;
      }
    }
    ctx.putImageData(img, 0, 0);
  }

  // ------------------------------------------------------------------ zoom
  function fitZoom() {
    const w = S.scene.shape[1];
    const room = Math.max(200, ($("views").clientWidth - 60) / 2);
    S.zoom = ZOOMS.filter((z) => z * w <= room).pop() || ZOOMS[0];
  }

  function applyZoom() {
    const [h, w] = S.scene.shape;
    const cw = Math.round(w * S.zoom), ch = Math.round(h * S.zoom);
    for (const el of [labelCanvas, overlay, image]) {
      el.style.width = `${cw}px`;
      el.style.height = `${ch}px`;
    }
    overlay.width = Math.min(cw, 4096);
    overlay.height = Math.min(ch, 4096);
    $("zoom-level").textContent = `${Math.round(S.zoom * 100)}%`;
    drawOverlay();
  }

  function zoomBy(step) {
    const i = ZOOMS.indexOf(S.zoom);
    S.zoom = ZOOMS[Math.max(0, Math.min(ZOOMS.length - 1, (i < 0 ? 4 : i) + step))];
    applyZoom();
  }

  // ------------------------------------------------------------------ rendering
  function scheduleRender() {
    $("spinner").classList.remove("hidden");
    clearTimeout(S.renderTimer);
    S.renderTimer = setTimeout(renderImage, RENDER_DELAY_MS);
  }

  async function renderImage() {
    if (S.rendering) { S.renderAgain = true; return; }
    S.rendering = true;
    $("spinner").classList.remove("hidden");
    const t0 = performance.now();
    try {
      const response = await api("GET", "/api/image");
      const blob = await response.blob();
      const url = URL.createObjectURL(blob);
      await new Promise((resolve) => { image.onload = resolve; image.onerror = resolve; image.src = url; });
      if (S.imageUrl) URL.revokeObjectURL(S.imageUrl);
      S.imageUrl = url;
      const revision = Number(response.headers.get("X-Revision"));
      document.body.dataset.imageRevision = String(revision);
      $("timing").textContent = `(${response.headers.get("X-Edit-Ms")} ms edits + `
        + `${response.headers.get("X-Engine-Ms")} ms engine; fetched in ${Math.round(performance.now() - t0)} ms)`;
      if (revision < S.scene.revision) S.renderAgain = true;
    } catch (e) {
      message(e.message, "error");
    } finally {
      S.rendering = false;
      if (S.renderAgain) {
        S.renderAgain = false;
        renderImage();
      } else {
        $("spinner").classList.add("hidden");
      }
    }
  }

  // ------------------------------------------------------------------ edits
  async function edit(step) {
    await guarded(async () => {
      const result = await call("POST", "/api/edit", step);
      await setScene(result.state);
      const r = result.record;
      message(`${step.op}${r.pixels !== undefined ? `: ${r.pixels} px` : ""}`, "ok");
    });
  }

  async function select(p) {
    if (p === null) {
      S.selected = null;
    } else {
      const hit = await call("POST", "/api/select", { y: p[0], x: p[1] });
      S.selected = hit.instance ? hit : null;
    }
    $("selection").classList.toggle("hidden", !S.selected);
    if (S.selected) {
      $("sel-info").textContent = `${S.selected.name} #${S.selected.instance}, `
        + `${S.selected.pixels} px`;
    }
    if (S.scene) drawLabel();
  }

  const selectedStep = (op, extra = {}) => edit({ op, instance: S.selected.instance, ...extra });

  // ------------------------------------------------------------------ pointer tools
  function pixelOf(ev) {
    const rect = overlay.getBoundingClientRect();
    const [h, w] = S.scene.shape;
    const x = Math.floor(((ev.clientX - rect.left) / rect.width) * w);
    const y = Math.floor(((ev.clientY - rect.top) / rect.height) * h);
    return [Math.max(0, Math.min(h - 1, y)), Math.max(0, Math.min(w - 1, x))];
  }

  const brushRadius = () => Number($("brush-size").value) / 2;

  function drawOverlay() {
    const ctx = overlay.getContext("2d");
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, overlay.width, overlay.height);
    if (!S.scene) return;
    const k = overlay.width / S.scene.shape[1];
    ctx.setTransform(k, 0, 0, k, 0, 0);
    const c = S.cls === 255 ? [0, 0, 0] : Array.from(S.palette.slice(S.cls * 3, S.cls * 3 + 3));
    const color = `rgba(${c[0]},${c[1]},${c[2]},0.85)`;
    ctx.lineWidth = 1 / k;
    const d = S.drag;
    if (d && d.points) {
      ctx.strokeStyle = color;
      ctx.lineCap = "round";
      ctx.lineJoin = "round";
      ctx.lineWidth = Math.max(2 * brushRadius(), 1);
      ctx.beginPath();
      d.points.forEach(([y, x], i) => (i ? ctx.lineTo(x + 0.5, y + 0.5) : ctx.moveTo(x + 0.5, y + 0.5)));
      if (d.points.length === 1) ctx.lineTo(d.points[0][1] + 0.5, d.points[0][0] + 0.51);
      ctx.stroke();
    } else if (d && d.start) {
      const [y0, x0] = d.start, [y1, x1] = d.end;
      if (d.move) {
        ctx.strokeStyle = "#fff";
        const b = S.selected.box;
        ctx.strokeRect(b[1] + x1 - x0, b[0] + y1 - y0, b[3] - b[1], b[2] - b[0]);
      } else {
        ctx.strokeStyle = S.tool === "restyle" ? "#fff" : color;
        ctx.fillStyle = S.tool === "restyle" ? "rgba(255,255,255,0.15)" : color;
        const box = [Math.min(y0, y1), Math.min(x0, x1), Math.max(y0, y1) + 1, Math.max(x0, x1) + 1];
        ctx.fillRect(box[1], box[0], box[3] - box[1], box[2] - box[0]);
      }
    }
    if (S.polygon.length) {
      ctx.strokeStyle = "#fff";
      ctx.fillStyle = color;
      ctx.beginPath();
      S.polygon.forEach(([y, x], i) => (i ? ctx.lineTo(x + 0.5, y + 0.5) : ctx.moveTo(x + 0.5, y + 0.5)));
      if (S.hover) ctx.lineTo(S.hover[1] + 0.5, S.hover[0] + 0.5);
      ctx.closePath();
      ctx.fill();
      ctx.stroke();
    }
  }

  function finishPolygon() {
    if (S.polygon.length >= 3) edit({ op: "fill", class: S.cls, polygon: S.polygon });
    S.polygon = [];
    drawOverlay();
  }

  function onDown(ev) {
    if (!S.scene || ev.button !== 0) return;
    const p = pixelOf(ev);
    overlay.setPointerCapture(ev.pointerId);
    switch (S.tool) {
      case "brush":
        S.drag = { points: [p] };
        break;
      case "rect":
      case "restyle":
        S.drag = { start: p, end: p };
        break;
      case "polygon": {
        const first = S.polygon[0];
        if (first && S.polygon.length >= 3 && Math.abs(first[0] - p[0]) + Math.abs(first[1] - p[1]) <= 1) {
          finishPolygon();
        } else {
          S.polygon.push(p);
        }
        break;
      }
      case "flood":
        edit({ op: "flood_fill", class: S.cls, at: p });
        break;
      case "select":
        if (S.selected && S.scene.inst && S.scene.inst[p[0] * S.scene.shape[1] + p[1]] === S.selected.instance) {
          S.drag = { start: p, end: p, move: true };
        } else {
          guarded(() => select(p));
        }
        break;
      case "paste":
        if (S.bankItem === null) {
          message("choose an item of the instance bank first", "error");
        } else {
          edit({ op: "paste_item", item: S.bankItem, at: p, scale: Number($("paste-scale").value) || 1 });
        }
        break;
      default:
    }
    drawOverlay();
  }

  function onMove(ev) {
    if (!S.scene) return;
    const p = pixelOf(ev);
    S.hover = p;
    showHover(p);
    const d = S.drag;
    if (d && d.points) {
      const last = d.points[d.points.length - 1];
      if (last[0] !== p[0] || last[1] !== p[1]) d.points.push(p);
    } else if (d && d.start) {
      d.end = p;
    }
    if (d || S.polygon.length) drawOverlay();
  }

  function onUp(ev) {
    const d = S.drag;
    S.drag = null;
    if (!d || !S.scene) return;
    if (d.points) {
      edit({ op: "stroke", class: S.cls, points: d.points.slice(0, S.info.limits.max_points),
             radius: brushRadius() });
    } else if (d.move) {
      const by = [d.end[0] - d.start[0], d.end[1] - d.start[1]];
      if (by[0] || by[1]) selectedStep("move_instance", { by });
    } else if (d.start) {
      const [y0, x0] = d.start, [y1, x1] = d.end;
      const box = [Math.min(y0, y1), Math.min(x0, x1), Math.max(y0, y1) + 1, Math.max(x0, x1) + 1];
      if (S.tool === "restyle") {
        guarded(async () => {
          await setScene((await call("POST", "/api/restyle", { box })).state);
          message(`restyled ${box[2] - box[0]}x${box[3] - box[1]} pixels`, "ok");
        });
      } else {
        edit({ op: "fill", class: S.cls, box });
      }
    }
    drawOverlay();
  }

  function showHover(p) {
    const sc = S.scene;
    const i = p[0] * sc.shape[1] + p[1];
    const id = sc.sem[i];
    const inst = sc.inst ? sc.inst[i] : 0;
    $("hover").textContent = `(${p[0]}, ${p[1]})  ${S.names.get(id) ?? id} [${id}]`
      + (inst ? `  instance ${inst}` : "");
    for (const li of document.querySelectorAll("#legend li")) {
      li.classList.toggle("hovered", Number(li.dataset.classId) === id);
    }
  }

  // ------------------------------------------------------------------ panels
  function setTool(tool) {
    S.tool = tool;
    S.polygon = [];
    for (const b of document.querySelectorAll("#tools button")) {
      b.classList.toggle("active", b.dataset.tool === tool);
    }
    drawOverlay();
  }

  function setClass(id) {
    S.cls = id;
    for (const li of document.querySelectorAll("#legend li")) {
      li.classList.toggle("active", Number(li.dataset.classId) === id);
    }
    $("current-class").textContent = S.names.get(id) ?? String(id);
  }

  function buildLegend() {
    const legend = $("legend");
    const bankClass = $("bank-class");
    const classes = [...S.info.vocabulary.classes,
      { id: S.info.vocabulary.ignore, name: "ignore", color: [0, 0, 0], thing: false }];
    for (const c of classes) {
      S.palette.set(c.color, c.id * 3);
      S.names.set(c.id, c.name);
      if (c.thing) S.things.add(c.id);
      const li = document.createElement("li");
      li.dataset.classId = c.id;
      li.dataset.className = c.name;
      li.title = `${c.name} (id ${c.id}${c.thing ? ", thing" : ""}): click to paint with it`;
      const sw = document.createElement("span");
      sw.className = "swatch";
      sw.style.background = `rgb(${c.color.join(",")})`;
      const name = document.createElement("span");
      name.textContent = c.name;
      li.append(sw, name);
      if (c.thing) {
        const tag = document.createElement("span");
        tag.className = "thing";
        tag.textContent = "thing";
        li.appendChild(tag);
        const opt = document.createElement("option");
        opt.value = c.name;
        opt.textContent = c.name;
        bankClass.appendChild(opt);
      }
      li.addEventListener("click", () => setClass(c.id));
      legend.appendChild(li);
    }
    setClass(classes[0].id);
  }

  async function refreshSaved() {
    const data = await call("GET", "/api/saved");
    const list = $("saved-list");
    list.innerHTML = "";
    for (const s of data.samples.slice().reverse()) {
      const li = document.createElement("li");
      li.dataset.name = s.name;
      li.title = `${s.name}: map ${s.source_index}, ${s.edits} edits, seed ${s.seed}. Click to reopen.`;
      if (s.image) {
        const img = document.createElement("img");
        img.src = `/api/files/${s.image.split("/").map(encodeURIComponent).join("/")}`;
        img.alt = s.name;
        li.appendChild(img);
      }
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = `${s.name} (${s.edits} edits)`;
      li.appendChild(name);
      li.addEventListener("click", () => guarded(async () => {
        await setScene(await call("POST", "/api/open_saved", { name: s.name }));
        select(null);
      }));
      list.appendChild(li);
    }
    $("saved-count").textContent = `(${data.samples.length})`;
  }

  async function loadBank(offset = 0) {
    const cls = $("bank-class").value;
    message("building the instance bank ...");
    const q = new URLSearchParams({ offset, limit: 48 });
    if (cls) q.set("class", cls);
    const data = await call("GET", `/api/bank?${q}`);
    S.bankOffset = data.offset;
    S.bankCount = data.count;
    const grid = $("bank-grid");
    grid.innerHTML = "";
    for (const item of data.items) {
      const [h, w] = item.size;
      const mask = await unpack(item.mask, Uint8Array);
      const cv = document.createElement("canvas");
      cv.width = w;
      cv.height = h;
      cv.title = `#${item.index} ${item.name} ${h}x${w} from ${item.source}`;
      const ctx = cv.getContext("2d");
      const img = ctx.createImageData(w, h);
      const c = item.class * 3;
      for (let i = 0; i < mask.length; i++) {
        if (!mask[i]) continue;
        img.data.set([S.palette[c], S.palette[c + 1], S.palette[c + 2], 255], 4 * i);
      }
      ctx.putImageData(img, 0, 0);
      cv.classList.toggle("active", item.index === S.bankItem);
      cv.addEventListener("click", () => {
        S.bankItem = item.index;
        for (const other of grid.children) other.classList.remove("active");
        cv.classList.add("active");
        setTool("paste");
        message(`paste: click where the ${item.name}'s foot should stand`);
      });
      grid.appendChild(cv);
    }
    message(`instance bank: ${data.count} items`);
  }

  // ------------------------------------------------------------------ wiring
  function wire() {
    overlay.addEventListener("pointerdown", onDown);
    overlay.addEventListener("pointermove", onMove);
    overlay.addEventListener("pointerup", onUp);
    overlay.addEventListener("pointerleave", () => { S.hover = null; });
    overlay.addEventListener("dblclick", () => { if (S.tool === "polygon") finishPolygon(); });
    for (const b of document.querySelectorAll("#tools button")) {
      b.addEventListener("click", () => setTool(b.dataset.tool));
    }
    $("brush-size").addEventListener("input", () => { $("brush-size-value").textContent = $("brush-size").value; });
    const open = (body) => guarded(async () => { await setScene(await call("POST", "/api/open", body)); select(null); });
    $("prev-map").addEventListener("click", () => open({ index: S.scene.index - 1 }));
    $("next-map").addEventListener("click", () => open({ index: S.scene.index + 1 }));
    $("map-index").addEventListener("change", () => open({ index: Number($("map-index").value) }));
    $("goto-id").addEventListener("click", () => open({ id: $("map-id").value.trim() }));
    $("blank").addEventListener("click", () => guarded(async () => {
      await setScene(await call("POST", "/api/blank", { class: S.cls }));
      select(null);
    }));
    $("undo").addEventListener("click", () => guarded(async () => setScene((await call("POST", "/api/undo")).state)));
    $("redo").addEventListener("click", () => guarded(async () => setScene((await call("POST", "/api/redo")).state)));
    $("zoom-in").addEventListener("click", () => zoomBy(1));
    $("zoom-out").addEventListener("click", () => zoomBy(-1));
    $("seed").addEventListener("change", () => guarded(async () =>
      setScene(await call("POST", "/api/seed", { seed: Number($("seed").value) }))));
    $("new-style").addEventListener("click", () => guarded(async () => setScene(await call("POST", "/api/seed", {}))));
    $("restyle-selected").addEventListener("click", () => guarded(async () => {
      if (!S.selected) throw new Error("select an object first (or drag a box with Restyle box)");
      await setScene((await call("POST", "/api/restyle", { instance: S.selected.instance })).state);
      message(`restyled ${S.selected ? S.selected.name : "the object"}`, "ok");
    }));
    $("save").addEventListener("click", () => guarded(async () => {
      const entry = await call("POST", "/api/save", {});
      message(`saved ${entry.sample}`, "ok");
      await refreshSaved();
    }));
    $("btn-delete").addEventListener("click", () => selectedStep("delete_instance"));
    $("btn-flip-h").addEventListener("click", () => selectedStep("flip_instance", { direction: "horizontal" }));
    $("btn-flip-v").addEventListener("click", () => selectedStep("flip_instance", { direction: "vertical" }));
    $("btn-scale-up").addEventListener("click", () => selectedStep("scale_instance", { factor: 1.25 }));
    $("btn-scale-down").addEventListener("click", () => selectedStep("scale_instance", { factor: 0.8 }));
    $("btn-relabel").addEventListener("click", () => selectedStep("relabel_instance", { class: S.cls }));
    $("bank-load").addEventListener("click", () => guarded(() => loadBank(0)));
    $("bank-prev").addEventListener("click", () => guarded(() => loadBank(Math.max(0, S.bankOffset - 48))));
    $("bank-next").addEventListener("click", () => guarded(() =>
      loadBank(S.bankOffset + 48 < S.bankCount ? S.bankOffset + 48 : S.bankOffset)));
    document.addEventListener("keydown", (ev) => {
      if (ev.target instanceof HTMLInputElement || ev.target instanceof HTMLSelectElement) return;
      const key = ev.key.toLowerCase();
      if ((ev.ctrlKey || ev.metaKey) && key === "z") {
        ev.preventDefault();
        $(ev.shiftKey ? "redo" : "undo").click();
      } else if ((ev.ctrlKey || ev.metaKey) && key === "y") {
        ev.preventDefault();
        $("redo").click();
      } else if ((key === "delete" || key === "backspace") && S.selected) {
        selectedStep("delete_instance");
      } else if (key === "enter" && S.tool === "polygon") {
        finishPolygon();
      } else if (key === "escape") {
        S.polygon = [];
        S.drag = null;
        drawOverlay();
      } else if (key === "+" || key === "=") {
        zoomBy(1);
      } else if (key === "-") {
        zoomBy(-1);
      } else {
        const tools = { b: "brush", p: "polygon", r: "rect", f: "flood", s: "select", t: "restyle", v: "paste" };
        if (tools[key] && !ev.ctrlKey && !ev.metaKey) setTool(tools[key]);
      }
    });
  }

  async function start() {
    wire();
    setTool("brush");
    S.info = await call("GET", "/api/info");
    buildLegend();
    const m = S.info.model;
    $("restyle-selected").disabled = !m.restyle;
    $("tool-restyle").disabled = !m.restyle;
    if (!m.restyle) {
      $("restyle-selected").title = "This model takes a noise vector: restyling a region needs spatial noise or per-object features";
    }
    document.title = `sisgen edit: ${m.name} on ${S.info.source.kind}`;
    message(`${m.name} (${m.backend}, ${m.resolution.join("x")})`
      + `${m.photo_editing ? ", photo editing: only the hole is re-synthesized" : ""}; `
      + `saving to ${S.info.out_dir} (${S.info.writers.join(", ")})`);
    await setScene(await call("GET", "/api/state"));
    await refreshSaved();
    document.body.dataset.ready = "1";
  }

  start().catch((e) => message(e.message, "error"));
})();
