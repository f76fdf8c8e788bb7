"""Seeded mutation sweep over the three readers (issue 9).

Valid NTU, PKU-MMD and NW-UCLA files are mutated (truncations, byte flips, insertions and
deletions, lying counts, huge/tiny/long/non-finite numbers, odd digits, odd encodings and line
ends, duplicated and swapped lines) and read. Every outcome must be one of:

* a clean error: a :class:`~s2i_prep.errors.ReadError` whose message starts with the file's path
  and, for grammar errors (ParseError, TruncatedError), names a line or a frame;
* exact values: what an independent plain-Python reading of the same bytes gives (NTU:
  ``tests/reference/ntu_ref.read_plain``; PKU: ``str.split`` + ``float()``; NW-UCLA: ``json``),
  finite, bit for bit;

and NTU must give the same verdict and positions with ``fields="xyz"`` (what ``convert`` reads)
as with ``fields="all"`` (what ``dump`` reads). The sweep runs in a child process so that a hang
is a timeout and memory is measured (peak RSS) rather than taking the test runner down.

    python -m tests.test_reader_mutations --seed 7 --cases 3000   # a longer local hunt
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]

#: Tokens a mutation may put in place of (or next to) a token.
INTERESTING = [
    "", "0", "-0", "+1", "1e39", "-1e39", "1e-50", "1e999999999", "-1e-999999999", "nan", "-inf",
    "Infinity", "NaN", "1" * 30, "0." + "0" * 40 + "1", "000000000000000000000007.20",
    "1.000000000000000000000e+10", "1.00000000000000000000000e5", "3.4028235677973362e38",
    "3.4028235677973366e38", "340282356779733661637539395458142568448", "tiny", "fanny", "128",
    "-129", "2147483648", "18446744073709551615", "18446744073709551616", "\u0663", "\uff13",
    "1_0", "0x10", "1e", ".", "+", "--1", "1..2", "\t", "\x00", "\xff", "\r", "\r\n", "\n",
    "9" * 5000, "1" + "0" * 50, "true", "null", '"7"', "[", "]", "{", "}", ",", "[" * 200,
    "1e308", "-4e38", "  ", "\ufeff",
]
ENCODINGS = ["utf-16", "utf-16-be", "utf-32", "utf-8-sig", "latin-1"]


# ---------------------------------------------------------------------------- base files

def ntu_base(rng: np.random.Generator) -> bytes:
    from tests.ntu_files import BASE_ID, compose, skeleton_text, track

    frames = int(rng.integers(1, 4))
    tracks = [track(rng, frames, body_id=BASE_ID + k) for k in range(int(rng.integers(1, 3)))]
    return skeleton_text(compose(frames, *tracks), crlf=bool(rng.integers(2)))


def pku_base(rng: np.random.Generator) -> bytes:
    rows = int(rng.integers(3, 6))  # the label row 1,0,3,1 needs frames 0..2
    values = np.round(rng.uniform(-2, 4, size=(rows, 150)), 6)
    values[:, 75:] *= rng.integers(2)  # sometimes one body only
    return "".join(" ".join(f"{v:.6f}" for v in row) + "\n" for row in values).encode()


def ucla_base(rng: np.random.Generator) -> bytes:
    frames = np.round(rng.normal(size=(int(rng.integers(1, 4)), 20, 3)), 6).tolist()
    return json.dumps({"file_name": "a08_s03_e01_v02", "skeletons": frames, "label": 7}).encode()


# ---------------------------------------------------------------------------- mutations

def _pos(rng: np.random.Generator, data: bytes) -> int:
    return int(rng.integers(0, len(data) + 1))


def _tokens(data: bytes) -> list[re.Match[bytes]]:
    return list(re.finditer(rb"[^ \t\r\n,\[\]{}:]+", data))


def _piece(rng: np.random.Generator) -> bytes:
    return INTERESTING[int(rng.integers(len(INTERESTING)))].encode("utf-8")


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def mutate(rng: np.random.Generator, data: bytes) -> tuple[str, bytes]:
    """One random mutation of ``data``: ``(description, bytes)``."""
    kind = int(rng.integers(11))
    if kind == 0:
        cut = _pos(rng, data)
        return f"truncate at {cut}", data[:cut]
    if kind == 1 and data:
        i = int(rng.integers(len(data)))
        b = int(rng.integers(256))
        return f"byte {i} := {b}", data[:i] + bytes([b]) + data[i + 1:]
    if kind == 2:
        i, piece = _pos(rng, data), _piece(rng)
        return f"insert {piece[:20]!r} at {i}", data[:i] + piece + data[i:]
    if kind == 3 and data:
        i = int(rng.integers(len(data)))
        k = int(rng.integers(1, 20))
        return f"delete {k} at {i}", data[:i] + data[i + k:]
    if kind in (4, 5):
        toks = _tokens(data)
        if toks:
            m = toks[int(rng.integers(len(toks)))]
            piece = _piece(rng)
            return (f"token {m.group()[:20]!r} at {m.start()} := {piece[:20]!r}",
                    data[:m.start()] + piece + data[m.end():])
    if kind == 6:
        lines = _lines(data)
        counts = [k for k, line in enumerate(lines) if re.fullmatch(rb"\s*-?\d+\s*", line)]
        if counts:
            k = counts[int(rng.integers(len(counts)))]
            value = [-1, 0, 1, 2, 3, 24, 26, 2**31, 10**30][int(rng.integers(9))]
            lines[k] = str(value).encode() + (b"\r" if lines[k].endswith(b"\r") else b"")
            return f"count on line {k + 1} := {value}", b"\n".join(lines)
    if kind == 7:
        choice = int(rng.integers(4))
        if choice == 0:
            return "CRLF", data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if choice == 1:
            return "CR only", data.replace(b"\r\n", b"\n").replace(b"\n", b"\r")
        lines = _lines(data)
        k = int(rng.integers(len(lines)))
        lines[k] = lines[k] + b"\r" if choice == 2 else lines[k].replace(b" ", b"\r", 1)
        return f"CR on line {k + 1}", b"\n".join(lines)
    if kind == 8:
        enc = ENCODINGS[int(rng.integers(len(ENCODINGS)))]
        return f"encoding {enc}", data.decode("latin-1").encode(enc)
    if kind == 9:
        lines = _lines(data)
        i, j = (int(v) for v in rng.integers(len(lines), size=2))
        if rng.integers(2):
            lines.insert(j, lines[i])
            return f"line {i + 1} duplicated at {j + 1}", b"\n".join(lines)
        lines[i], lines[j] = lines[j], lines[i]
        return f"lines {i + 1} and {j + 1} swapped", b"\n".join(lines)
    # several small mutations at once
    desc = []
    for _ in range(int(rng.integers(2, 5))):
        d, data = mutate(rng, data)
        desc.append(d)
    return "; ".join(desc), data


# ---------------------------------------------------------------------------- references

def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.tobytes() == b.tobytes()


def check_ntu_values(path: Path, raws) -> str | None:
    """``None`` if the NTU result equals the plain reference reader's, else the difference."""
    from tests.reference.ntu_ref import read_plain

    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):  # s2i skips a UTF-8 BOM; the plain reader does not
        path = path.with_name("nobom.skeleton")
        path.write_bytes(data[3:])
    try:
        ref = read_plain(str(path), "all")
    except Exception as exc:  # noqa: BLE001 - the reference is the stricter one here
        return f"s2i accepted what the plain reader rejects ({type(exc).__name__}: {exc})"
    raw = raws[0]
    if any(str(int(k)) != k for k in ref["bodies"]):
        return None  # ids the reference keys by spelling ("007"); s2i by value: not comparable
    if raw.joints.shape[1] != ref["num_frames"] or list(ref["bodies"]) != list(raw.body_ids):
        return f"frames/bodies differ: {raw.joints.shape} vs {ref['num_frames']}, {list(ref['bodies'])}"
    for k, body in enumerate(ref["bodies"].values()):
        if not _same(raw.joints[k, body["frames"]], body["joints"]):
            return f"joints of body {k} differ from float() on the tokens"
    return None


