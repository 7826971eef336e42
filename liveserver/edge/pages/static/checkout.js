// Coupons at checkout on the viewer page: a picker of the viewer's usable coupons for this
// room (from GET /api/v1/users/{user}/coupons), its choice passed as `buy.coupon`.

import { yuan } from "/protocol/js/liveclient.js";
import { $, el } from "/static/dom.js";

export function couponPicker({ client, token, room }) {
  const select = $("sale-coupon");

  async function refresh() {
    if (!token || !client.user || client.user.role === "guest") {
      select.hidden = true;
      return;
    }
    try {
      const res = await fetch(`/api/v1/users/${encodeURIComponent(client.user.id)}/coupons`, {
        headers: { Authorization: `Bearer ${token}` },
      });
      if (!res.ok) return;
      const usable = ((await res.json()).coupons || []).filter((c) => c.room === room && c.usable > 0);
      const keep = select.value;
      select.replaceChildren(el("option", { value: "", text: "No coupon" }),
        ...usable.map((c) => el("option", {
          value: c.coupon_id,
          text: `${yuan(c.amount)} off${c.min_spend ? ` over ${yuan(c.min_spend)}` : ""}`,
        })));
      if (usable.some((c) => c.coupon_id === keep)) select.value = keep;
      select.hidden = usable.length === 0;
    } catch {
      // no picker this time; buying without a coupon still works
    }
  }

  client.on("welcome", refresh);
  return {
    refresh,
    selected: () => (select.hidden ? "" : select.value),
  };
}
