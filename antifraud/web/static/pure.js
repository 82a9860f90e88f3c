// Pure helpers of the pages (no DOM, no fetch): node runs them in tests/test_page_scripts.py.

// ``value`` rounded to ``decimals`` half away from zero on the number as written (0.25 is 0.3, 1.005 is
// 1.01): as antifraud/alerts/explain.py rounds, so a reason reads the same from the server and the page.
export function rounded(value, decimals) {
  const written = String(Math.abs(value));
  if (written.includes("e")) return Number(value.toFixed(decimals));  // far from any half that shows
  const scaled = Math.round(Number(`${written}e${decimals}`));
  const result = Math.sign(value) * Number(`${scaled}e-${decimals}`);
  return Number.isFinite(result) ? result : Number(value.toFixed(decimals));  // past 1e21: no halves to see
}

// One entity's cases of a page together, in the place of its first case; each case says how many its entity
// has on the page and whether it is the first of them (the row that names the entity).
export function grouped(cases) {
  const groups = new Map();
  for (const c of cases) {
    const key = `${c.entity.kind}:${c.entity.value}`;
    groups.set(key, [...(groups.get(key) || []), c]);
  }
  return [...groups.values()].flatMap(group =>
    group.map((c, i) => ({ ...c, groupSize: group.length, groupFirst: i === 0 })));
}
