// hpo dashboard: the pages (Studies, Study, Trial, Compare) over the JSON API.
// Charts and pure logic are in chart.js (`HpoChart`); this file fetches, draws
// and wires the controls. Every view's state lives in its URL.
"use strict";

(() => {
  const C = HpoChart;
  const E = C.escape;
  const main = document.getElementById("main");
  const tip = document.getElementById("tip");
  const POLL_MS = 2000;
  window.hpoTimings = {};
  let page = { stop() {} };

  // ---- Fetching -----------------------------------------------------------

  class ApiError extends Error {}

  async function api(path) {
    const headers = {};
    const token = sessionStorage.getItem("hpo-token");
    if (token) headers.Authorization = `Bearer ${token}`;
    const response = await fetch(`/api/v1${path}`, { headers });
    if (response.status === 401) {
      askToken();
      throw new ApiError("this server needs a read token");
    }
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new ApiError(body.detail || `${response.status} ${response.statusText}`);
    return body;
  }

  function askToken() {
    page.stop();
    if (document.getElementById("token-form")) return;
    main.innerHTML = `<h1>Sign in</h1><form id="token-form" class="card"><p>This server needs a read token (a line of its tokens file).</p>
      <label>Token <input id="token" type="password" autocomplete="off" required></label> <button>Use it</button></form>`;
    document.getElementById("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem("hpo-token", document.getElementById("token").value.trim());
      route();
    });
  }

  function showError(err) {
    if (err instanceof ApiError && err.message.includes("token")) return;
    main.insertAdjacentHTML("afterbegin", `<p class="error" role="alert">${E(err.message || err)}</p>`);
  }

  // ---- Navigation ---------------------------------------------------------

  const studyPath = (name) => `/studies/${encodeURIComponent(name)}`;
  const trialPath = (name, n) => `${studyPath(name)}/trials/${n}`;

  function go(url) {
    history.pushState(null, "", url);
    route();
  }

  function setView(view) {
    history.replaceState(null, "", location.pathname + C.writeView(view));
  }

  function route() {
    page.stop();
    tip.hidden = true;
    const path = location.pathname;
    const view = C.readView(location.search);
    let m;
    if (path === "/" || path === "") page = studiesPage(view);
    else if ((m = path.match(/^\/studies\/([^/]+)\/trials\/(\d+)$/))) page = trialPage(decodeURIComponent(m[1]), Number(m[2]));
    else if ((m = path.match(/^\/studies\/([^/]+)$/))) page = studyPage(decodeURIComponent(m[1]), view);
    else if (path === "/compare") page = comparePage(view);
    else {
      main.innerHTML = `<h1>Not found</h1><p>No page at ${E(path)}. <a href="/">All studies</a>.</p>`;
      page = { stop() {} };
    }
  }

  document.addEventListener("click", (event) => {
    const link = event.target.closest("a[href^='/']");
    if (link && !event.ctrlKey && !event.metaKey && !event.shiftKey && link.target !== "_blank") {
      event.preventDefault();
      go(link.getAttribute("href"));
    }
  });
  window.addEventListener("popstate", route);

  // A poller that runs `tick` now and every `ms` until stopped.
  function poller(tick, ms = POLL_MS) {
    let timer = null;
    let stopped = false;
    const run = async () => {
      try {
        await tick();
      } catch (err) {
        showError(err);
      }
      if (!stopped) timer = setTimeout(run, ms);
    };
    run();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }

  // ---- Shared pieces ------------------------------------------------------

  const direction = (d) => (Array.isArray(d) ? d[0] : d);

  function counts(t) {
    const parts = [`${t.complete} complete`];
    if (t.pruned) parts.push(`${t.pruned} pruned`);
    if (t.fail) parts.push(`${t.fail} failed`);
    if (t.running) parts.push(`<span class="running">${t.running} running</span>`);
    if (t.waiting) parts.push(`${t.waiting} waiting`);
    return parts.join(" · ");
  }

  function paramsText(params) {
    return Object.entries(params || {})
      .map(([k, v]) => `${E(k)}=${E(typeof v === "number" ? C.fmt(v) : v)}`)
      .join(" ");
  }

  function legend(items) {
    return `<ul class="legend">${items
      .map((it) => `<li><svg width="28" height="10" aria-hidden="true"><line x1="0" x2="28" y1="5" y2="5" stroke="${it.color}" stroke-width="2"${it.dash ? ` stroke-dasharray="${it.dash}"` : ""}/></svg>${E(it.text)}</li>`)
      .join("")}</ul>`;
  }

  function tooltipOn(root, describe) {
    root.addEventListener("mousemove", (event) => {
      const el = event.target.closest("[data-trial]");
      if (!el) {
        tip.hidden = true;
        return;
      }
      tip.innerHTML = describe(Number(el.dataset.trial));
      tip.hidden = false;
      const x = Math.min(event.clientX + 14, window.innerWidth - tip.offsetWidth - 8);
      tip.style.left = `${x}px`;
      tip.style.top = `${event.clientY + 14}px`;
    });
    root.addEventListener("mouseleave", () => (tip.hidden = true));
  }

  // ---- Studies ------------------------------------------------------------

  function studiesPage(view) {
    document.title = "Studies · hpo";
    main.innerHTML = `<h1>Studies</h1>
      <div class="controls"><label>Filter <input id="filter" type="search" placeholder="study name" value="${E(view.q)}"></label>
      <a class="button" href="/compare">Compare two studies</a></div>
      <div class="scroll"><table class="studies"><caption class="sr-only">Every study in the database</caption><thead><tr>
      <th scope="col"><button data-sort="name">Study</button></th><th scope="col"><button data-sort="progress">Progress</button></th>
      <th scope="col"><button data-sort="trials">Trials</button></th><th scope="col"><button data-sort="best">Best</button></th><th scope="col">Pick</th>
      <th scope="col"><button data-sort="activity">Last activity (UTC)</button></th><th scope="col">Best so far</th></tr></thead>
      <tbody id="rows"><tr><td colspan="7">loading…</td></tr></tbody></table></div>`;
    let studies = [];
    const draw = () => {
      const rows = C.sortStudies(studies, view.q, view.sort || "activity", view.sort ? view.dir : "desc");
      for (const b of main.querySelectorAll("th button")) {
        const on = b.dataset.sort === (view.sort || "activity");
        b.closest("th").setAttribute("aria-sort", on ? (view.sort && view.dir === "asc" ? "ascending" : "descending") : "none");
      }
      document.getElementById("rows").innerHTML = rows.length
        ? rows
            .map((s) => {
              const t = s.trials;
              const budget = s.budget ? `<progress max="${s.budget}" value="${Math.min(t.total, s.budget)}" aria-label="${t.total} of ${s.budget} trials"></progress> ${t.total} / ${s.budget}` : `${t.total} (no trial budget)`;
              const pick = s.pick && s.pick.trial !== undefined ? `<a href="${trialPath(s.name, s.pick.trial)}">trial ${s.pick.trial}</a> ${C.fmt(s.pick.value)}` : "–";
              return `<tr data-study="${E(s.name)}"><th scope="row"><a href="${studyPath(s.name)}">${E(s.name)}</a><div class="sub">${E(direction(s.directions))} ${E(s.metric || "value")}</div></th>
                <td>${budget}</td><td>${counts(t)}</td><td class="num">${C.fmt(s.best_value)}</td><td>${pick}</td>
                <td>${E((s.last_activity || "–").slice(0, 19))}</td><td>${C.sparkline(s.sparkline || [])}</td></tr>`;
            })
            .join("")
        : `<tr><td colspan="7">No study matches.</td></tr>`;
      if (!window.hpoTimings.studies) window.hpoTimings.studies = performance.now();
    };
    main.querySelector("thead").addEventListener("click", (event) => {
      const b = event.target.closest("button[data-sort]");
      if (!b) return;
      view.dir = view.sort === b.dataset.sort && view.dir === "asc" ? "desc" : "asc";
      view.sort = b.dataset.sort;
      setView(view);
      draw();
    });
    document.getElementById("filter").addEventListener("input", (event) => {
      view.q = event.target.value;
      setView(view);
      draw();
    });
    const stop = poller(async () => {
      studies = (await api("/studies")).studies;
      draw();
    }, 5000);
    return { stop };
  }

  // ---- Study --------------------------------------------------------------

  function studyPage(name, view) {
    document.title = `${name} · hpo`;
    main.innerHTML = `<nav class="crumbs" aria-label="breadcrumb"><a href="/">Studies</a> › <span>${E(name)}</span></nav>
      <h1>${E(name)} <span id="live" class="badge" hidden>live</span></h1>
      <p id="meta" class="meta">loading…</p>
      <section id="rec" class="card" aria-live="polite"></section>
      <section id="pareto-section" hidden><h2>Pareto front</h2><div id="pareto" class="scroll"></div></section>
      <section id="compression-section" hidden><h2>Compression</h2><div id="compression" class="scroll"></div></section>
      <form class="controls" id="controls" onsubmit="return false">
        <label>Curves <select id="metric"></select></label>
        <label><input type="checkbox" id="log"${view.log ? " checked" : ""}> log scale</label>
        <label><input type="checkbox" data-hide="P"${view.hide.has("P") ? " checked" : ""}> hide pruned</label>
        <label><input type="checkbox" data-hide="F"${view.hide.has("F") ? " checked" : ""}> hide failed</label>
        <button type="button" id="clear-brush" hidden>clear the parallel-coordinates filter</button>
        <a class="button" href="/compare?b=${encodeURIComponent(name)}">compare…</a>
      </form>
      <section><h2>History</h2><div id="history" class="plot"></div><p class="note" id="history-note"></p></section>
      <section id="running-section" hidden><h2>Running trials</h2><div id="running" class="plot"></div></section>
      <section><h2>Learning curves</h2><div id="curves" class="plot"></div><p class="note">Training dashed, validation solid, for the best trials; the dot marks the epoch the trial's value comes from. Validation rising while training falls is overfitting.</p></section>
      <section><h2>Regularization vs overfitting</h2><div id="reg" class="grid2"></div></section>
      <section><h2>Generalization gap</h2><div id="gap" class="plot"></div><p class="note">Validation minus training loss at each trial's best epoch, best trial first.</p></section>
      <section><h2>Parameter importance</h2><div id="importance" class="plot"></div></section>
      <section><h2>Parallel coordinates</h2><div id="parallel" class="plot"></div><p class="note" id="parallel-note">Drag along an axis to keep only the trials in that range, in every chart; drag again outside it to clear.</p></section>
      <section><h2>Leaderboard</h2><div id="leaderboard" class="scroll"></div></section>
      <section><h2>Pruned trials</h2><div id="pruned" class="scroll"></div></section>
      <section><h2>Timeline</h2><div id="timeline" class="plot"></div></section>
      <section id="confirm-section" hidden><h2>Confirm runs (new seeds)</h2><div id="confirm" class="plot"></div></section>
      <section id="nights-section" hidden><h2>Nights</h2><div id="nights" class="plot"></div><p class="note" id="nights-note"></p></section>`;
    const s = { summary: null, history: null, table: null, report: null, running: null, rows: new Map() };
    const $ = (id) => document.getElementById(id);
    const pick = () => (s.report && s.report.recommendation ? s.report.recommendation.trial : s.summary && s.summary.pick ? s.summary.pick.trial : null);
    const selected = () => (s.table && s.table.parallel && Object.keys(view.brushes).length ? C.brushed(s.table.parallel.lines, view.brushes) : null);

    const describe = (n) => {
      const row = s.rows.get(n);
      if (!row) return `trial ${n} (loading its parameters…)`;
      const [number, state, value, cells, step, endedBy, reason] = row;
      const params = s.table.params.map((p, i) => (cells[i] === null ? "" : `<div>${E(p)} = ${E(cells[i])}</div>`)).join("");
      const stopped = state === "P" && step ? `<div>pruned at step ${step[0]} (${E(s.table.metric)} ${C.fmt(step[1])})${reason ? `: ${E(reason)}` : ""}</div>` : "";
      return `<strong>trial ${number}</strong> · ${C.STATE_NAME[state]}${value !== null ? ` · ${E(s.table.metric)} ${C.fmt(value)}` : ""}${number === pick() ? " · <strong>pick</strong>" : ""}${stopped}<div>ended by ${E(endedBy)}</div>${params}`;
    };
    tooltipOn(main, describe);
    main.addEventListener("click", (event) => {
      const el = event.target.closest("svg [data-trial]");
      if (el) go(trialPath(name, el.dataset.trial));
    });

    // The curves' metric: the one chosen, else the report's first, else the
    // study's metric without its split.
    const baseOf = (key) => key.replace(/^(train|val)_/, "");
    const metricName = () =>
      view.metric || (s.report && s.report.curves[0] ? s.report.curves[0].metric : baseOf((s.summary && s.summary.metric) || ""));

    function drawMeta() {
      const sum = s.summary;
      if (!sum) return;
      const bits = [`${E(direction(sum.directions))} ${E(sum.metric || "value")}`];
      if (sum.objective) bits.push(E(sum.objective));
      if (sum.sampler) bits.push(`sampler ${E(sum.sampler)}`);
      if (sum.pruner) bits.push(`pruner ${E(sum.pruner)}`);
      const budget = sum.budget ? ` of ${sum.budget}` : "";
      $("meta").innerHTML = `${bits.join(" · ")}<br><span id="count">${sum.trials.total}</span> trials${budget}: ${counts(sum.trials)} · best ${C.fmt(sum.best_value)} · last activity ${E((sum.last_activity || "–").slice(0, 19))} UTC`;
      $("live").hidden = !sum.trials.running;
    }

    function drawRecommendation() {
      const r = s.report && s.report.recommendation;
      if (!s.report) return;
      if (!r && s.report.pareto) {
        $("rec").innerHTML = `<h2>Several objectives</h2><p>No single best trial: pick one on the Pareto front below by what you trade.</p>`;
        return;
      }
      if (!r) {
        $("rec").innerHTML = `<h2>Recommendation</h2><p>No complete trial yet.</p>`;
        return;
      }
      const ci = r.confirmed ? ` ± ${C.fmt(r.confirmed.ci95_half_width)} (95% CI, ${r.confirmed.runs} confirm runs)` : "";
      $("rec").innerHTML = `<h2>Recommendation: <a href="${trialPath(name, r.trial)}">trial ${r.trial}</a> <span class="badge pick">pick</span>${r.provisional ? ` <span class="badge">provisional</span>` : ""}</h2>
        <p class="big">${E(s.report.metric)} ${C.fmt(r.value)}${ci}</p><p>${paramsText(r.params)}</p>
        <ul>${r.reasons.map((it) => `<li>${E(it)}</li>`).join("")}</ul>
        ${r.runner_up ? `<p>Runner-up: <a href="${trialPath(name, r.runner_up.trial)}">trial ${r.runner_up.trial}</a> at ${C.fmt(r.runner_up.value)}${r.welch_p !== null ? `; Welch p = ${C.fmt(r.welch_p, 2)}` : ""}.</p>` : ""}`;
    }

    function drawHistory() {
      const h = s.history;
      if (!h) return;
      const sel = selected();
      const p = pick();
      const logY = view.log && h.points.every((q) => q[1] > 0);
      const marks = [];
      let hidden = 0;
      for (const [number, value, state] of h.points) {
        if (view.hide.has(state)) { hidden++; continue; }
        const faint = sel && !sel.has(number);
        marks.push({ x: number, y: value, trial: number, color: faint ? "#dddddd" : C.STATE_COLOR[state], square: state === "P", r: state === "P" ? 2.5 : 3, className: `s${state}${faint ? " faint" : ""}` });
      }
      // The pick on top, ringed.
      const pickPoint = h.points.find((q) => q[0] === p);
      if (pickPoint) marks.push({ x: pickPoint[0], y: pickPoint[1], trial: p, color: "#F0E442", ring: true, r: 6, className: "pick" });
      const stair = C.stairs(h.best_so_far, h.last);
      $("history").innerHTML = C.xy({
        title: `${h.metric} of every trial by trial number`,
        series: [{ points: stair, color: "#000000", width: 1.5, label: "best so far" }],
        marks,
        xLabel: "trial number",
        yLabel: `${h.metric}${logY ? " (log scale)" : ""}`,
        logY,
        width: 900,
        height: 320,
      }) + legend([{ color: C.STATE_COLOR.C, text: "complete" }, { color: C.STATE_COLOR.P, text: "pruned (value at the step it stopped)" }, { color: "#000", text: "best so far" }, { color: "#F0E442", text: "pick (ringed)" }]);
      $("history-note").textContent = `${h.points.length} trials with a value${hidden ? `, ${hidden} hidden` : ""}${sel ? `; ${sel.size} inside the parallel-coordinates filter` : ""}. Hover a point for its parameters; click it to open the trial.`;
      if (!window.hpoTimings.firstChart) window.hpoTimings.firstChart = performance.now();
    }

    function drawParallel() {
      const par = s.table && s.table.parallel;
      if (!par) {
        $("parallel").innerHTML = `<p class="empty">No complete trial yet.</p>`;
        return;
      }
      $("parallel").innerHTML = C.parallel(par.axes, par.lines, { brushes: view.brushes, selected: selected(), metric: s.table.metric });
      $("parallel-note").textContent = `Drag along an axis to keep only the trials in that range, in every chart; drag again outside it to clear. Darker lines are better trials.${par.left_out ? ` The ${par.left_out} trials beyond the best ${par.lines.length} are left out.` : ""}`;
      $("clear-brush").hidden = !Object.keys(view.brushes).length;
    }

    function drawPruned() {
      const rows = [...s.rows.values()].filter((r) => r[1] === "P").slice(-20).reverse();
      $("pruned").innerHTML = rows.length
        ? `<table><thead><tr><th scope="col">Trial</th><th scope="col">Stopped at step</th><th scope="col">Value there</th><th scope="col">Why</th></tr></thead><tbody>${rows
            .map((r) => `<tr><td><a href="${trialPath(name, r[0])}">${r[0]}</a></td><td class="num">${r[4] ? r[4][0] : "–"}</td><td class="num">${C.fmt(r[4] ? r[4][1] : null)}</td><td>${E(r[6] || r[5])}</td></tr>`)
            .join("")}</tbody></table><p class="note">The ${rows.length} latest pruned trials.</p>`
        : `<p class="empty">No trial pruned.</p>`;
    }

    function drawMetricChoice() {
      const names = new Set((s.report ? s.report.curves : []).map((c) => c.metric));
      const current = metricName();
      if (current) names.add(current);
      for (const t of (s.running && s.running.trials) || []) for (const k of Object.keys(t.curves)) names.add(baseOf(k));
      const select = $("metric");
      const options = [...names];
      if (select.options.length === options.length && [...select.options].every((o, i) => o.value === options[i])) return;
      select.innerHTML = options.map((m) => `<option value="${E(m)}"${m === current ? " selected" : ""}>${E(m)}</option>`).join("");
    }

    function drawCurves() {
      if (!s.report) return;
      const fig = s.report.curves.find((c) => c.metric === metricName()) || s.report.curves[0];
      if (!fig) {
        $("curves").innerHTML = `<p class="empty">No curves stored yet.</p>`;
        return;
      }
      const sel = selected();
      const logY = view.log && fig.lines.every((l) => l.points.every((p) => p[1] > 0));
      const series = [];
      const marks = [];
      const p = pick();
      for (const l of fig.lines) {
        if (sel && !sel.has(l.trial)) continue;
        const color = C.PALETTE[(l.rank - 1) % C.PALETTE.length];
        series.push({ points: l.points, color, dash: l.split === "train" ? "5 4" : "", trial: l.trial, width: l.trial === p ? 2.5 : 1.5, label: `trial ${l.trial} ${l.split}` });
        if (l.best) marks.push({ x: l.best[0], y: l.best[1], trial: l.trial, color, r: 4 });
      }
      const ranks = [...new Map(fig.lines.map((l) => [l.trial, l.rank])).entries()];
      $("curves").innerHTML = C.xy({ title: `learning curves of ${fig.metric}`, series, marks, xLabel: "epoch (step)", yLabel: `${fig.metric}${logY ? " (log scale)" : ""}`, logY, width: 900, height: 320 }) +
        legend(ranks.map(([trial, rank]) => ({ color: C.PALETTE[(rank - 1) % C.PALETTE.length], text: `#${rank} trial ${trial}${trial === p ? " (pick)" : ""}` })).concat([{ color: "#555", dash: "5 4", text: "training" }, { color: "#555", text: "validation" }]));
    }

    function drawRunning() {
      const trials = (s.running && s.running.trials) || [];
      $("running-section").hidden = !trials.length;
      if (!trials.length) return;
      const metric = metricName();
      const series = [];
      trials.forEach((t, i) => {
        const color = C.PALETTE[i % C.PALETTE.length];
        const keys = Object.keys(t.curves);
        const chosen = keys.filter((k) => k === metric || k === `val_${metric}` || k === `train_${metric}`);
        for (const k of chosen.length ? chosen : keys.slice(0, 1)) {
          series.push({ points: t.curves[k], color, dash: k.startsWith("train_") ? "5 4" : "", trial: t.number, label: `trial ${t.number} ${k}`, className: "running-line" });
        }
      });
      const points = series.reduce((a, l) => a + l.points.length, 0);
      $("running").innerHTML = C.xy({ title: `curves of the running trials`, series, xLabel: "epoch (step)", yLabel: metric || "value", width: 900, height: 260 }) +
        `<p class="note" id="running-note" data-points="${points}">${trials.length} running: ${trials.map((t) => `<a href="${trialPath(name, t.number)}">trial ${t.number}</a>`).join(", ")}; ${points} curve points so far.</p>`;
    }

    function drawRegularization() {
      if (!s.report) return;
      const sel = selected();
      const panels = s.report.regularization;
      if (!panels.length) {
        $("reg").innerHTML = `<p class="empty">No regularization parameter in this study's space (dropout, weight decay, label smoothing, ...) with a gap to show.</p>`;
        return;
      }
      $("reg").innerHTML = panels
        .map((panel) => {
          const cat = panel.axis.scale === "categories";
          const logX = panel.axis.scale === "log";
          const marks = panel.points
            .filter((q) => q.gap !== null && (!sel || sel.has(q.trial)))
            .map((q) => ({ x: q.x, y: q.gap, trial: q.trial, color: q.trial === pick() ? "#F0E442" : C.PALETTE[0], ring: q.trial === pick(), r: q.trial === pick() ? 5 : 3 }));
          const series = [];
          const tr = panel.gap_trend;
          if (tr.kind === "line") {
            const lo = cat ? 0 : panel.axis.low;
            const hi = cat ? 0 : panel.axis.high;
            const fx = (v) => (logX ? Math.log10(v) : v);
            series.push({ points: [[lo, tr.intercept + tr.slope * fx(lo)], [hi, tr.intercept + tr.slope * fx(hi)]], color: C.PALETTE[5], dash: "6 3", label: `trend, r² ${C.fmt(tr.r2, 2)}` });
          } else if (tr.kind === "means") {
            tr.means.forEach((m, i) => m !== null && marks.push({ x: i, y: m, color: C.PALETTE[5], square: true, r: 5 }));
          }
          const xTicks = cat ? panel.axis.choices.map((c, i) => [i, c]) : undefined;
          const xDomain = cat ? [-0.5, panel.axis.choices.length - 0.5] : undefined;
          const slope = tr.kind === "line" ? `trend slope ${C.fmt(tr.slope, 3)} per ${logX ? "decade" : "unit"}, r² ${C.fmt(tr.r2, 2)}` : tr.kind === "means" ? "squares: mean gap per choice" : "too few points for a trend";
          const sampled = panel.points_total > panel.points.length ? `; ${panel.points.length} of ${panel.points_total} trials drawn` : "";
          return `<figure>${C.xy({ title: `generalization gap against ${panel.param}`, series, marks, xLabel: `${panel.param}${logX ? " (log scale)" : ""}`, yLabel: "generalization gap", logX, xTicks, xDomain, width: 440, height: 260 })}<figcaption>${E(panel.param)}: ${slope}${sampled}</figcaption></figure>`;
        })
        .join("");
    }

    function drawGap() {
      if (!s.report) return;
      const pts = s.report.generalization_gap.map((g) => ({ x: g.rank, y: g.gap, trial: g.trial, color: g.trial === pick() ? "#F0E442" : C.PALETTE[0], ring: g.trial === pick() }));
      const total = s.report.generalization_gap_total;
      $("gap").innerHTML = C.xy({ title: "generalization gap by rank", marks: pts.filter((q) => q.y !== null), xLabel: "rank (1 = best)", yLabel: "generalization gap", width: 900, height: 240, empty: "no trial stored a gap" }) +
        (total > pts.length ? `<p class="note">${pts.length} of ${total} complete trials drawn (every rank in ${Math.ceil(total / pts.length)}, the leaderboard and the pick always).</p>` : "");
    }

    function drawImportance() {
      if (!s.report) return;
      const items = s.report.importance.map((it) => ({ label: it.param, value: it.score, lo: it.interval ? it.interval[0] : undefined, hi: it.interval ? it.interval[1] : undefined }));
      $("importance").innerHTML = items.length ? C.bars(items, { width: 900, title: "parameter importance", xLabel: "importance (PED-ANOVA, share of the variance of the best trials; bars: 90% bootstrap interval)" }) : `<p class="empty">Too few complete trials.</p>`;
    }

    function drawLeaderboard() {
      if (!s.report) return;
      const sel = selected();
      const p = pick();
      const rows = s.report.leaderboard;
      $("leaderboard").innerHTML = rows.length
        ? `<table class="leaderboard"><thead><tr><th scope="col">Rank</th><th scope="col">Trial</th><th scope="col">${E(s.report.metric)}</th><th scope="col">Best step</th><th scope="col">Gap</th><th scope="col">Ended by</th><th scope="col">Parameters</th></tr></thead><tbody>${rows
            .map((r) => `<tr class="${r.trial === p ? "pick" : ""}${sel && !sel.has(r.trial) ? " faint" : ""}"><td>${r.rank}</td><td><a href="${trialPath(name, r.trial)}">${r.trial}</a>${r.trial === p ? ` <span class="badge pick">pick</span>` : ""}</td><td class="num">${C.fmt(r.value)}</td><td class="num">${r.best_step ?? "–"}</td><td class="num">${C.fmt(r.gap)}</td><td>${E(r.ended_by)}</td><td>${paramsText(r.params)}</td></tr>`)
            .join("")}</tbody></table>`
        : `<p class="empty">No complete trial yet.</p>`;
    }

    function drawTimeline() {
      if (!s.report) return;
      const tl = s.report.timeline;
      $("timeline").innerHTML = tl.bars.length
        ? C.timeline(tl.workers, tl.bars) + legend([{ color: C.STATE_COLOR.C, text: "complete" }, { color: C.STATE_COLOR.P, text: "pruned" }, { color: C.STATE_COLOR.F, text: "failed" }, { color: C.STATE_COLOR.R, text: "running" }, { color: C.PALETTE[3], text: "confirm run" }]) + (tl.bars_total > tl.bars.length ? `<p class="note">The latest ${tl.bars.length} of ${tl.bars_total} trials.</p>` : "")
        : `<p class="empty">No trial started yet.</p>`;
    }

    // The report's section `key`, its element `id` shown when there is one.
    function section(key, id) {
      const it = s.report && s.report[key];
      $(id).hidden = !it;
      return it;
    }

    function drawPareto() {
      const it = section("pareto", "pareto-section");
      if (!it) return;
      const objectives = s.report.objectives;
      $("pareto").innerHTML = `<p class="note">${it.front.length} of ${it.scored} complete trials no other trial beats on every objective (Optuna's best_trials), best first on ${E(objectives[0].metric)}. Click one to see it.</p><table class="pareto"><thead><tr><th scope="col">Trial</th>${objectives
        .map((o) => `<th scope="col">${E(o.metric)} (${E(o.direction)})</th>`)
        .join("")}<th scope="col">Parameters</th></tr></thead><tbody>${it.front
        .map((r) => `<tr><td><a href="${trialPath(name, r.trial)}">${r.trial}</a></td>${r.values.map((v) => `<td class="num">${C.fmt(v)}</td>`).join("")}<td>${E(r.params)}</td></tr>`)
        .join("")}</tbody></table>`;
    }

    function drawCompression() {
      const it = section("compression", "compression-section");
      if (!it) return;
      const f32 = it.rows[0];
      $("compression").innerHTML = `<p class="note">Trial <a href="${trialPath(name, it.trial)}">${it.trial}</a>'s model and its compressed variants, measured alike on the CPU.</p><table class="compression"><thead><tr><th scope="col">Method</th><th scope="col">Parameters</th><th scope="col">Weight bytes</th><th scope="col">Latency, batch 1 (ms)</th><th scope="col">Per example, batch 256 (ms)</th><th scope="col">Val accuracy</th><th scope="col">Test accuracy</th><th scope="col">Val drop</th></tr></thead><tbody>${it.rows
        .map((r) => `<tr><td>${E(r.method)}</td><td class="num">${C.fmt(r.parameters)}</td><td class="num">${C.fmt(r.weight_bytes)}</td><td class="num">${C.fmt(r.latency_ms)}</td><td class="num">${C.fmt(r.latency_ms_per_example)}</td><td class="num">${C.fmt(r.val_accuracy)}</td><td class="num">${C.fmt(r.test_accuracy)}</td><td class="num">${r === f32 ? "–" : C.fmt(f32.val_accuracy - r.val_accuracy)}</td></tr>`)
        .join("")}</tbody></table>`;
    }

    function drawConfirm() {
      const c = section("confirmation", "confirm-section");
      if (!c) return;
      const [marks, series] = [[], []];
      c.groups.forEach((g, i) => {
        g.values.forEach((v) => marks.push({ x: i, y: v, trial: g.trial, color: C.PALETTE[0] }));
        if (g.original_value !== null) marks.push({ x: i + 0.2, y: g.original_value, trial: g.trial, color: C.PALETTE[1], square: true });
        if (Number.isFinite(g.ci.ci95_half_width)) series.push({ points: [[i - 0.15, g.ci.mean - g.ci.ci95_half_width], [i - 0.15, g.ci.mean + g.ci.ci95_half_width]], color: "#000", width: 2, label: `trial ${g.trial} 95% CI` });
        marks.push({ x: i - 0.15, y: g.ci.mean, color: "#000", r: 4 });
      });
      $("confirm").innerHTML = C.xy({ title: "confirm runs per configuration", series, marks, xTicks: c.groups.map((g, i) => [i, `trial ${g.trial}`]), xDomain: [-0.6, c.groups.length - 0.4], xLabel: "configuration", yLabel: c.metric, width: 900, height: 280 }) +
        legend([{ color: C.PALETTE[0], text: "confirm run (new seed)" }, { color: C.PALETTE[1], text: "original search trial" }, { color: "#000", text: "mean and 95% CI" }]) +
        `<p class="note">${c.welch_p !== null ? `Best vs runner-up: Welch p = ${C.fmt(c.welch_p, 2)} (${c.distinguishable ? "distinguishable" : "not distinguishable"} at 5%).` : ""} ${c.noise !== null ? `Seed noise (std of one run): ${C.fmt(c.noise)}.` : ""}</p>`;
    }

    // A night of a nightly study: each night's pick with its 95% interval.
    function drawNights() {
      const n = section("nights", "nights-section");
      if (!n) return;
      const [points, series, marks] = [[], [], []];
      n.nights.forEach((night, i) => {
        if (night.value === null) return;
        points.push([i, night.value]);
        if (night.ci95 !== null) series.push({ points: [[i, night.value - night.ci95], [i, night.value + night.ci95]], color: "#000", width: 2, label: `${night.date} 95% CI` });
        marks.push({ x: i, y: night.value, color: night.verdict === "worse_beyond_noise" ? C.STATE_COLOR.F : C.PALETTE[0], r: 5 });
      });
      series.unshift({ points, color: C.PALETTE[0], width: 2, label: "pick" });
      $("nights").innerHTML = C.xy({ title: `nights of ${n.base}`, series, marks, xTicks: n.nights.map((night, i) => [i, night.date]), xDomain: [-0.6, n.nights.length - 0.4], xLabel: "night", yLabel: n.metric, width: 900, height: 280 }) +
        legend([{ color: C.PALETTE[0], text: "the night's pick" }, { color: C.STATE_COLOR.F, text: "worse beyond the seed noise" }, { color: "#000", text: "95% CI of the confirmed mean" }]);
      $("nights-note").textContent = n.nights.map((night) => `${night.date}: ${night.trials} trials, ${night.failed} failed, ${(night.verdict || "no verdict yet").replaceAll("_", " ")}`).join(" · ");
    }

    function drawTableCharts() {
      drawHistory();
      drawParallel();
      drawPruned();
    }


    function drawReportCharts() {
      drawRecommendation();
      drawMetricChoice();
      drawCurves();
      drawRegularization();
      drawGap();
      drawImportance();
      drawLeaderboard();
      drawTimeline();
      drawConfirm();
      drawNights();
      drawPareto();
      drawCompression();
      if (!window.hpoTimings.report) window.hpoTimings.report = performance.now();
    }

    function redraw() {
      drawTableCharts();
      drawReportCharts();
      drawRunning();
    }

    // Controls.
    $("log").addEventListener("change", (e) => { view.log = e.target.checked; setView(view); redraw(); });
    $("metric").addEventListener("change", (e) => { view.metric = e.target.value; setView(view); drawCurves(); drawRunning(); });
    for (const box of main.querySelectorAll("[data-hide]")) {
      box.addEventListener("change", (e) => {
        if (e.target.checked) view.hide.add(e.target.dataset.hide);
        else view.hide.delete(e.target.dataset.hide);
        setView(view);
        drawHistory();
      });
    }
    $("clear-brush").addEventListener("click", () => { view.brushes = {}; setView(view); redraw(); });
    // Brushing on the parallel axes.
    let drag = null;
    const svgY = (svg, event) => {
      const pt = svg.createSVGPoint();
      pt.x = event.clientX;
      pt.y = event.clientY;
      return pt.matrixTransform(svg.getScreenCTM().inverse()).y;
    };
    $("parallel").addEventListener("mousedown", (event) => {
      const target = event.target.closest(".brush-target");
      if (!target) return;
      event.preventDefault();
      const svg = target.ownerSVGElement;
      drag = { axis: Number(target.dataset.axis), svg, from: C.parallelAt(svgY(svg, event)) };
    });
    window.addEventListener("mouseup", (event) => {
      if (!drag) return;
      const to = C.parallelAt(svgY(drag.svg, event));
      const [lo, hi] = [Math.min(drag.from, to), Math.max(drag.from, to)];
      if (hi - lo < 0.01) delete view.brushes[drag.axis];
      else view.brushes[drag.axis] = [lo, hi];
      drag = null;
      setView(view);
      redraw();
    });

    // Loading, then live updates: the history first (cheap at any size), then the
    // trial table and the report. While the study changes, each is fetched again
    // at most every five times as long as it last took, and never twice in 3 s.
    const fetched = {};
    const load = async (what, force) => {
      const f = fetched[what] || { at: 0, took: 0 };
      if (!force && Date.now() - f.at < Math.max(3000, 5 * f.took)) return false;
      const t0 = Date.now();
      s[what] = await api(`${studyPath(name)}/${what}`);
      fetched[what] = { at: Date.now(), took: Date.now() - t0 };
      return true;
    };
    let first = true;
    const stop = poller(async () => {
      let summary;
      let history = null;
      if (first) {
        [summary, history] = await Promise.all([api(studyPath(name)), api(`${studyPath(name)}/history`)]);
      } else {
        summary = await api(studyPath(name));
        if (s.history.version !== summary.version) history = await api(`${studyPath(name)}/history`);
      }
      s.summary = summary;
      if (history) s.history = history;
      drawMeta();
      if (history) drawHistory();
      if (first || s.table.version !== summary.version) {
        if (await load("table", first)) {
          s.rows = new Map(s.table.trials.map((r) => [r[0], r]));
          drawTableCharts();
        }
      }
      if (first || s.report.version !== summary.version) {
        if (await load("report", first)) {
          drawReportCharts();
          drawHistory();
        }
      }
      first = false;
      if (summary.trials.running || (s.running && s.running.trials.length)) {
        s.running = await api(`${studyPath(name)}/running`);
        drawMetricChoice();
        drawRunning();
      }
    });
    return { stop };
  }

  // ---- Trial --------------------------------------------------------------

  function trialPage(name, number) {
    document.title = `trial ${number} of ${name} · hpo`;
    main.innerHTML = `<nav class="crumbs" aria-label="breadcrumb"><a href="/">Studies</a> › <a href="${studyPath(name)}">${E(name)}</a> › <span>trial ${number}</span></nav><div id="trial">loading…</div>`;
    const draw = (t) => {
      const byBase = new Map();
      for (const key of Object.keys(t.curves)) {
        const base = key.replace(/^(train|val)_/, "");
        if (!byBase.has(base)) byBase.set(base, []);
        byBase.get(base).push(key);
      }
      if (!byBase.size && t.intermediate_values.length) {
        t.curves = { value: t.intermediate_values };
        byBase.set("value", ["value"]);
      }
      const verdicts = new Map(t.pruner_verdicts.map((v) => [v.step, v]));
      // Train/validation pairs first, then the single curves.
      const charts = [...byBase.entries()]
        .sort((x, y) => (y[1].length > 1) - (x[1].length > 1))
        .map(([base, keys]) => {
          const series = keys.map((k, i) => ({ points: t.curves[k], color: k.startsWith("train_") ? C.PALETTE[1] : C.PALETTE[0], dash: k.startsWith("train_") ? "5 4" : "", label: k, width: 2, trial: undefined, className: `curve-${i}` }));
          const prunes = keys.filter((k) => !k.startsWith("train_")).flatMap((k) => t.curves[k].filter((p) => verdicts.get(p[0]) && verdicts.get(p[0]).decision === "prune").map((p) => ({ x: p[0], y: p[1], color: C.PALETTE[5], square: true, r: 5 })));
          return `<figure>${C.xy({ title: `${base} of trial ${number} by step`, series, marks: prunes, xLabel: "epoch (step)", yLabel: base, width: 440, height: 260 })}${legend(keys.map((k) => ({ color: k.startsWith("train_") ? C.PALETTE[1] : C.PALETTE[0], dash: k.startsWith("train_") ? "5 4" : "", text: k })))}</figure>`;
        })
        .join("");
      const attrs = (o) => Object.entries(o).map(([k, v]) => `<tr><th scope="row">${E(k)}</th><td>${E(typeof v === "number" ? C.fmt(v) : JSON.stringify(v))}</td></tr>`).join("");
      const tests = Object.entries(t.user_attrs).filter(([k]) => k.startsWith("test_"));
      const reason = t.system_attrs.prune_reason || t.system_attrs.fail_reason;
      document.getElementById("trial").innerHTML = `<h1>Trial ${number} <span class="badge s${E(t.state)}">${E(t.state.toLowerCase())}</span></h1>
        <p class="big">${t.value !== null ? `value ${C.fmt(t.value)}` : "no value"} · ${t.steps} steps${t.system_attrs.ended_by ? ` · ended by ${E(t.system_attrs.ended_by)}` : ""}${reason ? `: ${E(reason)}` : ""}</p>
        <p class="meta">started ${E((t.datetime_start || "–").slice(0, 19))} · finished ${E((t.datetime_complete || "–").slice(0, 19))} UTC</p>
        <section><h2>Parameters</h2><table class="kv">${attrs(t.params)}</table></section>
        <section><h2>Curves</h2><div id="trial-curves" class="grid2">${charts || `<p class="empty">No curve stored.</p>`}</div></section>
        <section><h2>Pruner verdicts</h2>${t.pruner_verdicts.length ? `<div class="scroll"><table><thead><tr><th scope="col">Step</th><th scope="col">Decision</th><th scope="col">Why</th></tr></thead><tbody>${t.pruner_verdicts.map((v) => `<tr class="${v.decision === "prune" ? "pruned" : ""}"><td class="num">${v.step}</td><td>${E(v.decision)}</td><td>${E(v.reason)}</td></tr>`).join("")}</tbody></table></div>` : `<p class="empty">No pruner verdict stored.</p>`}</section>
        <section><h2>Test metrics</h2>${tests.length ? `<table class="kv">${attrs(Object.fromEntries(tests))}</table>` : `<p class="empty">No test metric stored (hpo measures the test split once, for the best configuration's runs).</p>`}</section>
        <section><h2>Confirm runs</h2>${t.confirm_runs.length ? `<table><thead><tr><th scope="col">Run</th><th scope="col">State</th><th scope="col">Value</th></tr></thead><tbody>${t.confirm_runs.map((r) => `<tr><td>${r.number}</td><td>${E(r.state.toLowerCase())}</td><td class="num">${C.fmt(r.value)}</td></tr>`).join("")}</tbody></table>` : `<p class="empty">Not confirmed with new seeds (hpo confirm).</p>`}</section>
        <section><h2>Logs and attributes</h2>${t.log ? `<details open><summary>Program output (stdout, last 64 KiB)</summary><pre class="log" id="log-stdout">${E(t.log.stdout || "(nothing)")}</pre></details><details${t.log.stderr ? " open" : ""}><summary>Program errors (stderr, last 64 KiB)</summary><pre class="log" id="log-stderr">${E(t.log.stderr || "(nothing)")}</pre></details>` : ""}<details><summary>User attributes (${Object.keys(t.user_attrs).length})</summary><table class="kv">${attrs(t.user_attrs)}</table></details><details><summary>System attributes (${Object.keys(t.system_attrs).length})</summary><table class="kv">${attrs(t.system_attrs)}</table></details></section>`;
    };
    let last = "";
    const stop = poller(async () => {
      const t = await api(`${studyPath(name)}/trials/${number}`);
      const key = `${t.state}:${t.steps}:${JSON.stringify(t.curves).length}`;
      if (key !== last) {
        last = key;
        draw(t);
      }
      if (t.state !== "RUNNING" && t.state !== "WAITING") stopTrial();
    });
    const stopTrial = () => stop();
    return { stop };
  }

  // ---- Compare ------------------------------------------------------------

  function comparePage(view) {
    document.title = "Compare · hpo";
    main.innerHTML = `<nav class="crumbs" aria-label="breadcrumb"><a href="/">Studies</a> › <span>compare</span></nav><h1>Compare two studies</h1>
      <form id="compare-form" class="controls"><label>A (baseline) <input id="a" list="study-names" size="36" value="${E(view.a)}" placeholder="study or study@2026-12-01" required></label>
      <label>B <input id="b" list="study-names" size="36" value="${E(view.b)}" placeholder="study or study@DATE" required></label><button>Compare</button><datalist id="study-names"></datalist></form>
      <p class="note">Name a study, or one study at a date (NAME@YYYY-MM-DD or NAME@YYYY-MM-DDTHH:MM, UTC): its trials finished by then.</p><div id="comparison"></div>`;
    api("/studies").then((r) => (document.getElementById("study-names").innerHTML = r.studies.map((s) => `<option value="${E(s.name)}">`).join(""))).catch(showError);
    document.getElementById("compare-form").addEventListener("submit", (event) => {
      event.preventDefault();
      view.a = document.getElementById("a").value.trim();
      view.b = document.getElementById("b").value.trim();
      setView(view);
      load();
    });
    async function load() {
      if (!view.a || !view.b) return;
      const out = document.getElementById("comparison");
      out.textContent = "loading…";
      try {
        const report = await api(`${studyPath(view.b)}/report?compare=${encodeURIComponent(view.a)}`);
        const c = report.comparison;
        const verdict = { better: "B is better than A.", same: "A and B reach the same value.", worse_within_noise: "B is worse than A, but within the seed noise.", worse_beyond_noise: "B is worse than A, beyond the seed noise.", unknown: "One side has no complete trial." }[c.verdict];
        const cell = (side) => side.best ? `<a href="${trialPath(side.label.split("@")[0], side.best.trial)}">trial ${side.best.trial}</a>` : "–";
        const row = (label, f) => `<tr><th scope="row">${label}</th><td>${f(c.a)}</td><td>${f(c.b)}</td></tr>`;
        const names = [view.a, view.b];
        out.innerHTML = `<section class="card"><h2>${E(verdict)}</h2><p>${E(c.direction)} ${E(c.metric)}${c.noise !== null ? `; seed noise (std of one run) ${C.fmt(c.noise)}` : "; seed noise unknown (no confirm runs)"}.</p>
          <div class="scroll"><table class="compare"><thead><tr><th></th><th scope="col">A: ${E(c.a.label)}</th><th scope="col">B: ${E(c.b.label)}</th></tr></thead><tbody>
          ${row("complete trials", (s) => s.complete)}${row("pick", cell)}${row(E(c.metric), (s) => (s.best ? C.fmt(s.best.value) + (s.best.confirmed ? ` ± ${C.fmt(s.best.confirmed.ci95_half_width)} (${s.best.confirmed.runs} confirm runs)` : "") : "–"))}
          ${row("generalization gap", (s) => (s.best ? C.fmt(s.best.gap) : "–"))}${row("parameters", (s) => (s.best ? paramsText(s.best.params) : "–"))}</tbody></table></div>
          ${c.moved.length ? `<h3>Parameters that moved</h3><table><thead><tr><th scope="col">Parameter</th><th scope="col">A</th><th scope="col">B</th></tr></thead><tbody>${c.moved.map(([p, a, b]) => `<tr><th scope="row">${E(p)}</th><td>${E(a ?? "–")}</td><td>${E(b ?? "–")}</td></tr>`).join("")}</tbody></table>` : ""}</section>
          <div class="grid2"><figure id="hist-a"></figure><figure id="hist-b"></figure></div>`;
        const histories = await Promise.all(names.map((n) => api(`${studyPath(n)}/history`)));
        histories.forEach((h, i) => {
          const marks = h.points.map(([n, v, st]) => ({ x: n, y: v, trial: n, color: C.STATE_COLOR[st], square: st === "P" }));
          document.getElementById(i ? "hist-b" : "hist-a").innerHTML = C.xy({ title: `history of ${names[i]}`, marks, series: [{ points: C.stairs(h.best_so_far, h.last), color: "#000", label: "best so far" }], xLabel: "trial number", yLabel: h.metric, width: 440, height: 260 }) + `<figcaption>${i ? "B" : "A"}: ${E(names[i])}${names[i].includes("@") ? " (the trials finished by then)" : ""}</figcaption>`;
        });
      } catch (err) {
        out.innerHTML = `<p class="error" role="alert">${E(err.message)}</p>`;
      }
    }
    load();
    return { stop() {} };
  }

  route();
})();
