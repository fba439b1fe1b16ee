"""Reading report.html as a person (or a browser) sees it: the helper both report tests use."""

from __future__ import annotations

import math
from html.parser import HTMLParser

import pytest


class Page(HTMLParser):
    """What a reader of report.html gets: metric cells, images, links, headings, text."""

    def __init__(self, html: str):
        super().__init__()
        self.cells: dict[tuple[str, str], dict] = {}
        self.baseline_cells: dict[tuple[str, str, str], dict] = {}
        """(split, baseline, metric) → {"title", "text"}: the Baselines tables."""
        self.images: list[str] = []
        self.external: list[str] = []
        self.headings: list[str] = []
        self.tags: set[str] = set()
        self._cell = self._heading = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        if tag == "td" and "data-metric" in attrs:
            self._cell = {"title": attrs.get("title"), "text": ""}
            self.cells[(attrs["data-split"], attrs["data-metric"])] = self._cell
        if tag == "td" and "data-baseline-metric" in attrs:
            self._cell = {"title": attrs.get("title"), "text": ""}
            self.baseline_cells[(attrs["data-split"], attrs["data-baseline"], attrs["data-baseline-metric"])] = \
                self._cell
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        for name in ("src", "href"):
            if name in attrs and not str(attrs[name]).startswith("data:"):
                self.external.append(attrs[name])
        if tag == "h2":
            self._heading = ""

    def handle_endtag(self, tag):
        if tag == "td":
            self._cell = None
        if tag == "h2" and self._heading is not None:
            self.headings.append(self._heading)
            self._heading = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data
        if self._heading is not None:
            self._heading += data


def shown(text: str) -> float:
    return float("nan") if text == "NaN" else float(text.replace(",", ""))


def assert_every_metric_shown(cells: dict, metrics: dict) -> int:
    """cells: (split, metric) → {"title", "text"}, as Page.cells or a browser reads them."""
    count = 0
    for split, values in metrics.items():
        if split == "baselines":  # their own tables: assert_every_baseline_shown
            continue
        for name, value in values.items():
            cell = cells[(split, name)]
            assert cell["title"] == repr(value), (split, name)
            if value is None:  # an undefined metric (written as null)
                assert cell["text"] == "n/a"
            elif math.isnan(value):
                assert cell["text"] == "NaN"
            else:  # four decimals, or four significant digits in scientific notation
                assert shown(cell["text"]) == pytest.approx(value, abs=5e-5, rel=5e-4), (split, name, cell)
            count += 1
    assert len(cells) == count  # and nothing that is not in metrics.json
    return count


def assert_every_baseline_shown(cells: dict, baselines: dict) -> int:
    """cells: (split, baseline, metric) → {"title", "text"} (Page.baseline_cells)."""
    count = 0
    for split, by_baseline in baselines.items():
        for baseline, values in by_baseline.items():
            for name, value in values.items():
                cell = cells[(split, baseline, name)]
                assert cell["title"] == repr(value), (split, baseline, name)
                if value is not None and not math.isnan(value):
                    assert shown(cell["text"]) == pytest.approx(value, abs=5e-5, rel=5e-4), (split, baseline, name)
                count += 1
    # Nothing beyond metrics.json but "n/a" where a baseline does not score an output (a
    # regression baseline gives no accuracy for a model's classification output).
    said = {(split, baseline, name) for split, by_baseline in baselines.items()
            for baseline, values in by_baseline.items() for name in values}
    assert all(cell["text"] == "n/a" for key, cell in cells.items() if key not in said)
    return count
