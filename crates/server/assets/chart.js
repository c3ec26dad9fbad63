// hpo dashboard: charts as SVG text, and the pure logic of the pages (scales,
// ticks, number formats, the view state in the URL, brushing, sorting). No DOM
// here: node runs this file's tests (chart.test.js), the browser loads it as a
// script that defines `HpoChart`.
"use strict";

const HpoChart = (() => {
  // Okabe & Ito's colour-blind-safe palette.
  const PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"];
  const STATE_COLOR = { C: "#0072B2", P: "#E69F00", F: "#D55E00", R: "#009E73", W: "#777777" };
  const STATE_NAME = { C: "complete", P: "pruned", F: "failed", R: "running", W: "waiting" };

  const escape = (text) =>
    String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

  /** A number as few significant digits as tell it apart: 0.0123, 1.23e-5, 1234. */
  function fmt(v, digits = 4) {
    if (v === null || v === undefined || Number.isNaN(v)) return "–";
    if (!Number.isFinite(v)) return v > 0 ? "∞" : "-∞";
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e6)) {
      const [mantissa, exponent] = v.toExponential(digits - 2).split("e");
      return `${String(Number(mantissa))}e${exponent.replace("+", "")}`;
    }
    if (Number.isInteger(v)) return String(v);
    return String(Number(v.toPrecision(digits)));
  }

  /** [min, max] of the finite values; null when none. */
  function extent(values) {
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of values) {
      if (v === null || !Number.isFinite(v)) continue;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    return lo <= hi ? [lo, hi] : null;
  }

  /** A scale from `domain` to `range`, linear or log10 (positive values only). */
  function scale(domain, range, log = false) {
    let [d0, d1] = domain;
    if (log) {
      d0 = Math.log10(d0);
      d1 = Math.log10(d1);
    }
    if (d0 === d1) {
      d0 -= 0.5;
      d1 += 0.5;
    }
    const [r0, r1] = range;
    const k = (r1 - r0) / (d1 - d0);
    const f = (v) => r0 + ((log ? Math.log10(v) : v) - d0) * k;
    f.invert = (p) => {
      const v = d0 + (p - r0) / k;
      return log ? 10 ** v : v;
    };
    return f;
  }

  /** Round tick values over [lo, hi]: 1-2-5 steps, or powers of ten on a log axis. */
  function ticks(lo, hi, log = false, count = 5) {
    if (!(Number.isFinite(lo) && Number.isFinite(hi))) return [];
    if (log) {
      const out = [];
      for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
        const v = Number(`1e${e}`);
        if (v >= lo * 0.999 && v <= hi * 1.001) out.push(v);
      }
      return out.length >= 2 ? out : [lo, hi];
    }
    if (lo === hi) return [lo];
    const raw = (hi - lo) / count;
    const power = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) || raw;
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
      out.push(Number(v.toPrecision(12)));
    }
    return out;
  }

  /** A domain with a little room: `pad` of the span on each side (log: in decades). */
  function padded(range, log, pad = 0.04) {
    let [lo, hi] = range;
    if (log) {
      const [a, b] = [Math.log10(lo), Math.log10(hi)];
      const room = Math.max(b - a, 0.1) * pad;
      return [10 ** (a - room), 10 ** (b + room)];
    }
    const room = (hi - lo || Math.abs(hi) || 1) * pad;
    return [lo - room, hi + room];
  }

  /**
   * An x/y chart as SVG text: `series` are lines ({points: [[x, y]], color,
   * dash, width, label, trial}), `marks` are points ({x, y, trial, color, r,
   * ring, label}). Options: width, height, xLabel, yLabel, logX, logY, xTicks
   * ([[x, text]] for categories), title (for screen readers), legend
   * ([{color, dash, text}]). Every mark with a trial carries `data-trial`.
   */
  function xy(opts) {
    const W = opts.width || 640;
    const H = opts.height || 300;
    const m = { l: 64, r: 16, t: 12, b: 44 };
    const series = opts.series || [];
    const marks = opts.marks || [];
    const ok = (v, log) => v !== null && Number.isFinite(v) && (!log || v > 0);
    const xs = [];
    const ys = [];
    for (const s of series) for (const [x, y] of s.points) if (ok(x, opts.logX) && ok(y, opts.logY)) { xs.push(x); ys.push(y); }
    for (const p of marks) if (ok(p.x, opts.logX) && ok(p.y, opts.logY)) { xs.push(p.x); ys.push(p.y); }
    const title = `<title>${escape(opts.title || opts.yLabel || "chart")}</title>`;
    const head = `<svg class="chart" viewBox="0 0 ${W} ${H}" role="img" aria-label="${escape(opts.title || opts.yLabel || "chart")}" xmlns="http://www.w3.org/2000/svg">${title}`;
    if (!xs.length) return `<p class="empty">${escape(opts.empty || "No data yet.")}</p>`;
    const xr = opts.xDomain || padded(extent(xs), opts.logX);
    const yr = opts.yDomain || padded(extent(ys), opts.logY);
    const x = scale(xr, [m.l, W - m.r], opts.logX);
    const y = scale(yr, [H - m.b, m.t], opts.logY);
    const parts = [head];
    // Axes, ticks and grid.
    const xt = opts.xTicks || ticks(xr[0], xr[1], opts.logX, Math.max(2, Math.floor(W / 110))).map((v) => [v, fmt(v, 3)]);
    const yt = ticks(yr[0], yr[1], opts.logY, Math.max(2, Math.floor(H / 60))).map((v) => [v, fmt(v, 3)]);
    parts.push(`<g class="axis">`);
    for (const [v, text] of yt) {
      const py = y(v).toFixed(1);
      parts.push(`<line class="grid" x1="${m.l}" x2="${W - m.r}" y1="${py}" y2="${py}"/><text x="${m.l - 6}" y="${py}" dy="0.32em" text-anchor="end">${escape(text)}</text>`);
    }
    for (const [v, text] of xt) {
      const px = x(v).toFixed(1);
      parts.push(`<line class="tick" x1="${px}" x2="${px}" y1="${H - m.b}" y2="${H - m.b + 4}"/><text x="${px}" y="${H - m.b + 16}" text-anchor="middle">${escape(text)}</text>`);
    }
    parts.push(`<line class="frame" x1="${m.l}" x2="${W - m.r}" y1="${H - m.b}" y2="${H - m.b}"/><line class="frame" x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${H - m.b}"/>`);
    parts.push(`<text class="label" x="${(m.l + W - m.r) / 2}" y="${H - 6}" text-anchor="middle">${escape(opts.xLabel || "")}</text>`);
    parts.push(`<text class="label" transform="translate(14 ${(m.t + H - m.b) / 2}) rotate(-90)" text-anchor="middle">${escape(opts.yLabel || "")}</text></g>`);
    for (const s of series) {
      const d = [];
      let pen = "M";
      for (const [px, py] of s.points) {
        if (!ok(px, opts.logX) || !ok(py, opts.logY)) { pen = "M"; continue; }
        d.push(`${pen}${x(px).toFixed(1)},${y(py).toFixed(1)}`);
        pen = "L";
      }
      if (!d.length) continue;
      const trial = s.trial !== undefined ? ` data-trial="${s.trial}"` : "";
      const dash = s.dash ? ` stroke-dasharray="${s.dash}"` : "";
      parts.push(`<path class="line${s.className ? " " + s.className : ""}"${trial} d="${d.join("")}" stroke="${s.color || PALETTE[0]}" stroke-width="${s.width || 1.5}"${dash} fill="none"><title>${escape(s.label || "")}</title></path>`);
    }
    for (const p of marks) {
      if (!ok(p.x, opts.logX) || !ok(p.y, opts.logY)) continue;
      const trial = p.trial !== undefined ? ` data-trial="${p.trial}"` : "";
      const cls = `mark${p.className ? " " + p.className : ""}`;
      const r = p.r || 3;
      const shape = p.square
        ? `<rect class="${cls}"${trial} x="${(x(p.x) - r).toFixed(1)}" y="${(y(p.y) - r).toFixed(1)}" width="${2 * r}" height="${2 * r}" fill="${p.color || PALETTE[0]}"/>`
        : `<circle class="${cls}"${trial} cx="${x(p.x).toFixed(1)}" cy="${y(p.y).toFixed(1)}" r="${r}" fill="${p.color || PALETTE[0]}"${p.ring ? ` stroke="#000" stroke-width="2"` : ""}/>`;
      parts.push(shape);
    }
    parts.push("</svg>");
    return parts.join("");
  }

  /** The best so far as steps: `best` holds [trial, value] where it changed; the
   * last step runs on to trial `last`. */
  function stairs(best, last) {
    const out = [];
    best.forEach(([n, v], i) => {
      if (i) out.push([n, best[i - 1][1]]);
      out.push([n, v]);
    });
    if (out.length && last !== null && last !== undefined && last > out[out.length - 1][0]) out.push([last, out[out.length - 1][1]]);
    return out;
  }

  /** A small best-so-far line (no axes), for the studies list. */
  function sparkline(values, width = 120, height = 28) {
    const r = extent(values);
    if (!r || values.length < 2) return `<svg class="spark" viewBox="0 0 ${width} ${height}" aria-hidden="true"></svg>`;
    const x = scale([0, values.length - 1], [2, width - 2]);
    const y = scale(r, [height - 3, 3]);
    const d = values.map((v, i) => `${i ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`).join("");
    return `<svg class="spark" viewBox="0 0 ${width} ${height}" aria-hidden="true"><path d="${d}" fill="none" stroke="${PALETTE[0]}" stroke-width="1.5"/></svg>`;
  }

  /** Horizontal bars ({label, value, lo, hi}) with optional intervals. */
  function bars(items, opts = {}) {
    const W = opts.width || 640;
    const row = 24;
    const m = { l: 150, r: 24, t: 8, b: 40 };
    const H = m.t + m.b + row * Math.max(items.length, 1);
    const hi = Math.max(1e-12, ...items.map((it) => Math.max(it.value, it.hi ?? it.value)));
    const x = scale([0, hi * 1.05], [m.l, W - m.r]);
    const parts = [`<svg class="chart" viewBox="0 0 ${W} ${H}" role="img" aria-label="${escape(opts.title || "bars")}" xmlns="http://www.w3.org/2000/svg"><title>${escape(opts.title || "bars")}</title><g class="axis">`];
    for (const v of ticks(0, hi * 1.05, false, 5)) {
      const px = x(v).toFixed(1);
      parts.push(`<line class="grid" x1="${px}" x2="${px}" y1="${m.t}" y2="${H - m.b}"/><text x="${px}" y="${H - m.b + 16}" text-anchor="middle">${fmt(v, 3)}</text>`);
    }
    parts.push(`<text class="label" x="${(m.l + W - m.r) / 2}" y="${H - 6}" text-anchor="middle">${escape(opts.xLabel || "")}</text></g>`);
    items.forEach((it, i) => {
      const top = m.t + i * row + 4;
      parts.push(`<text class="barlabel" x="${m.l - 6}" y="${top + 8}" dy="0.32em" text-anchor="end">${escape(it.label)}</text>`);
      parts.push(`<rect x="${m.l}" y="${top}" width="${Math.max(0, x(it.value) - m.l).toFixed(1)}" height="${row - 8}" fill="${it.color || PALETTE[0]}"><title>${escape(it.label)}: ${fmt(it.value)}</title></rect>`);
      if (it.lo !== undefined && it.hi !== undefined) {
        parts.push(`<line class="whisker" x1="${x(it.lo).toFixed(1)}" x2="${x(it.hi).toFixed(1)}" y1="${top + 8}" y2="${top + 8}"/>`);
      }
    });
    parts.push("</svg>");
    return parts.join("");
  }

  /**
   * Parallel coordinates: `axes` [{name, ticks: [[at, text]]}], `lines`
   * [[number, rank, value, [at per axis]]] with positions in [0, 1] (bottom to
   * top); `brushes` {axisIndex: [lo, hi]}; lines outside `selected` (a Set, when
   * given) are drawn faint. The colour runs from best (dark) to worst (light).
   */
  function parallel(axes, lines, opts = {}) {
    const W = opts.width || 900;
    const H = opts.height || 320;
    const m = { l: 40, r: 60, t: 28, b: 40 };
    const n = axes.length;
    const ax = (i) => m.l + (n === 1 ? 0 : (i * (W - m.l - m.r)) / (n - 1));
    const y = (at) => H - m.b - at * (H - m.t - m.b);
    const parts = [`<svg class="chart parallel" viewBox="0 0 ${W} ${H}" role="img" aria-label="parallel coordinates of the parameters and ${escape(opts.metric || "the value")}" xmlns="http://www.w3.org/2000/svg"><title>parallel coordinates</title>`];
    const maxRank = lines.reduce((a, l) => Math.max(a, l[1]), 1);
    parts.push(`<g class="plines">`);
    for (const [number, rank, , at] of lines) {
      const d = [];
      let pen = "M";
      at.forEach((p, i) => {
        if (p === null) { pen = "M"; return; }
        d.push(`${pen}${ax(i).toFixed(1)},${y(p).toFixed(1)}`);
        pen = "L";
      });
      const faint = opts.selected && !opts.selected.has(number);
      const shade = Math.round(30 + 180 * ((rank - 1) / Math.max(1, maxRank - 1)));
      const color = faint ? "#dddddd" : `rgb(${shade},${Math.round(80 + shade / 2)},${Math.round(160 + shade / 3)})`;
      parts.push(`<path data-trial="${number}" class="pline${faint ? " faint" : ""}" d="${d.join("")}" stroke="${color}" fill="none"/>`);
    }
    parts.push(`</g>`);
    axes.forEach((a, i) => {
      const px = ax(i).toFixed(1);
      parts.push(`<g class="axis paxis" data-axis="${i}"><line class="frame" x1="${px}" x2="${px}" y1="${y(0)}" y2="${y(1)}"/>`);
      for (const [at, text] of a.ticks) parts.push(`<text x="${Number(px) + 5}" y="${y(at).toFixed(1)}" dy="0.32em">${escape(text)}</text>`);
      parts.push(`<text class="label" x="${px}" y="${m.t - 10}" text-anchor="middle">${escape(a.name)}</text>`);
      const b = opts.brushes && opts.brushes[i];
      if (b) parts.push(`<rect class="brush" x="${Number(px) - 7}" y="${y(b[1]).toFixed(1)}" width="14" height="${(y(b[0]) - y(b[1])).toFixed(1)}"/>`);
      parts.push(`<rect class="brush-target" data-axis="${i}" x="${Number(px) - 12}" y="${y(1)}" width="24" height="${y(0) - y(1)}" fill="transparent"/></g>`);
    });
    parts.push("</svg>");
    return parts.join("");
  }

  /** The trial numbers of `lines` inside every brush ({axisIndex: [lo, hi]}). */
  function brushed(lines, brushes) {
    const active = Object.entries(brushes || {});
    const out = new Set();
    for (const [number, , , at] of lines) {
      if (active.every(([i, [lo, hi]]) => at[i] !== null && at[i] >= lo && at[i] <= hi)) out.add(number);
    }
    return out;
  }

  /** The position in [0, 1] of a pixel height on a parallel axis of chart height H. */
  function parallelAt(py, H = 320) {
    const m = { t: 28, b: 40 };
    return Math.min(1, Math.max(0, (H - m.b - py) / (H - m.t - m.b)));
  }

  /** Timeline bars [[number, worker, start, end, state, confirm]] over worker rows. */
  function timeline(workers, barsIn, opts = {}) {
    const W = opts.width || 900;
    const row = 18;
    const m = { l: 200, r: 16, t: 8, b: 40 };
    const H = m.t + m.b + row * Math.max(1, workers.length);
    const end = Math.max(1, ...barsIn.map((b) => b[3]));
    const x = scale([0, end], [m.l, W - m.r]);
    const parts = [`<svg class="chart" viewBox="0 0 ${W} ${H}" role="img" aria-label="timeline of trials per worker" xmlns="http://www.w3.org/2000/svg"><title>timeline</title><g class="axis">`];
    for (const v of ticks(0, end, false, 6)) {
      const px = x(v).toFixed(1);
      parts.push(`<line class="grid" x1="${px}" x2="${px}" y1="${m.t}" y2="${H - m.b}"/><text x="${px}" y="${H - m.b + 16}" text-anchor="middle">${fmt(v, 3)}</text>`);
    }
    parts.push(`<text class="label" x="${(m.l + W - m.r) / 2}" y="${H - 6}" text-anchor="middle">seconds since the study's first trial started</text>`);
    workers.forEach((w, i) => parts.push(`<text x="${m.l - 6}" y="${m.t + i * row + row / 2}" dy="0.32em" text-anchor="end">${escape(w.length > 30 ? "…" + w.slice(-29) : w)}</text>`));
    parts.push(`</g>`);
    for (const [number, worker, start, stop, state, confirm] of barsIn) {
      const px = x(start);
      parts.push(`<rect class="mark" data-trial="${number}" x="${px.toFixed(1)}" y="${m.t + worker * row + 3}" width="${Math.max(1, x(stop) - px).toFixed(1)}" height="${row - 6}" fill="${confirm ? PALETTE[3] : STATE_COLOR[state] || "#777"}"/>`);
    }
    parts.push("</svg>");
    return parts.join("");
  }

  // ---- The view state in the URL ----------------------------------------

  /** The view's state from a query string: log, metric, hide, brush, q, sort, dir. */
  function readView(search) {
    const q = new URLSearchParams(search);
    const brushes = {};
    for (const part of (q.get("brush") || "").split(",").filter(Boolean)) {
      const [i, lo, hi] = part.split(":").map(Number);
      if ([i, lo, hi].every(Number.isFinite) && lo <= hi) brushes[i] = [lo, hi];
    }
    return {
      log: q.get("log") === "1",
      metric: q.get("metric") || "",
      hide: new Set((q.get("hide") || "").split(",").filter((s) => s in STATE_NAME)),
      brushes,
      q: q.get("q") || "",
      sort: q.get("sort") || "",
      dir: q.get("dir") === "desc" ? "desc" : "asc",
      a: q.get("a") || "",
      b: q.get("b") || "",
    };
  }

  /** The query string of `view` (defaults left out), so every view has a URL. */
  function writeView(view) {
    const q = new URLSearchParams();
    if (view.log) q.set("log", "1");
    if (view.metric) q.set("metric", view.metric);
    if (view.hide && view.hide.size) q.set("hide", [...view.hide].sort().join(","));
    const b = Object.entries(view.brushes || {}).map(([i, [lo, hi]]) => `${i}:${lo.toFixed(3)}:${hi.toFixed(3)}`);
    if (b.length) q.set("brush", b.join(","));
    if (view.q) q.set("q", view.q);
    if (view.sort) q.set("sort", view.sort);
    if (view.sort && view.dir === "desc") q.set("dir", "desc");
    if (view.a) q.set("a", view.a);
    if (view.b) q.set("b", view.b);
    const text = q.toString();
    return text ? `?${text}` : "";
  }

  /** Studies matching the filter text, sorted by `key` (name, trials, best, activity). */
  function sortStudies(studies, filter, key, dir) {
    const needle = (filter || "").toLowerCase();
    const rows = studies.filter((s) => !needle || s.name.toLowerCase().includes(needle));
    const value = {
      name: (s) => s.name,
      trials: (s) => s.trials.total,
      best: (s) => (s.best_value === null ? null : s.best_value),
      activity: (s) => s.last_activity || "",
      progress: (s) => (s.budget ? s.trials.total / s.budget : null),
    }[key || "activity"];
    const sign = dir === "desc" ? -1 : 1;
    return rows.sort((a, b) => {
      const [x, y] = [value(a), value(b)];
      if (x === null || y === null) return (x === null) - (y === null);
      return (x < y ? -1 : x > y ? 1 : 0) * sign;
    });
  }

  return { PALETTE, STATE_COLOR, STATE_NAME, escape, fmt, extent, scale, ticks, padded, xy, stairs, sparkline, bars, parallel, brushed, parallelAt, timeline, readView, writeView, sortStudies };
})();

if (typeof module !== "undefined") module.exports = HpoChart;