def check_pku_values(path: Path, raws) -> str | None:
    text = path.read_bytes().decode("latin-1").removeprefix("\xef\xbb\xbf")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    rows = [[float(t) for t in re.split(r"[ \t]+", line.removesuffix("\r")) if t] for line in lines]
    table = np.array(rows, np.float64).astype(np.float32).reshape(len(rows), 2, 25, 3)
    table = table.transpose(1, 0, 2, 3).copy()
    table[(table == 0).all(axis=(2, 3))] = np.nan
    for raw in raws:  # clip_bounds half_open: frames start..end-1
        if not _same(raw.joints, table[:, raw.meta["start"]:raw.meta["end"]]):
            return f"PKU values of clip {raw.name} differ from float() on the tokens"
    return None


def check_ucla_values(path: Path, raws) -> str | None:
    doc = json.loads(path.read_bytes().decode("utf-8-sig"))
    want = np.array(doc["skeletons"], np.float64).astype(np.float32)[None]
    if not _same(raws[0].joints, want):
        return "NW-UCLA values differ from json + float32"
    return None


# ---------------------------------------------------------------------------- formats

@dataclass
class Format:
    """One input format plugged into the sweep.

    ``base`` makes a valid file; ``case`` writes one mutated case into ``path`` (and any side
    file) and describes it; ``check`` compares accepted values with an independent plain-Python
    reading (``None``: equal); ``alternates`` are other reader options that must give the same
    verdict, message and positions; ``located`` says whether a grammar error names its place.
    """

    spec: str
    file: str
    base: Callable[[np.random.Generator], bytes]
    check: Callable[[Path, list], str | None]
    case: Callable[[Format, np.random.Generator, int, Path], str] | None = None
    options: dict = field(default_factory=dict)
    alternates: tuple[dict, ...] = ()
    located: Callable[[BaseException], bool] | None = None
    prepare: Callable[[Path], None] | None = None
    reader: str | None = None  # the spec's reader unless named (pickles: pyskl_pickle)
    text_values: bool = True  # messages show the file's values as JSON (not for pickles)

    def write_case(self, rng: np.random.Generator, case: int, path: Path) -> str:
        if self.case is not None:
            return self.case(self, rng, case, path)
        desc, data = mutate(rng, self.base(rng))
        path.write_bytes(data)
        return desc


