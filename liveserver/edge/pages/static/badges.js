// Member badges next to names on both pages, from the `badge` claim of the sender's token
// (danmaku events carry it), and the legend that explains them.

import { el } from "/static/dom.js";

// badge claim -> [label, meaning]; any other claim is shown as its own text. Short text
// labels, not emoji: they render on every system font.
export const BADGES = {
  vip: ["VIP", "VIP member"],
  fan: ["FAN", "Fan club"],
  top: ["TOP", "Top buyer"],
  new: ["NEW", "New here"],
  mod: ["MOD", "Room moderator"],
};

export function badgeEl(badge) {
  const known = BADGES[badge];
  return el("span", {
    class: `badge badge-${known ? badge : "other"}`, "data-badge": badge,
    text: known ? known[0] : badge.slice(0, 12), title: known ? known[1] : badge,
  });
}

export function legendEl() {
  return el("div", { class: "badge-legend", "data-legend": "badges" },
    ...Object.entries(BADGES).map(([key, [symbol, meaning]]) =>
      el("span", { class: "legend-item" }, el("span", { class: `badge badge-${key}`, text: symbol }), ` ${meaning}`)));
}
