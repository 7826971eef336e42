"""The end of a run: a percentile table on the terminal, summary.json, and report.html
with PNG plots (latency over time, deliveries/s, online) in --out DIR.

matplotlib is optional: without it the HTML report has the tables and no plots.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

PCT = ("p50", "p90", "p99", "p99.9", "max")


def latency_table(summary: dict[str, Any]) -> Table:
    table = Table(title=f"latency (ms) - {summary['scenario']} room {summary['room']}")
    table.add_column("what")
    table.add_column("count", justify="right")
    for p in PCT:
        table.add_column(p, justify="right")
    for name, s in summary["latency_ms"].items():
        if not s.get("count"):
            continue
        table.add_row(name, f"{int(s['count']):,}", *(f"{s[p]:.1f}" for p in PCT))
    return table


def print_summary(summary: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    console.print(latency_table(summary))
    m = summary["metrics"]
    counts = Table(title="counts", show_header=False)
    counts.add_column("k")
    counts.add_column("v", justify="right")
    for key in ("viewers_peak", "online_peak", "connects", "connect_errors", "unexpected_closes", "resumes",
                "resume_unrecovered", "deliveries", "deliveries_per_s", "gaps", "out_of_order", "errors",
                "reply_timeouts", "idempotency_errors", "orders", "coupons_claimed", "oversold", "max_loop_lag_ms"):
        counts.add_row(key, f"{m.get(key, 0):,}" if isinstance(m.get(key), int) else str(m.get(key)))
    console.print(counts)
    if summary["reply_codes"]:
        console.print("replies: " + ", ".join(f"{k}={v}" for k, v in sorted(summary["reply_codes"].items())))
    for sale, audit in summary["sales"].items():
        console.print(f"sale {sale}: audit ok={audit.get('ok')} initial={audit.get('initial')} stock={audit.get('stock')} "
                      f"reserved={audit.get('reserved')} paid={audit.get('paid')} client-seen units={audit['units_sold_to_clients']}"
                      + (f" problems={audit.get('problems')}" if audit.get("problems") else ""))
    for lottery, v in summary["lotteries"].items():
        console.print(f"lottery {lottery}: {v}")
    for entry in summary["host_actions"]:
        if "error" in entry:
            console.print(f"[red]host action {entry['action']} (line {entry['line']}) failed: {entry['error']}[/red]")
    for sample in summary["error_samples"][:10]:
        console.print(f"[yellow]error: {sample}[/yellow]")
    for c in summary["checks"]:
        mark = "[green]PASS[/green]" if c["ok"] else "[red]FAIL[/red]"
        console.print(f"{mark} {c['check']} (actual {c['actual']})" + (f" {c['problem']}" if c.get("problem") else ""))


def plots(summary: dict[str, Any], out: Path) -> list[str]:
    """PNG plots; [] when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    rows = summary["timeline"]
    if not rows:
        return []
    t = [r["t"] for r in rows]
    made = []
    specs = [
        ("latency.png", "event latency (ms)", [("p50_ms", "p50"), ("p99_ms", "p99"), ("max_ms", "max")], True),
        ("deliveries.png", "event deliveries per second", [("deliveries", "deliveries/s")], False),
        ("online.png", "viewers", [("connected", "connected (generator)"), ("online", "online (server)")], False),
    ]
    for name, title, series, log in specs:
        fig, ax = plt.subplots(figsize=(8, 3.2), dpi=100)
        for key, label in series:
            # A second without events has no latency: leave a hole, not a zero.
            ys = [(r[key] if r[key] or not log else float("nan")) for r in rows]
            ax.plot(t, ys, label=label, marker="." if len(rows) < 30 else None)
        ax.set_title(title)
        ax.set_xlabel("seconds since start")
        if log and any(r["max_ms"] > 0 for r in rows):
            ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left")
        fig.tight_layout()
        fig.savefig(out / name)
        plt.close(fig)
        made.append(name)
    return made


def _kv_table(data: dict[str, Any]) -> str:
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in data.items())
    return f"<table>{rows}</table>"


def write_reports(summary: dict[str, Any], out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "summary.json"
    json_path.write_text(json.dumps(summary, indent=2, default=str))
    images = plots(summary, out)
    lat_rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{int(s['count']):,}</td>" + "".join(f"<td>{s[p]:.1f}</td>" for p in PCT) + "</tr>"
        for k, s in summary["latency_ms"].items() if s.get("count")
    )
    checks = "".join(
        f"<li class={'ok' if c['ok'] else 'bad'}>{'PASS' if c['ok'] else 'FAIL'} {html.escape(c['check'])} (actual {c['actual']})</li>"
        for c in summary["checks"]
    )
    sales = "".join(f"<h3>sale {html.escape(s)}</h3>{_kv_table(a)}" for s, a in summary["sales"].items())
    imgs = "".join(f'<p><img src="{name}" alt="{name}"></p>' for name in images) or "<p>(install matplotlib for plots)</p>"
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>liveload {html.escape(summary['scenario'])}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:60em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}
.ok{{color:green}}.bad{{color:#b00;font-weight:bold}}</style></head><body>
<h1>liveload: {html.escape(summary['scenario'])}</h1>
<p>room <b>{html.escape(summary['room'])}</b>, started {summary['started']}, {summary['duration_s']} s, {summary['workers']} generator process(es),
targets {html.escape(', '.join(summary['targets']))}. Verdict: <b class={'ok' if summary['passed'] else 'bad'}>{'PASS' if summary['passed'] else 'FAIL'}</b></p>
<h2>checks</h2><ul>{checks}</ul>
<h2>latency (ms)</h2><table><tr><th>what</th><th>count</th>{''.join(f'<th>{p}</th>' for p in PCT)}</tr>{lat_rows}</table>
<h2>plots</h2>{imgs}
<h2>metrics</h2>{_kv_table(summary['metrics'])}
<h2>replies</h2>{_kv_table(summary['reply_codes'])}
<h2>sales (audit)</h2>{sales or '<p>none</p>'}
<h2>host actions</h2>{_kv_table({f"{a['t']}s {a['action']}": a.get('error') or a.get('id', 'ok') for a in summary['host_actions']})}
<p>Full data: <a href="summary.json">summary.json</a></p></body></html>"""
    html_path = out / "report.html"
    html_path.write_text(page)
    return {"json": json_path, "html": html_path}