def _pku_case(fmt: Format, rng: np.random.Generator, case: int, path: Path) -> str:
    label = b"1,0,3,1\n"
    desc, data = mutate(rng, fmt.base(rng))
    if case % 5 == 0:  # mutate the label file instead
        ldesc, label = mutate(rng, label)
        desc, data = f"label file: {ldesc}", fmt.base(rng)
    path.write_bytes(data)
    (path.parent.parent / "label" / path.name).write_bytes(label)
    return desc


def _pku_prepare(workdir: Path) -> None:
    (workdir / "label").mkdir(parents=True, exist_ok=True)
    (workdir / "label" / "0007-L.txt").write_bytes(b"1,0,3,1\n")


FORMATS: dict[str, Format] = {
    "ntu25": Format("ntu25", "S001C001P001R001A001.skeleton", ntu_base, check_ntu_values,
                    alternates=({"fields": "xyz"},)),
    "pku25": Format("pku25", "skeleton/0007-L.txt", pku_base, check_pku_values, case=_pku_case,
                    prepare=_pku_prepare),
    "ucla20": Format("ucla20", "a08_s03_e01_v02.json", ucla_base, check_ucla_values),
}


# ---------------------------------------------------------------------------- the sweep

def _clean_error(exc: BaseException, path: Path, fmt: Format) -> str | None:
    """``None`` if ``exc`` is a clean located error, else what is wrong with it."""
    from s2i_prep.errors import ParseError, ReadError, TruncatedError

    if not isinstance(exc, ReadError):
        return "raised " + "".join(traceback.format_exception_only(type(exc), exc)).strip()[:300]
    label = path.parent.parent / "label" / path.name  # PKU: the skeleton's label file
    if not str(exc).startswith((str(path), str(label))) or not exc.message:
        return f"error does not start with the path: {exc}"
    if isinstance(exc, (ParseError, TruncatedError)):
        loc = exc.location
        located = fmt.located(exc) if fmt.located else loc.line is not None or loc.frame is not None
        if not located:
            return f"grammar error without its place: {exc}"
    if fmt.text_values and re.search(r"\b(None|True|False)\b|found (list|dict|str|int|float)\b", exc.message):
        return f"a value is shown as Python, not as JSON: {exc}"
    return None


def _read(reader, path: Path, spec):
    try:
        return reader.read(path, spec), None
    except Exception as exc:  # noqa: BLE001 - judged by the caller
        return None, exc


