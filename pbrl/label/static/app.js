// pbrl labelling page: two clips in sync, one key per answer (rating mode: one clip, keys 1 .. n).
// No build step, no dependencies.
(function () {
  "use strict";
  const params = new URLSearchParams(location.search);
  const token = params.get("token");
  const va = document.getElementById("clip-a");
  const vb = document.getElementById("clip-b");
  const nameInput = document.getElementById("annotator");
  const progress = document.getElementById("progress");
  const message = document.getElementById("message");
  const doneBox = document.getElementById("done");
  const instruction = document.getElementById("instruction");
  const ratingsBox = document.getElementById("ratings");
  const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.@ -]{0,63}$/;
  const WORDS = { left: "left is better", right: "right is better", equal: "equally good", skip: "can't tell (skipped)" };
  let annotator = params.get("annotator") || localStorage.getItem("pbrl.annotator") || "";
  let current = null;
  let busy = false;
  let nClasses = 0;  // > 0 in rating mode

  function say(text, error) {
    message.textContent = text;
    message.className = "message" + (error ? " error" : "");
  }

  async function api(path, body) {
    const headers = { "Content-Type": "application/json" };
    if (token) headers["X-PBRL-Token"] = token;
    const resp = await fetch(path, body === undefined ? { headers } : { method: "POST", headers, body: JSON.stringify(body) });
    const data = await resp.json().catch(() => ({}));
    if (!resp.ok) {
      const d = data.detail;
      const err = new Error(typeof d === "string" ? d : JSON.stringify(d || resp.statusText));
      err.status = resp.status;
      throw err;
    }
    return data;
  }

  function showProgress(p) {
    progress.textContent = `${p.complete} / ${p.pairs} answered · you: ${p.mine}`;
  }

  // ---- rating mode: one clip, a button per class (1 = worst)
  function setMode(p) {
    const rating = p.mode === "rating";
    document.body.dataset.mode = rating ? "rating" : "pairs";
    if (!rating || p.n_classes === nClasses) return;
    nClasses = p.n_classes;
    document.getElementById("title").textContent = "How good is this clip?";
    document.getElementById("caption-a").textContent = `keys 1 (worst) … ${nClasses} (best)`;
    ratingsBox.replaceChildren();
    for (let k = 1; k <= nClasses; k++) {
      const b = document.createElement("button");
      b.dataset.rating = String(k - 1);
      b.innerHTML = `<kbd>${k}</kbd>`;
      b.title = k === 1 ? "worst" : k === nClasses ? "best" : "";
      b.addEventListener("click", () => { b.blur(); answer("rate", k - 1); });
      ratingsBox.appendChild(b);
    }
  }

  // ---- the two clips play together and loop together (one clip in rating mode)
  let ended = 0;
  function restart() {
    ended = 0;
    va.currentTime = 0;
    vb.currentTime = 0;
    va.play().catch(() => {});
    if (!nClasses) vb.play().catch(() => {});
  }
  for (const v of [va, vb]) {
    v.addEventListener("ended", () => { ended += 1; if (ended >= (nClasses ? 1 : 2)) restart(); });
    v.addEventListener("error", () => { if (v.getAttribute("src")) say("a clip failed to load; press Space to skip this pair", true); });
  }
  function keepInSync() {
    if (!va.paused && !vb.paused && Math.abs(va.currentTime - vb.currentTime) > 0.1) vb.currentTime = va.currentTime;
    requestAnimationFrame(keepInSync);
  }
  requestAnimationFrame(keepInSync);

  function load(v, src) {
    return new Promise((resolve) => {
      const ok = () => { v.removeEventListener("canplaythrough", ok); v.removeEventListener("error", ok); resolve(); };
      v.addEventListener("canplaythrough", ok);
      v.addEventListener("error", ok);
      v.src = src;
      v.load();
    });
  }

  async function show(p) {
    current = p;
    setMode(p);
    showProgress(p.progress);
    if (p.instruction) instruction.textContent = p.instruction;
    va.classList.remove("picked");
    vb.classList.remove("picked");
    if (p.done) {
      document.body.dataset.state = "done";
      document.body.dataset.pairId = "";
      doneBox.hidden = false;
      va.removeAttribute("src"); vb.removeAttribute("src");
      va.load(); vb.load();
      return;
    }
    doneBox.hidden = true;
    document.body.dataset.state = "loading";
    document.body.dataset.pairId = String(p.pair_id);
    await Promise.all(p.clip_b ? [load(va, p.clip_a), load(vb, p.clip_b)] : [load(va, p.clip_a)]);
    if (current !== p) return;
    restart();
    document.body.dataset.state = "ready";
  }

  async function start() {
    if (!NAME_RE.test(annotator)) {
      document.body.dataset.state = "name";
      say("Enter your name (letters, digits, . _ - @) to start.");
      nameInput.focus();
      return;
    }
    localStorage.setItem("pbrl.annotator", annotator);
    nameInput.value = annotator;
    try {
      await show(await api(`/api/next?annotator=${encodeURIComponent(annotator)}`));
      say(nClasses ? `1 … ${nClasses} to rate the clip (1 = worst), Space can't tell, Backspace undo.`
        : "← / → for the better clip, ↓ equally good, Space can't tell, Backspace undo.");
    } catch (e) { say(e.message, true); }
  }

  async function answer(choice, rating) {
    if (busy || !current || current.done) return;
    busy = true;
    (choice === "left" ? va : choice === "right" ? vb : choice === "rate" ? va : null)?.classList.add("picked");
    const body = { pair_id: current.pair_id, annotator, choice };
    if (choice === "rate") body.rating = rating;
    try {
      const res = await api("/api/answer", body);
      say(`saved ${nClasses ? "clip" : "pair"} ${res.saved.pair_id}: ` +
          (choice === "rate" ? `rated ${rating + 1} of ${nClasses}` : WORDS[choice]));
      await show(res.next);
    } catch (e) {
      say(e.message, true);
      if (e.status === 409) {  // answered meanwhile (another tab or annotator): move on to a free pair
        try { await show(await api(`/api/next?annotator=${encodeURIComponent(annotator)}`)); } catch (e2) { say(e2.message, true); }
      }
    }
    finally { busy = false; }
  }

  async function undo() {
    if (busy) return;
    busy = true;
    try {
      const res = await api("/api/undo", { annotator });
      say(`undone: ${nClasses ? "clip" : "pair"} ${res.undone} is back`);
      await show(res.next);
    } catch (e) { say(e.message, true); }
    finally { busy = false; }
  }

  const KEYS = { ArrowLeft: "left", ArrowRight: "right", ArrowDown: "equal", " ": "skip" };
  document.addEventListener("keydown", (ev) => {
    if (ev.target === nameInput || ev.repeat || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const digit = /^[1-9]$/.test(ev.key) ? Number(ev.key) : 0;
    const choice = nClasses ? (ev.key === " " ? "skip" : null) : KEYS[ev.key];  // rating mode: no arrow keys
    if (nClasses && digit >= 1 && digit <= nClasses) { ev.preventDefault(); answer("rate", digit - 1); }
    else if (choice) { ev.preventDefault(); answer(choice); }
    else if (ev.key === "Backspace") { ev.preventDefault(); undo(); }
  });
  for (const btn of document.querySelectorAll("button[data-choice]")) {
    btn.addEventListener("click", () => { btn.blur(); answer(btn.dataset.choice); });
  }
  document.getElementById("btn-undo").addEventListener("click", (ev) => { ev.currentTarget.blur(); undo(); });
  nameInput.addEventListener("change", () => { annotator = nameInput.value.trim(); nameInput.blur(); start(); });
  nameInput.addEventListener("keydown", (ev) => { if (ev.key === "Enter") nameInput.blur(); });

  api("/api/status").then((st) => { if (st.instruction && !instruction.textContent) instruction.textContent = st.instruction; }).catch(() => {});
  start();
})();
