"""Fuzz dlpipe's inputs for longer than CI can: mutate specs and small data files, run
`dlpipe validate` on each (and, for a fraction of the cases, a 1-epoch `dlpipe run` on tiny
data) in a child process with a time limit and a memory cap, and report every traceback,
hang, crash or memory blow-up.

    python fuzz/fuzz_inputs.py --minutes 30 --out fuzz-findings
    python fuzz/fuzz_inputs.py --minutes 5 --run-fraction 0 --seed 7     # validate only

What counts as a finding: a Python traceback, an exit code other than 0 or 1, a child killed
by a signal, a `MemoryError`, a case over its time limit (a hang) or over the memory cap, a
case far slower or larger than the rest (validate over --slow seconds, a peak resident size
over --rss-mb), a Python warning printed to the user, or `validate` output that is not one
`FILE:LINE:COL: ...` line per problem. Each new kind (deduplicated by where it happened) is
saved under --out with everything needed to repeat it (the spec, the data, the command, the
output); fix it, then add it to tests/fixtures/bad.

Specs come from specs/*.yaml and tests/fixtures/bad/spec/*.yaml; data cases start from a
tiny CSV, JSON-lines file and image folder written here. Mutations are structural (a value
replaced by an interesting one: huge, non-finite, empty, of another type, a YAML bomb; a key
removed, added or repeated) and textual (lines deleted, repeated, swapped, cut, re-indented,
bytes flipped). The same --seed gives the same cases. Not a test: nothing here runs in CI.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
MAX_TEXT = 3 << 19  # 1.5 MiB
HARNESS_MEMORY = 4 << 30
"""The harness's own address-space cap (soft: each child sets its own); parsing a mutated spec
in Python takes far more memory than its size."""
TEMPLATES = sorted((ROOT / "specs").glob("*.yaml"))
BAD_SPECS = sorted((ROOT / "tests" / "fixtures" / "bad" / "spec").glob("*.yaml"))

INTERESTING = [
    0, -1, 1, 2, 3, 7, 2**31 - 1, 2**31, 2**63, -(2**63), 10**30, 65536, 65537, 1000001,
    0.0, -0.0, 0.5, 1.0, 1e-308, 1e308, 3.5e38, float("nan"), float("inf"), float("-inf"),
    True, False, None, "", " ", "a" * 5000, "<script>alert(1)</script>", "../../../../etc/passwd",
    "/dev/zero", "/dev/stdin", "~", "💥", "\u202e", "${HOME}", "1_000", "0x10", "1e3", "yes", "null",
    "2024-01-01", "a:b", "os:system", "x" * 101, "relu", "adam", "accuracy", "image", "label", "target",
    [], {}, [[]], [[[[[[[[]]]]]]]], {"type": "x"}, {"type": None}, list(range(3000)), [1e308, -1e308],
    {"class_name": "Lambda", "config": {}}, {"a": {"b": {"c": {"d": {}}}}},
]

YAML_SNIPPETS = [
    "a0: &a0 [x, x, x, x, x, x, x, x, x]\na1: &a1 [*a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0]\n"
    "a2: &a2 [*a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1]\na3: &a3 [*a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2]\n"
    "a4: &a4 [*a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3]\na5: &a5 [*a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4]\n",
    "loop: &loop [*loop]\n", "deep: " + "[" * 3000 + "]" * 3000 + "\n", "deep: " + "{a: " * 500 + "1" + "}" * 500 + "\n",
    "x: !!python/object/apply:os.system ['true']\n", "x: !!binary aGVsbG8=\n", "? [a, b]\n: c\n", "<<: {name: merged}\n",
    "%YAML 1.1\n---\n", "---\n", "...\n", "x: *undefined\n", "x: &dup 1\ny: &dup 2\n", "\ufeff", "x: 'unclosed\n",
    "x: [1, 2\n", "x: {a: 1\n", "\t- tab\n", "x: " + "y" * 100000 + "\n", "name: name\nname: again\n",
    "x: 1e400\n", "x: 99999999999999999999999999999\n", "x: .NaN\n", "x: 0o777\n", "x: 1:2:3\n",
]


# Cases --------------------------------------------------------------------------------------

@dataclass
class Case:
    kind: str                    # spec-validate, spec-run, data-run
    origin: str                  # which source it mutates
    mutations: list[str]
    files: dict[str, bytes]      # relative path → content, written into the case folder
    command: list[str]           # after `python -m dlpipe.cli`
    timeout: float
    memory_mb: int


@dataclass
class Outcome:
    code: int | None             # exit code; negative: killed by that signal; None: timed out
    seconds: float
    rss_mb: float
    stdout: str
    stderr: str


@dataclass
class Finding:
    category: str
    signature: str
    case: Case
    outcome: Outcome
    detail: str
    count: int = 1


@dataclass
class Tally:
    cases: Counter = field(default_factory=Counter)
    exits: Counter = field(default_factory=Counter)
    findings: dict[str, Finding] = field(default_factory=dict)


def _walk(node, path=(), above=()):
    """(path, node) of every node; a node inside itself (YAML `&a [*a]`) is not entered again."""
    yield path, node
    if id(node) in above or len(path) > 50:
        return
    above = above + (id(node),)
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, path + (key,), above)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, path + (i,), above)


def _set(root, path, value):
    if not path:
        return value
    node = root
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return root


def mutate_structure(rng: random.Random, data) -> tuple[object, str]:
    """One structural change to parsed YAML data; returns (data, what was done)."""
    data = copy.deepcopy(data)
    paths = [p for p, _ in _walk(data)]
    path = rng.choice(paths)
    node = data
    for part in path:
        node = node[part]
    shown = ".".join(map(str, path)) or "<root>"
    choice = rng.random()
    if choice < 0.55:
        value = copy.deepcopy(rng.choice(INTERESTING))
        return _set(data, path, value), f"set {shown} = {str(value)[:60]!r}"
    if choice < 0.7 and path:
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        if isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent.pop(path[-1])
        return data, f"delete {shown}"
    if choice < 0.8 and isinstance(node, dict):
        key = rng.choice(["type", "name", "units", "epochs", "nodes", "path", "allow_imports", "unknown_key",
                          "dtype", "filters", "batch_size", "learning_rate", "features", "split"])
        node[key] = copy.deepcopy(rng.choice(INTERESTING))
        return data, f"add {shown}.{key}"
    if choice < 0.9:
        times = rng.choice([2, 50]) if len(repr(node)) < 2000 else 2  # bounded: the harness must not blow up
        return _set(data, path, [copy.deepcopy(node)] * times), f"repeat {shown} {times} times in a list"
    if isinstance(node, (int, float)) and not isinstance(node, bool):
        factor = rng.choice([-1, 10, 1000, 10**6, 10**12, 0.5, 1e-9])
        return _set(data, path, node * factor), f"scale {shown} by {factor}"
    return _set(data, path, str(node)), f"stringify {shown}"


def mutate_text(rng: random.Random, text: str) -> tuple[str, str]:
    lines = text.splitlines(keepends=True) or [""]
    i = rng.randrange(len(lines))
    choice = rng.random()
    if choice < 0.15:
        del lines[i]
        return "".join(lines), f"delete line {i + 1}"
    if choice < 0.25:
        lines.insert(i, lines[i])
        return "".join(lines), f"repeat line {i + 1}"
    if choice < 0.35:
        j = rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
        return "".join(lines), f"swap lines {i + 1} and {j + 1}"
    if choice < 0.45:
        cut = rng.randrange(len(text) + 1)
        return text[:cut], f"cut at byte {cut}"
    if choice < 0.55:
        lines[i] = " " * rng.choice([1, 2, 3, 4, 8]) + lines[i]
        return "".join(lines), f"indent line {i + 1}"
    if choice < 0.7:
        pos = rng.randrange(len(text) + 1)
        char = rng.choice(["\x00", "\t", "\r", "'", '"', "[", "{", ":", "#", "&", "*", "!", "|", ">", "-", "é",
                           "\u2028", "\ufeff", "\\", "%", "@", "`"])
        return text[:pos] + char + text[pos:], f"insert {char!r} at {pos}"
    if choice < 0.85:
        snippet = rng.choice(YAML_SNIPPETS)
        lines.insert(i, snippet)
        return "".join(lines), f"insert snippet {snippet[:40]!r} at line {i + 1}"
    if choice < 0.95:
        lines[i] = lines[i].replace(":", "", 1) if ":" in lines[i] else lines[i] + ":"
        return "".join(lines), f"toggle a colon on line {i + 1}"
    return text.replace("\n", "\r\n"), "CRLF line ends"


def mutated_spec(rng: random.Random, text: str) -> tuple[str, list[str]]:
    done = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        data = None
        try:
            data = yaml.safe_load(text)
        except (yaml.YAMLError, RecursionError, ValueError, TypeError):  # deep nesting recurses in PyYAML
            pass
        if isinstance(data, (dict, list)) and data and rng.random() < 0.6:
            try:
                data, what = mutate_structure(rng, data)
                text = yaml.safe_dump(data, sort_keys=False, allow_unicode=rng.random() < 0.5, width=rng.choice([80, 10**6]))
            except (yaml.YAMLError, RecursionError, ValueError, TypeError):
                continue
        else:
            text, what = mutate_text(rng, text)
        done.append(what)
        if len(text) > MAX_TEXT:  # a spec over 1 MiB is refused unread: larger says nothing more
            break
    return text, done


# Data ---------------------------------------------------------------------------------------

def tiny_csv(rng: random.Random) -> list[list[str]]:
    rows = [["a", "b", "c", "label"]]
    for i in range(30):
        label = "yes" if i % 2 else "no"
        rows.append([f"{rng.gauss(i % 2, 1):.3f}", f"{rng.uniform(0, 10):.2f}", str(rng.randint(0, 5)), label])
    return rows


CELLS = ["", " ", "nan", "NaN", "inf", "-inf", "1e308", "-1e308", "1e39", "1_000", "True", "False", "0x1F", "1,5",
         "a", "yes ", " no", "no\u00a0", '"', '""', "'", "\x00", "💥", "9" * 400, "-0", "1e-400", "١٢٣", "<b>x</b>",
         "null", "[1, 2]", "{\"a\": 1}", "\t", "\\N"]


def mutate_csv(rng: random.Random, rows: list[list[str]]) -> tuple[str, list[str]]:
    rows = [list(r) for r in rows]
    done = []
    for _ in range(rng.choice([1, 1, 2])):
        choice = rng.random()
        if choice < 0.5:
            r, c = rng.randrange(len(rows)), rng.randrange(len(rows[0]))
            rows[r][c] = rng.choice(CELLS)
            done.append(f"cell ({r}, {c}) = {rows[r][c][:20]!r}")
        elif choice < 0.6:
            rows[0][rng.randrange(4)] = rng.choice(["a", "label", "", "b ", "a.1", "Unnamed: 0"])
            done.append(f"header {rows[0]}")
        elif choice < 0.7:
            r = rng.randrange(1, len(rows))
            rows[r] = rows[r][: rng.randrange(len(rows[r]))] if rng.random() < 0.5 else rows[r] + ["extra"]
            done.append(f"row {r} has {len(rows[r])} cells")
        elif choice < 0.8:
            keep = rng.choice([1, 2, 3])
            rows = rows[:keep]
            done.append(f"only {keep} line(s)")
        elif choice < 0.9:
            for row in rows[1:]:
                row[3] = rng.choice(["yes", "no", "maybe", "yes ", "YES"]) if rng.random() < 0.3 else row[3]
            done.append("labels respelled")
        else:
            rows = [row + [str(i) for i in range(rng.choice([50, 2000]))] for row in rows]
            rows[0][4:] = [f"x{i}" for i in range(len(rows[0]) - 4)]
            done.append("many columns")
    text = "\n".join(",".join(row) for row in rows) + "\n"
    if rng.random() < 0.1:
        text = "\ufeff" + text
        done.append("BOM")
    if rng.random() < 0.05:
        text = text.replace(",", ";")
        done.append("semicolons")
    return text, done


def mutate_jsonl(rng: random.Random, rows: list[list[str]]) -> tuple[str, list[str]]:
    header = rows[0]
    records = [dict(zip(header, [float(v) if i < 3 else v for i, v in enumerate(row)])) for row in rows[1:]]
    r = rng.randrange(len(records))
    key = rng.choice(header + ["extra"])
    value = copy.deepcopy(rng.choice(INTERESTING[:60]))
    records[r][key] = value
    lines = [json.dumps(record, allow_nan=True) for record in records]
    done = [f"record {r}: {key} = {str(value)[:30]!r}"]
    if rng.random() < 0.2:
        lines[r] = lines[r][:-1] + f', "{header[0]}": 1}}'
        done.append("duplicate key")
    if rng.random() < 0.1:
        lines.insert(r, rng.choice(["", "[]", "null", "{", "\x00", "1"]))
        done.append("odd line")
    return "\n".join(lines) + "\n", done


def png(width: int, height: int, pixels: bytes | None = None, depth: int = 8, kind: int = 0) -> bytes:
    import struct
    import zlib

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    channels = {0: 1, 2: 3}[kind]
    row = width * channels * depth // 8
    raw = pixels if pixels is not None else b"".join(b"\0" + bytes((x * 37 + y * 11) % 256 for x in range(row))
                                                     for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, kind, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def image_folder(rng: random.Random) -> tuple[dict[str, bytes], list[str]]:
    files = {f"images/{c}/{i}.png": png(8, 8) for c in ("cat", "dog") for i in range(6)}
    name = rng.choice(sorted(files))
    choice = rng.random()
    if choice < 0.2:
        data = bytearray(files[name])
        for _ in range(rng.choice([1, 5, 50])):
            data[rng.randrange(len(data))] = rng.randrange(256)
        files[name] = bytes(data)
        what = f"bytes of {name} flipped"
    elif choice < 0.35:
        files[name] = png(rng.choice([30000, 9000, 1]), rng.choice([30000, 9000, 1]), pixels=b"\0")
        what = f"{name}: a header claiming a huge or tiny size"
    elif choice < 0.5:
        files[name] = png(8, 8, depth=16)
        what = f"{name}: 16-bit"
    elif choice < 0.6:
        files[name] = png(9, 8)
        what = f"{name}: another size"
    elif choice < 0.7:
        files[name] = b""
        what = f"{name}: empty"
    elif choice < 0.8:
        files["images/emu/notes.txt"] = b"no images here"
        what = "a class folder without images"
    elif choice < 0.9:
        files[name] = png(8, 8, kind=2)
        what = f"{name}: RGB among grayscale"
    else:
        files = {k: v for k, v in files.items() if "/cat/" in k}
        what = "a single class"
    return files, [what]


DATA_SPEC = """\
name: fuzz-data
task: {task}
seed: 1
data:
  source: {source}
  target: {{name: {target}}}
  split: {{train: 0.6, validation: 0.2, test: 0.2}}