def peak_mb() -> int:
    """This process's peak resident memory. VmHWM, not ``ru_maxrss``: Linux carries
    ``ru_maxrss`` across exec, so a child of a large pytest process would report the parent's."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def sweep(seed: int, cases: int, workdir: Path, names: list[str] | None = None) -> dict:
    """Run ``cases`` mutations per format; returns a summary with every violation found."""
    from s2i_prep.kernels import parse_ntu, parse_text
    from s2i_prep.readers import get_reader
    from s2i_prep.specs import load_spec

    parse_ntu.warm()
    parse_text.warm()
    formats = {name: FORMATS[name] for name in (names or ["ntu25", "pku25", "ucla20"])}
    rng = np.random.default_rng(seed)
    violations: list[str] = []
    outcomes: Counter[str] = Counter()

    def readers(fmt: Format):
        spec = load_spec(fmt.spec)
        return spec, [get_reader(fmt.reader or spec.reader, **{**fmt.options, **alt}) for alt in ({}, *fmt.alternates)]

    # Memory is judged by its growth over the sweep: compiling the kernels on a cold Numba cache
    # (a fresh clone) alone takes several hundred MB, once, before any mutated file is read.
    for fmt in formats.values():
        (workdir / fmt.file).parent.mkdir(parents=True, exist_ok=True)
        if fmt.prepare:
            fmt.prepare(workdir)
        (workdir / fmt.file).write_bytes(fmt.base(np.random.default_rng(seed)))
        spec, rs = readers(fmt)
        for reader in rs:
            _read(reader, workdir / fmt.file, spec)
    baseline_mb = last_peak = peak_mb()
    jumps: list[str] = []
    for name, fmt in formats.items():
        spec, (reader, *others) = readers(fmt)
        path = workdir / fmt.file
        for case in range(cases):
            desc = fmt.write_case(rng, case, path)
            where = f"{name} seed {seed} case {case} ({desc})"
            raws, exc = _read(reader, path, spec)
            if exc is not None:
                problem = _clean_error(exc, path, fmt)
                outcomes[f"{name} {type(exc).__name__}"] += 1
            else:
                problem = fmt.check(path, raws)
                outcomes[f"{name} ok"] += 1
                for raw in raws:
                    finite = raw.joints[~np.isnan(raw.joints)]
                    if not np.isfinite(finite).all():
                        problem = "an infinite value was read"
            for other in others if problem is None else ():
                raws2, exc2 = _read(other, path, spec)
                if (exc is None) != (exc2 is None):
                    problem = f"options {other.__dict__} {'reject' if exc2 is not None else 'accept'}" \
                              f" what the default options {'accept' if exc is None else 'reject'}: " \
                              f"{exc or exc2}"
                elif exc is not None and str(exc) != str(exc2):
                    problem = f"the default and other options give different errors: {exc} / {exc2}"
                elif exc is None and not all(_same(a.joints, b.joints) for a, b in zip(raws, raws2)):
                    problem = "the default and other options give different positions"
            if problem is not None:
                violations.append(f"{where}: {problem}")
            now = peak_mb()
            if now > last_peak + 32:  # name the cases that raise the peak
                jumps.append(f"{where}: peak {last_peak} -> {now} MB")
            last_peak = max(last_peak, now)
    return {
        "seed": seed,
        "cases": len(formats) * cases,
        "outcomes": dict(sorted(outcomes.items())),
        "violations": violations,
        "peak_rss_mb": peak_mb(),
        "peak_growth_mb": peak_mb() - baseline_mb,
        "peak_jumps": jumps,
    }


def run_child(module: str, seed: int, cases: int, workdir: Path, formats: list[str]) -> dict:
    """The sweep in a child process (a hang is a timeout; memory is the child's own)."""
    out = subprocess.run(
        [sys.executable, "-m", module, "--seed", str(seed), "--cases", str(cases),
         "--workdir", str(workdir), "--formats", ",".join(formats)],
        check=False, capture_output=True, text=True, timeout=300, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["violations"] == [], "\n".join(summary["violations"][:20])
    assert summary["peak_growth_mb"] < 256, summary
    return summary


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mutated_files_give_exact_values_or_located_errors(seed, tmp_path):
    formats = ["ntu25", "pku25", "ucla20"]
    summary = run_child("tests.test_reader_mutations", seed, 400, tmp_path, formats)
    # the sweep exercised both outcomes of every format
    for fmt in formats:
        assert summary["outcomes"].get(f"{fmt} ok", 0) > 10, summary["outcomes"]
        assert summary["outcomes"].get(f"{fmt} ParseError", 0) > 50, summary["outcomes"]


def main(default_formats: str = "ntu25,pku25,ucla20") -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cases", type=int, default=300, help="mutations per format")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--formats", default=default_formats, help="comma-separated")
    args = parser.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        summary = sweep(args.seed, args.cases, args.workdir or Path(tmp), args.formats.split(","))
    for line in summary["violations"][:50]:
        print(line, file=sys.stderr)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
