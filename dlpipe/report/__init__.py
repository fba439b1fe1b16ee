"""What a person reads after a run: plots (plots.py) and one self-contained page (html.py)."""

from dlpipe.report.html import model_summary, write_report

__all__ = ["model_summary", "write_report"]