model: {{type: mlp, units: [4]}}
training: {{epochs: 1, batch_size: 8, progress: none, tensorboard: false}}
export: {{formats: [keras]}}
"""


def data_case(rng: random.Random, args) -> Case:
    rows = tiny_csv(rng)
    kind = rng.choice(["csv", "csv", "jsonl", "images"])
    task = rng.choice(["classification", "classification", "regression"])
    if kind == "csv":
        text, done = mutate_csv(rng, rows)
        files = {"data.csv": text.encode("utf-8", "surrogatepass")}
        source, target = "{type: csv, path: data.csv}", "label" if task == "classification" else "a"
    elif kind == "jsonl":
        text, done = mutate_jsonl(rng, rows)
        files = {"data.jsonl": text.encode("utf-8", "surrogatepass")}
        source, target = "{type: jsonl, path: data.jsonl}", "label" if task == "classification" else "a"
    else:
        files, done = image_folder(rng)
        task = "classification"
        source, target = "{type: image_folder, path: images}", "label"
        done.append("image folder")
    spec = DATA_SPEC.format(task=task, source=source, target=target)
    if kind == "images":
        spec = spec.replace("  target:", "  features: [{name: image, type: image}]\n  target:")
    if rng.random() < 0.3:
        spec, more = mutated_spec(rng, spec)
        done += [f"spec: {m}" for m in more]
    files["spec.yaml"] = spec.encode("utf-8", "surrogatepass")
    return Case("data-run", kind, done, files, ["run", "spec.yaml", "--out", "run"], args.run_timeout, args.run_memory_mb)


def spec_case(rng: random.Random, args, run: bool) -> Case:
    source = rng.choice(TEMPLATES if run or not BAD_SPECS or rng.random() < 0.6 else BAD_SPECS)
    text, done = mutated_spec(rng, source.read_text(encoding="utf-8"))
    files = {"spec.yaml": text.encode("utf-8", "surrogatepass")}
    if run:
        command = ["run", "spec.yaml", "--out", "run", "--set", "training.epochs=1", "--set", "training.progress=none"]
        return Case("spec-run", source.name, done, files, command, args.run_timeout, args.run_memory_mb)
    deep = rng.random() < 0.0  # --deep imports TensorFlow: the run cases cover building
    command = ["validate", "--no-cache", "spec.yaml"] + (["--deep"] if deep else [])
    if rng.random() < 0.1:
        command += ["--set", f"{rng.choice(['training.epochs', 'model.units', 'name', 'a.b.c', 'model.blocks[0]'])}="
                    f"{rng.choice(['1', '[1, 2', '.nan', '&a [*a]', '!!python/name:os.system', '2e400', ''])}"]
        done.append(f"override {command[-1]}")
    return Case("spec-validate", source.name, done, files, command, args.timeout, args.memory_mb)


# Running and judging ------------------------------------------------------------------------

def run_case(case: Case, folder: Path) -> Outcome:
    for name, data in case.files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    memory = case.memory_mb << 20

    def limits():
        os.setsid()
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "DLPIPE_CACHE_DIR": str(folder / ".cache"),
           "CUDA_VISIBLE_DEVICES": ""}
    with open(folder / ".stdout", "wb") as out, open(folder / ".stderr", "wb") as err:
        begun = time.monotonic()
        proc = subprocess.Popen([PYTHON, "-m", "dlpipe.cli", *case.command], cwd=folder, stdout=out,
                                stderr=err, stdin=subprocess.DEVNULL, preexec_fn=limits, env=env)
        code = None
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                code = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() - begun > case.timeout:
                os.killpg(proc.pid, signal.SIGKILL)
                _, _, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
        proc.returncode = code if code is not None else -9  # reaped here, not by Popen
        seconds = time.monotonic() - begun
    with contextlib_suppress():
        os.killpg(proc.pid, signal.SIGKILL)  # anything the child left running
    read = lambda name: (folder / name).read_bytes().decode("utf-8", "replace")  # noqa: E731
    return Outcome(code, seconds, usage.ru_maxrss / 1024, read(".stdout"), read(".stderr"))


class contextlib_suppress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return True


LOCATED = re.compile(r"^(?:.+:\d+:\d+: .+|.+: valid)$")
WARNING = re.compile(r"\b\w+Warning: ")


def judge(case: Case, outcome: Outcome, args) -> list[tuple[str, str, str]]:
    """(category, signature, detail) for each thing wrong with one case's outcome."""
    found = []
    err = outcome.stderr
    where = case.kind + ":" + case.origin
    if outcome.code is None:
        found.append(("hang", f"hang {where} {case.mutations[0].split(' ')[0]}",
                      f"over {case.timeout:.0f} s"))
    elif "Traceback (most recent call last)" in err:
        frames = re.findall(r'File "([^"]+)", line (\d+), in (\S+)', err)
        ours = [f for f in frames if "/dlpipe/" in f[0] or "/pipelines/" in f[0]]
        frame = (ours or frames or [("?", "?", "?")])[-1]
        last = [line for line in err.strip().splitlines() if line and not line.startswith(" ")][-1]
        kind = last.split(":")[0]
        found.append(("traceback", f"traceback {kind} at {Path(frame[0]).name}:{frame[1]} ({frame[2]})", last[:300]))
    elif "MemoryError" in err or (outcome.code is not None and outcome.code < 0):
        found.append(("crash", f"crash {where} exit {outcome.code}", err.strip().splitlines()[-1:][0][:300]
                      if err.strip() else f"exit {outcome.code}"))
    elif outcome.code not in (0, 1):
        found.append(("exit", f"exit {outcome.code} {where}", err.strip()[-300:]))
    elif outcome.code == 1 and not err.strip():
        found.append(("silent", f"silent failure {where}", "exit 1 and nothing said"))
    if outcome.rss_mb > (args.rss_mb if case.kind == "spec-validate" else args.run_rss_mb):
        found.append(("memory", f"memory {where}", f"peak {outcome.rss_mb:.0f} MB"))
    if case.kind == "spec-validate" and outcome.code is not None and outcome.seconds > args.slow:
        found.append(("slow", f"slow {where} {case.mutations[0].split(' ')[0]}", f"{outcome.seconds:.1f} s"))
    warnings = [line for line in err.splitlines() if WARNING.search(line) and "[dlpipe]" not in line]
    if warnings and not any(c == "traceback" for c, *_ in found):
        found.append(("warning", f"warning {WARNING.search(warnings[0]).group(0)} {where}", warnings[0][:300]))
    if case.kind == "spec-validate" and outcome.code == 1 and "Traceback" not in err:
        odd = [line for line in err.splitlines() + outcome.stdout.splitlines() if line and not LOCATED.match(line)]
        if odd:
            found.append(("format", f"unlocated validate line {where}", odd[0][:300]))
    return found


