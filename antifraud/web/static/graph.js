// Draws a money trail (nodes by hop in columns, transfers as arrows) into an <svg>; ``t`` says its words.
const SVG = "http://www.w3.org/2000/svg";

function node(tag, attrs, text) {
  const n = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
  if (text !== undefined) n.textContent = text;
  return n;
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
  for (const e of trail.edges) {
    const a = place.get(e.payer), b = place.get(e.payee);
    if (!a || !b) continue;
    svg.append(node("line", { x1: a.x + 70, y1: a.y, x2: b.x - 72, y2: b.y, stroke: e.stopped ? "#1e7b34" : "#b3261e",
      "stroke-width": 1.5, "marker-end": "url(#arrow)", class: "edge", "data-event-id": e.event_id }));
    svg.append(node("text", { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 - 6, "text-anchor": "middle" },
      `${formatAmount(e.tainted_fen)}${e.stopped ? t("graph.held") : ""}`));
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
