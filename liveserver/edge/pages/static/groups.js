// Group buy (拼团) on the viewer page: the room's live group deals, the teams forming
// (members' names, time left), "Open a team", "Join", and a share link to a team
// (?team=<id>, which highlights that team for whoever opens it). Everything shown comes
// from `state.groups` and `group` events; joining is the `group_join` op.

import { yuan, clock, newKey, describeError } from "/protocol/js/liveclient.js";
import { $, el } from "/static/dom.js";

export function mountGroups({ client, showNotice, systemLine }) {
  const wanted = new URLSearchParams(location.search).get("team"); // a shared team link
  const mine = new Map(); // team id -> my join reply
  let busy = false;

  function deals() {
    const now = client.serverNow();
    return Object.entries(client.state.groups || {})
      .map(([id, g]) => ({ id, ...g }))
      .filter((g) => g.phase !== "ended" && now < (g.end_ms || 0));
  }

  function shareUrl(teamId) {
    const url = new URL(location.href);
    url.searchParams.delete("token"); // never share one's own token
    url.searchParams.set("team", teamId);
    return url.toString();
  }

  async function join(groupId, teamId, msg) {
    if (busy) return;
    busy = true;
    msg.textContent = teamId ? "Joining…" : "Opening a team…";
    msg.className = "msg";
    try {
      const r = await client.request("group_join", teamId ? { group: groupId, team: teamId, key: newKey() } : { group: groupId, key: newKey() });
      mine.set(r.team, r);
      msg.className = "msg ok";
      msg.textContent = r.status === "completed"
        ? `Team complete! Order ${r.order} confirmed at ${yuan(client.state.groups?.[groupId]?.price)}.`
        : `You are in team ${r.team} (${r.members.length}/${r.size}). Share the link to fill it.`;
    } catch (error) {
      msg.className = "msg err";
      msg.textContent = error.extra && error.extra.reason ? error.message : describeError(error);
    } finally {
      busy = false;
      render();
    }
  }

  function teamRow(g, teamId, team, now) {
    const members = team.members || [];
    const isMine = mine.has(teamId);
    const li = el("li", { class: "team" + (teamId === wanted ? " wanted" : "") + (isMine ? " mine" : ""), "data-team": teamId },
      el("span", { class: "team-members", text: members.join(", ") }),
      el("span", { class: "team-need", text: `${Math.max(0, g.size - members.length)} more` }),
      el("b", { class: "team-clock", text: clock((team.deadline_ms || 0) - now) }));
    if (isMine) {
      const link = el("button", { class: "link team-share", type: "button", text: "Share" });
      link.addEventListener("click", async () => {
        const url = shareUrl(teamId);
        try { await navigator.clipboard.writeText(url); } catch { /* the link is shown anyway */ }
        $("group-msg").className = "msg ok";
        $("group-msg").textContent = `Share this link: ${url}`;
      });
      li.append(link);
    } else {
      const btn = el("button", { class: "small-btn team-join", type: "button", text: "Join" });
      btn.disabled = busy || g.stock <= 0;
      btn.addEventListener("click", () => join(g.id, teamId, $("group-msg")));
      li.append(btn);
    }
    return li;
  }

  function render() {
    const box = $("groups");
    const list = deals();
    box.hidden = !list.length;
    if (!list.length) return;
    const g = list[0];
    box.dataset.group = g.id;
    $("group-title").textContent = g.title || "Group buy";
    $("group-price").textContent = yuan(g.price);
    $("group-size").textContent = g.size;
    $("group-stock").textContent = g.stock;
    const now = client.serverNow();
    $("group-countdown").textContent = clock(g.end_ms - now);
    $("group-open").disabled = busy || g.stock <= 0;
    const teams = Object.entries(g.teams || {}).filter(([, t]) => (t.deadline_ms || 0) > now);
    teams.sort(([a], [b]) => (b === wanted) - (a === wanted)); // the shared team first
    $("group-teams").replaceChildren(...teams.map(([id, t]) => teamRow(g, id, t, now)));
    $("group-empty").hidden = teams.length > 0;
  }

  function onGroupEvent(ev) {
    const g = ev.group || {};
    if (!g.team) return;
    const me = client.user && client.user.id;
    if (g.phase === "completed" && mine.has(g.team)) {
      showNotice(`Your team is complete: ${g.members.join(", ")}`);
      $("group-msg").className = "msg ok";
      $("group-msg").textContent = "Team complete! Your order is confirmed at the group price.";
    } else if (g.phase === "completed") {
      systemLine(`A team completed: ${g.members.join(", ")}`);
    } else if (g.phase === "failed" && (g.users || []).includes(me)) {
      mine.delete(g.team);
      showNotice("Your team did not fill in time: your unit went back, nothing is charged.");
      $("group-msg").className = "msg err";
      $("group-msg").textContent = "Your team did not fill in time; open or join another.";
    }
  }

  $("group-open").addEventListener("click", () => join($("groups").dataset.group, null, $("group-msg")));
  client.on("welcome", render);
  client.on("batch", ({ frame }) => {
    for (const ev of frame.events) if (ev.k === "group") onGroupEvent(ev);
    render();
  });
  setInterval(render, 500);
}