def save(finding: Finding, folder: Path, number: int) -> Path:
    target = folder / f"{number:03d}-{finding.category}"
    target.mkdir(parents=True, exist_ok=True)
    for name, data in finding.case.files.items():
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (target / "finding.txt").write_text(
        f"{finding.signature}\n{finding.detail}\n\ncommand (in this folder): python -m dlpipe.cli "
        f"{' '.join(finding.case.command)}\nmutations of {finding.case.origin}: {finding.case.mutations}\n"
        f"exit {finding.outcome.code}, {finding.outcome.seconds:.1f} s, peak {finding.outcome.rss_mb:.0f} MB\n\n"
        f"--- stderr ---\n{finding.outcome.stderr[-20000:]}\n--- stdout ---\n{finding.outcome.stdout[-5000:]}\n",
        encoding="utf-8")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to fuzz (default 10)")
    parser.add_argument("--cases", type=int, default=None, help="stop after this many cases instead")
    parser.add_argument("--seed", type=int, default=None, help="seed (default: the time); printed")
    parser.add_argument("--run-fraction", type=float, default=0.1,
                        help="fraction of cases that train (dlpipe run, 1 epoch, tiny data); default 0.1")
    parser.add_argument("--data-fraction", type=float, default=0.6,
                        help="of the run cases, the fraction that mutate data rather than a spec (default 0.6)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per validate case (default 30)")
    parser.add_argument("--run-timeout", type=float, default=300.0, help="seconds per run case (default 300)")
    parser.add_argument("--memory-mb", type=int, default=2048, help="address-space cap of a validate child")
    parser.add_argument("--run-memory-mb", type=int, default=16384, help="address-space cap of a run child")
    parser.add_argument("--rss-mb", type=float, default=400.0, help="a validate case above this peak is a finding")
    parser.add_argument("--run-rss-mb", type=float, default=3000.0, help="a run case above this peak is a finding")
    parser.add_argument("--slow", type=float, default=10.0, help="a validate case slower than this is a finding")
    parser.add_argument("--out", type=Path, default=Path("fuzz-findings"), help="where findings are saved")
    parser.add_argument("--python", default=sys.executable,
                        help="the interpreter whose dlpipe is fuzzed (default: this one); point it at a checkout "
                             "nobody edits while it runs")
    args = parser.parse_args(argv)
    global PYTHON
    PYTHON = args.python
    resource.setrlimit(resource.RLIMIT_AS, (HARNESS_MEMORY, resource.getrlimit(resource.RLIMIT_AS)[1]))
    seed = args.seed if args.seed is not None else int(time.time())
    rng = random.Random(seed)
    print(f"fuzzing for {args.minutes:g} min, seed {seed}, findings into {args.out}", flush=True)
    tally = Tally()
    deadline = time.monotonic() + args.minutes * 60
    scratch = Path(tempfile.mkdtemp(prefix="dlpipe-fuzz-"))
    number = 0
    try:
        while time.monotonic() < deadline and (args.cases is None or sum(tally.cases.values()) < args.cases):
            try:
                if rng.random() < args.run_fraction:
                    case = data_case(rng, args) if rng.random() < args.data_fraction else spec_case(rng, args, run=True)
                else:
                    case = spec_case(rng, args, run=False)
            except Exception as err:  # noqa: BLE001  a mutation the harness cannot make: skip it, say so
                tally.cases["harness-skipped"] += 1
                print(f"harness: could not make a case ({type(err).__name__}: {str(err)[:100]}); skipped", flush=True)
                continue
            folder = scratch / f"case-{sum(tally.cases.values())}"
            folder.mkdir()
            outcome = run_case(case, folder)
            tally.cases[case.kind] += 1
            tally.exits[(case.kind, outcome.code)] += 1
            for category, signature, detail in judge(case, outcome, args):
                if signature in tally.findings:
                    tally.findings[signature].count += 1
                    continue
                number += 1
                finding = Finding(category, signature, case, outcome, detail)
                tally.findings[signature] = finding
                where = save(finding, args.out, number)
                print(f"[{sum(tally.cases.values())}] {category}: {signature}: {detail[:200]} -> {where}", flush=True)
            shutil.rmtree(folder, ignore_errors=True)
            done = sum(tally.cases.values())
            if done % 100 == 0:
                print(f"... {done} cases ({dict(tally.cases)}), {len(tally.findings)} finding(s)", flush=True)
    except KeyboardInterrupt:
        print("interrupted: the summary so far", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    total = sum(tally.cases.values())
    print(f"\n{total} cases in {args.minutes:g} min (seed {seed}): " + ", ".join(f"{k} {v}" for k, v in sorted(tally.cases.items())))
    exits = Counter()
    for (kind, code), n in tally.exits.items():
        exits[f"{kind} exit {code}"] += n
    print("exits: " + ", ".join(f"{k}: {v}" for k, v in sorted(exits.items())))
    print(f"{len(tally.findings)} distinct finding(s)")
    for finding in tally.findings.values():
        print(f"  {finding.category}: {finding.signature} (x{finding.count}): {finding.detail[:160]}")
    return 1 if tally.findings else 0


if __name__ == "__main__":
    sys.exit(main())
