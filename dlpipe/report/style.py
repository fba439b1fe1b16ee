"""What every page of the report shares: its style sheet and how it writes a number.
Both html.py (report.html) and explanations.py (a section of it) read them from here, so
that neither imports the other back."""

from __future__ import annotations

import math
from html import escape
from typing import Any

STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto;
       max-width: 1100px; padding: 1.5em; color: #1d1d1f; }
h1 { margin-bottom: 0.1em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.8em; }
.muted { color: #666; } .bad { color: #b00020; font-weight: 600; } .good { color: #0a7d32; font-weight: 600; }
table { border-collapse: collapse; margin: 0.6em 0; } th, td { padding: 0.25em 0.8em; border-bottom: 1px solid #eee; }
th { text-align: left; background: #f6f6f8; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.plots { display: flex; flex-wrap: wrap; gap: 0 1.5em; align-items: flex-start; }
figure { margin: 1em 0; max-width: 100%; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; } pre { background: #f6f6f8; padding: 0.8em; overflow-x: auto; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; } dt { font-weight: 600; } dd { margin: 0; }
.local-explanation { border-left: 3px solid #ddd; padding-left: 0.8em; margin: 1em 0; }
.token { padding: 0 0.15em; border-radius: 3px; }
"""


def format_number(value: Any) -> str:
    """Four decimals for everyday magnitudes, scientific notation for the others."""
    if value is None:  # metrics.json's undefined (non-finite) metric
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return escape(str(value))
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    if isinstance(value, int) or value == 0:
        return f"{value:,}" if isinstance(value, int) else "0"
    return f"{value:.4f}" if 1e-3 <= abs(value) < 1e5 else f"{value:.4e}"
