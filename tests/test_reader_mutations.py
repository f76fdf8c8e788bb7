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


# ---------------------------------------------------------------------------- the sweep

def _clean_error(exc: BaseException, path: Path) -> str | None:
    """``None`` if ``exc`` is a clean located error, else what is wrong with it."""
    from s2i_prep.errors import ParseError, ReadError, TruncatedError

    if not isinstance(exc, ReadError):
        return "raised " + "".join(traceback.format_exception_only(type(exc), exc)).strip()[:300]
    label = path.parent.parent / "label" / path.name  # PKU: the skeleton's label file
    if not str(exc).startswith((str(path), str(label))) or not exc.message:
        return f"error does not start with the path: {exc}"
    loc = exc.location
    if isinstance(exc, (ParseError, TruncatedError)) and loc.line is None and loc.frame is None:
        return f"grammar error without a line or frame: {exc}"
    return None


def _read(reader, path: Path, spec):
    try:
        return reader.read(path, spec), None
    except Exception as exc:  # noqa: BLE001 - judged by the caller
        return None, exc


def sweep(seed: int, cases: int, workdir: Path) -> dict:
    """Run ``cases`` mutations per format; returns a summary with every violation found."""
    from s2i_prep.kernels import parse_ntu, parse_text
    from s2i_prep.readers import get_reader
    from s2i_prep.specs import load_spec

    parse_ntu.warm()
    parse_text.warm()
    rng = np.random.default_rng(seed)
    violations: list[str] = []
    outcomes: Counter[str] = Counter()
    formats = {
        "ntu25": (ntu_base, "S001C001P001R001A001.skeleton", check_ntu_values),
        "pku25": (pku_base, "skeleton/0007-L.txt", check_pku_values),
        "ucla20": (ucla_base, "a08_s03_e01_v02.json", check_ucla_values),
    }
    (workdir / "label").mkdir(parents=True, exist_ok=True)
    (workdir / "skeleton").mkdir(exist_ok=True)
    for fmt, (base, name, check) in formats.items():
        spec = load_spec(fmt)
        reader = get_reader(spec.reader)
        xyz = get_reader(spec.reader, fields="xyz")
        path = workdir / name
        for case in range(cases):
            label = b"1,0,3,1\n"
            desc, data = mutate(rng, base(rng))
            if fmt == "pku25" and case % 5 == 0:  # mutate the label file instead
                ldesc, label = mutate(rng, label)
                desc, data = f"label file: {ldesc}", base(rng)
            path.write_bytes(data)
            (workdir / "label" / "0007-L.txt").write_bytes(label)
            where = f"{fmt} seed {seed} case {case} ({desc})"
            raws, exc = _read(reader, path, spec)
            if exc is not None:
                problem = _clean_error(exc, path)
                outcomes[f"{fmt} {type(exc).__name__}"] += 1
            else:
                problem = check(path, raws)
                outcomes[f"{fmt} ok"] += 1
                for raw in raws:
                    finite = raw.joints[~np.isnan(raw.joints)]
                    if not np.isfinite(finite).all():
                        problem = "an infinite value was read"
            if problem is None and fmt == "ntu25":
                raws2, exc2 = _read(xyz, path, spec)
                if (exc is None) != (exc2 is None):
                    problem = f"fields=all {'accepts' if exc is None else 'rejects'} but fields=xyz " \
                              f"{'rejects' if exc2 is not None else 'accepts'}: {exc or exc2}"
                elif exc is not None and str(exc) != str(exc2):
                    problem = f"fields=all and xyz give different errors: {exc} / {exc2}"
                elif exc is None and not _same(raws[0].joints, raws2[0].joints):
                    problem = "fields=all and xyz give different positions"
            if problem is not None:
                violations.append(f"{where}: {problem}")
    import resource

    return {
        "seed": seed,
        "cases": 3 * cases,
        "outcomes": dict(sorted(outcomes.items())),
        "violations": violations,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mutated_files_give_exact_values_or_located_errors(seed, tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "tests.test_reader_mutations", "--seed", str(seed), "--cases", "400",
         "--workdir", str(tmp_path)],
        check=False, capture_output=True, text=True, timeout=300, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["violations"] == [], "\n".join(summary["violations"][:20])
    assert summary["peak_rss_mb"] < 1024, summary
    # the sweep exercised both outcomes of every format
    for fmt in ("ntu25", "pku25", "ucla20"):
        assert summary["outcomes"].get(f"{fmt} ok", 0) > 10, summary["outcomes"]
        assert summary["outcomes"].get(f"{fmt} ParseError", 0) > 50, summary["outcomes"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cases", type=int, default=300, help="mutations per format")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        summary = sweep(args.seed, args.cases, args.workdir or Path(tmp))
    for line in summary["violations"][:50]:
        print(line, file=sys.stderr)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
