// Unit tests of chart.js's logic: `node --test crates/server/assets/` (the
// server's test `dashboard_js_unit_tests` runs them).
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const C = require("./chart.js");

test("numbers are formatted short, exponents without noise", () => {
  assert.equal(C.fmt(0.98051234), "0.9805");
  assert.equal(C.fmt(3.4e-4), "3.4e-4");
  assert.equal(C.fmt(1e-5, 3), "1e-5");
  assert.equal(C.fmt(12), "12");
  assert.equal(C.fmt(null), "–");
  assert.equal(C.fmt(Infinity), "∞");
});

test("linear ticks are round and inside the range", () => {
  assert.deepEqual(C.ticks(0, 1, false, 5), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  const t = C.ticks(0.93, 0.981, false, 5);
  assert.ok(t.every((v) => v >= 0.93 && v <= 0.981), String(t));
  assert.ok(t.length >= 2);
});

test("log ticks are powers of ten", () => {
  assert.deepEqual(C.ticks(1e-5, 0.1, true), [1e-5, 1e-4, 1e-3, 1e-2, 1e-1]);
  assert.deepEqual(C.ticks(2, 5, true), [2, 5]);
});

test("a log scale maps decades evenly and inverts", () => {
  const s = C.scale([1e-4, 1], [0, 400], true);
  assert.equal(s(1e-4), 0);
  assert.equal(s(1e-2), 200);
  assert.ok(Math.abs(s.invert(300) - 0.1) < 1e-12);
});

test("an x/y chart draws one mark per point with its trial, and skips what a log axis cannot show", () => {
  const svg = C.xy({ marks: [{ x: 1, y: 0.5, trial: 7 }, { x: 2, y: -1, trial: 8 }, { x: 3, y: 2, trial: 9 }], logY: true, yLabel: "val_loss" });
  assert.equal((svg.match(/<circle /g) || []).length, 2);
  assert.match(svg, /data-trial="7"/);
  assert.doesNotMatch(svg, /data-trial="8"/);
  assert.match(svg, /val_loss/);
  assert.match(C.xy({ marks: [] }), /No data yet/);
});

test("the best so far is drawn as steps up to the last trial", () => {
  assert.deepEqual(C.stairs([[0, 5], [3, 2]], 9), [[0, 5], [3, 5], [3, 2], [9, 2]]);
  assert.deepEqual(C.stairs([[0, 5]], 0), [[0, 5]]);
  assert.deepEqual(C.stairs([], 4), []);
});

test("brushing keeps the lines inside every range", () => {
  const lines = [
    [1, 1, 0.1, [0.1, 0.9]],
    [2, 2, 0.2, [0.5, 0.5]],
    [3, 3, 0.3, [null, 0.5]],
  ];
  assert.deepEqual([...C.brushed(lines, {})].sort(), [1, 2, 3]);
  assert.deepEqual([...C.brushed(lines, { 0: [0.4, 0.6] })], [2]);
  assert.deepEqual([...C.brushed(lines, { 1: [0.4, 1] })].sort(), [1, 2, 3]);
});

test("the view round-trips through the URL", () => {
  const view = C.readView("?log=1&metric=loss&hide=P,F,bogus&brush=0:0.100:0.500,2:0.2:0.1");
  assert.equal(view.log, true);
  assert.equal(view.metric, "loss");
  assert.deepEqual([...view.hide].sort(), ["F", "P"]);
  assert.deepEqual(view.brushes, { 0: [0.1, 0.5] });
  assert.equal(C.writeView(view), "?log=1&metric=loss&hide=F%2CP&brush=0%3A0.100%3A0.500");
  assert.equal(C.writeView(C.readView("")), "");
});

test("studies are filtered and sorted, unknown values last", () => {
  const studies = [
    { name: "b", trials: { total: 5 }, best_value: 0.2, last_activity: "2026-12-01" },
    { name: "a", trials: { total: 9 }, best_value: null, last_activity: "2026-12-03" },
    { name: "ab", trials: { total: 1 }, best_value: 0.1, last_activity: null },
  ];
  assert.deepEqual(C.sortStudies(studies, "", "name", "asc").map((s) => s.name), ["a", "ab", "b"]);
  assert.deepEqual(C.sortStudies(studies, "a", "trials", "desc").map((s) => s.name), ["a", "ab"]);
  assert.deepEqual(C.sortStudies(studies, "", "best", "asc").map((s) => s.name), ["ab", "b", "a"]);
});

test("text is escaped in every chart", () => {
  assert.equal(C.escape(`<a href="x">&'`), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
  assert.doesNotMatch(C.bars([{ label: "<b>", value: 1 }]), /<b>/);
});
