"""Every benchmark, one after the other, and one markdown summary table for docs/benchmarks.md.

    python benchmarks/run_all.py [--quick] [--only validate,e2e,steady,scaling,startup,image_streaming,text_streaming]

Each benchmark prints its own detailed table as it runs; the summary at the end gives each
target with the measured median and whether it is met. --quick runs every benchmark with
small repeat counts (a check that they work; the numbers are then rough). The load average
of the machine at the start and at the end is printed: numbers taken under load are not
comparable with numbers from a quiet machine.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import io
import os
import platform
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


class _Tee(io.TextIOBase):
    """Print as usual and keep a copy (the benchmarks print their tables)."""

    def __init__(self, stream):
        self.stream, self.copy = stream, io.StringIO()

    def write(self, text):
        self.stream.write(text)
        self.stream.flush()
        return self.copy.write(text)


def _run(function, argv: list[str]):
    tee = _Tee(sys.stdout)
    with contextlib.redirect_stdout(tee):
        result = function(argv)
    return result, tee.copy.getvalue()


def validate(quick: bool) -> list[tuple[str, str, str]]:
    import validate_speed

    results, _ = _run(validate_speed.main, ["--repeat", "3" if quick else "7"])
    rows = []
    first = [label for label in results if label.startswith("first check")]
    slowest = max(first, key=lambda label: results[label]["median"])
    for label, r in results.items():
        if label == slowest:
            label = f"slowest first check of one spec ({label.removeprefix('first check: ')})"
        elif not label.startswith(("`dlpipe validate specs/*.yaml`", "`dlpipe validate --no-cache specs/*.yaml`")):
            continue
        rows.append((f"{label} ≤ {validate_speed.TARGET_SECONDS} s median, ≤ {validate_speed.TARGET_MB:.0f} MB",
                     f"{r['median']:.3f} s (CPU {r['cpu']:.3f} s), {r['rss_max']:.1f} MB",
                     _met(r["median"] <= validate_speed.TARGET_SECONDS and r["rss_max"] <= validate_speed.TARGET_MB)))
    return rows


def e2e(quick: bool) -> list[tuple[str, str, str]]:
    import e2e as bench

    result, _ = _run(bench.main, ["--runs", "2" if quick else "5"])
    return [("end to end, breast_cancer MLP, ≤ 1.05× hand-written Keras",
             f"{result['ratio']:.3f}× wall ({result['dlpipe']:.2f} s vs {result['handwritten']:.2f} s), "
             f"{result['cpu_ratio']:.3f}× CPU",
             _met(result["ratio"] <= 1.05))]


def steady(quick: bool) -> list[tuple[str, str, str]]:
    import steady_state

    argv = ["--rounds", "3", "--epochs", "2"] if quick else []
    result, _ = _run(steady_state.main, argv)
    return [("digits-CNN steady state ≥ 0.97× best hand-written tf.data",
             f"{result['ratio_to_best']:.3f}× ({result['dlpipe']:,.0f} vs {result['handwritten']:,.0f} samples/s; "
             f"stricter per-round maximum {result['ratio']:.3f}×; "
             f"CPU ms/sample {result['cpu_ms_per_sample']['dlpipe']:.3f} vs "
             f"{min(v for k, v in result['cpu_ms_per_sample'].items() if k != 'dlpipe'):.3f})",
             _met(result["ratio_to_best"] >= 0.97))]


def scaling(quick: bool) -> list[tuple[str, str, str]]:
    import scaling as bench

    argv = ["--rounds", "1"] if quick else ["--rounds", "3"]
    result, _ = _run(bench.main, argv)
    table, rows = result["table"], result["rows"]
    factors = sorted(table)
    out = []
    if 1 in table and 10 in table:
        ratio = table[10][0] / table[1][0]
        out.append((f"scaling: 10× rows → ≤ 10.5× time ({rows:,} → {rows * 10:,} rows)",
                    f"{ratio:.2f}× ({table[1][0]:.1f} s → {table[10][0]:.1f} s)", _met(ratio <= 10.5)))
    if 10 in table and 100 in table:
        growth = table[100][1] / table[10][1]
        source = "streaming CSV" if result["streaming"] else "CSV read whole (no streaming mode yet)"
        out.append((f"scaling: peak RSS 10× → 100× rows ≤ 1.2× ({source})",
                    f"{growth:.2f}× ({table[10][1]:.0f} MB → {table[100][1]:.0f} MB)", _met(growth <= 1.2)))
    return out or [("scaling", ", ".join(f"{f}×: {table[f][0]:.1f} s" for f in factors), "—")]


def startup(quick: bool) -> list[tuple[str, str, str]]:
    import startup as bench

    result, _ = _run(bench.main, ["--rounds", "2" if quick else "5"])
    return [("start-up: `dlpipe run` to the end of the first training step (floor: import tensorflow)",
             f"{result['dlpipe run: first step']:.2f} s (import tensorflow {result['import tensorflow']:.2f} s, "
             f"import keras {result['import keras']:.2f} s)", "—")]


def image_streaming(quick: bool) -> list[tuple[str, str, str]]:
    import image_streaming as bench

    result, _ = _run(bench.main, ["--rounds", "1" if quick else "3"])
    table = result["table"]
    (wall_10, rss_10), (wall_100, rss_100) = table[10], table[100]
    return [("image folder streaming: peak RSS 10× → 100× digits ≤ 1.2×",
             f"{rss_100 / rss_10:.2f}× ({rss_10:.0f} MB → {rss_100:.0f} MB)", _met(rss_100 / rss_10 <= 1.2)),
            ("image folder streaming: time ≤ 10.5× per 10× images",
             f"{wall_100 / wall_10:.2f}× ({wall_10:.1f} s → {wall_100:.1f} s)", _met(wall_100 / wall_10 <= 10.5))]


def text_streaming(quick: bool) -> list[tuple[str, str, str]]:
    import text_streaming as bench

    result, _ = _run(bench.main, ["--rounds", "1" if quick else "3"])
    table = result["table"]
    return [("text folder streaming: peak RSS 10× → 100× texts ≤ 1.2×",
             f"{result['rss_growth']:.2f}× ({table[10][1]:.0f} MB → {table[100][1]:.0f} MB)",
             _met(result["rss_growth"] <= 1.2)),
            ("text folder streaming: time ≤ 10.5× per 10× texts",
             f"{result['time_per_10x']:.2f}× ({table[10][0]:.1f} s → {table[100][0]:.1f} s)",
             _met(result["time_per_10x"] <= 10.5))]


def _met(ok: bool) -> str:
    return "yes" if ok else "no"


BENCHMARKS = {"validate": validate, "e2e": e2e, "steady": steady, "scaling": scaling, "startup": startup,
              "image_streaming": image_streaming, "text_streaming": text_streaming}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small repeat counts: check that they work")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated: " + ", ".join(BENCHMARKS))
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    load_before = os.getloadavg()
    rows = []
    for name in chosen:
        print(f"\n## {name}\n", flush=True)
        rows += BENCHMARKS[name](args.quick)
    load_after = os.getloadavg()
    print(f"\n## Summary ({_dt.date.today().isoformat()}, {os.cpu_count()}-core {platform.machine()}, "
          f"Python {platform.python_version()}, load average {load_before[0]:.2f} at the start, "
          f"{load_after[0]:.2f} at the end{', --quick' if args.quick else ''})\n")
    print("| target | measured (median) | met? |\n|---|---|---|")
    for target, measured, met in rows:
        print(f"| {target} | {measured} | {met} |")


if __name__ == "__main__":
    main(sys.argv[1:])
