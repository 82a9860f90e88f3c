// Draws a money trail (nodes by hop in columns, transfers as arrows) into an <svg>; ``t`` says its words.
const SVG = "http://www.w3.org/2000/svg";

function node(tag, attrs, text) {
  const n = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
  if (text !== undefined) n.textContent = text;
  return n;
}

// The transfers between each two accounts as one line: how many, how much of the traced money, and
// whether any was held (several transfers drawn apart would lie on top of one another, amounts illegible).
export function pairsOf(trail) {
  const pairs = new Map();
  for (const e of trail.edges) {
    const key = `${e.payer}>${e.payee}`;
    const pair = pairs.get(key) || { payer: e.payer, payee: e.payee, count: 0, tainted_fen: 0, held: 0, first: e.at, last: e.at };
    pair.count += 1;
    pair.tainted_fen += e.tainted_fen;
    pair.held += e.stopped ? 1 : 0;
    pair.first = Math.min(pair.first, e.at);
    pair.last = Math.max(pair.last, e.at);
    pairs.set(key, pair);
  }
  return [...pairs.values()];
}

export function drawTrail(svg, trail, formatAmount, t) {
  svg.replaceChildren();
  const width = svg.clientWidth || 900;
  const byHop = new Map();
  for (const n of trail.nodes) byHop.set(n.hop, [...(byHop.get(n.hop) || []), n]);
  const hops = Math.max(...byHop.keys()) + 1;
  const height = Math.max(320, 70 * Math.max(...[...byHop.values()].map(c => c.length)) + 40);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.style.height = `${height}px`;
  const defs = node("defs", {});
  const marker = node("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto" });
  marker.append(node("path", { d: "M0,0 L10,5 L0,10 z", fill: "#5b6573" }));
  defs.append(marker);
  svg.append(defs);
  const place = new Map();
  const columnWidth = width / hops;
  for (const [hop, column] of byHop) {
    column.forEach((n, i) => place.set(n.account, {
      x: columnWidth * hop + columnWidth / 2, y: (height / (column.length + 1)) * (i + 1),
    }));
  }
  for (const p of pairsOf(trail)) {
    const a = place.get(p.payer), b = place.get(p.payee);
    if (!a || !b) continue;
    svg.append(node("line", { x1: a.x + 70, y1: a.y, x2: b.x - 72, y2: b.y, stroke: p.held === p.count ? "#1e7b34" : "#b3261e",
      "stroke-width": Math.min(1.5 + p.count, 6), "marker-end": "url(#arrow)", class: "edge",
      "data-payer": p.payer, "data-payee": p.payee, "data-count": p.count }));
    svg.append(node("text", { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 - 6, "text-anchor": "middle" },
      t("graph.pair", { amount: formatAmount(p.tainted_fen), count: p.count }) + (p.held ? t("graph.held") : "")));
  }
  for (const n of trail.nodes) {
    const { x, y } = place.get(n.account);
    const group = node("g", { class: "node", "data-account": n.account });
    group.append(node("rect", { x: x - 70, y: y - 22, width: 140, height: 44, rx: 6,
      fill: n.hop === 0 ? "#eef4ff" : n.retained_fen > 0 ? "#fdecea" : "#fff", stroke: "#5b6573" }));
    group.append(node("text", { x, y: y - 5, "text-anchor": "middle" }, n.account));
    group.append(node("text", { x, y: y + 12, "text-anchor": "middle" },
      n.hop === 0 ? t("graph.start", { amount: formatAmount(n.passed_on_fen) })
        : t("graph.hop", { hop: n.hop, amount: formatAmount(n.retained_fen) })));
    svg.append(group);
  }
}
