// Pure helpers of the pages' lists (no DOM, no fetch): node runs them in tests/test_page_scripts.py.

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
