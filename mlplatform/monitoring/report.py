"""The monitoring report: one PNG of the distributions (reference against the window) and a small HTML page."""

from __future__ import annotations

import base64
import html
import io

import matplotlib

matplotlib.use("Agg")  # headless: monitoring runs on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def render_png(reference, current, labels: list[str], report) -> bytes:
    """Token counts, confidence and label shares, the reference beside the window."""
    fig, (ax_len, ax_conf, ax_label) = plt.subplots(1, 3, figsize=(14, 3.8))
    top = max(np.percentile(reference.tokens, 99), np.percentile(current.tokens, 99) if current.rows else 0, 2)
    bins = np.linspace(0, top, 30)
    for profile, name in ((reference, "training data"), (current, "this window")):
        if profile.rows:
            ax_len.hist(np.clip(profile.tokens, 0, top), bins, density=True, alpha=0.5, label=name)
            ax_conf.hist(profile.confidence, np.linspace(0.5, 1, 21), density=True, alpha=0.5, label=name)
    width = 0.4
    for offset, (profile, name) in enumerate(((reference, "training data"), (current, "this window"))):
        shares = [profile.labels.count(label) / max(profile.rows, 1) for label in labels]
        ax_label.bar(np.arange(len(labels)) + (offset - 0.5) * width, shares, width, label=name, alpha=0.7)
    ax_label.set_xticks(range(len(labels)), labels)
    metrics = report.metrics
    ax_len.set(title=f"tokens per text (PSI {metrics.get('length_psi', float('nan')):.2f})", xlabel="tokens")
    ax_conf.set(title=f"confidence (PSI {metrics.get('confidence_psi', float('nan')):.2f})", xlabel="top score")
    ax_label.set(title=f"predicted labels (PSI {metrics.get('label_psi', float('nan')):.2f})", ylabel="share")
    for ax in (ax_len, ax_conf, ax_label):
        ax.legend(loc="best")
        ax.grid(alpha=0.3)
    fig.suptitle(
        f"{report.model_name} v{report.version}, {report.start:%Y-%m-%d %H:%M} to {report.end:%Y-%m-%d %H:%M} UTC: "
        f"{report.status}"
    )
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


def render_html(report, png: bytes) -> str:
    metrics = sorted((k, v) for k, v in report.metrics.items() if v is not None)
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.4g}</td></tr>" for k, v in metrics)
    alerts = "".join(f"<li>{html.escape(a)}</li>" for a in report.alerts) or "<li>none</li>"
    image = base64.b64encode(png).decode()
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Monitoring {html.escape(report.model_name)} v{report.version}</title>
<style>body{{font-family:sans-serif;margin:2em}} td{{padding:2px 12px}} img{{max-width:100%}}</style></head>
<body><h1>{html.escape(report.model_name)} v{html.escape(report.version)}: {html.escape(report.status)}</h1>
<p>Window {report.start.isoformat(timespec="minutes")} to {report.end.isoformat(timespec="minutes")};
rows: {html.escape(str(report.sources))}; drift threshold (PSI) {report.threshold:g}.</p>
<h2>Alerts</h2><ul>{alerts}</ul>
<img alt="distributions" src="data:image/png;base64,{image}">
<h2>Metrics</h2><table>{rows}</table></body></html>
"""
