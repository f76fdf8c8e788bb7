"""The seeded mutation sweep (tests/test_reader_mutations.py) over the estimated-pose readers.

openpose18 (Kinetics-skeleton JSON), toyota13 (LCR-Net JSON) and pyskl pickles (coco17 2-D and
ntu25 3-D) plug into the same harness. JSON files get the byte-level mutations plus structural
ones (values, people and frames replaced, removed, duplicated; hostile numbers and sizes); pickles
get structural mutations of their annotation dictionaries and arrays (dtypes, shapes, NaN/inf,
huge values, missing keys, lying ``total_frames``) and byte-level ones of the pickle. Accepted
values must equal a plain reading (``json`` + float32, the documented person ranking written
out in Python); errors must name the file and the place (line:column, or the JSON path such as
``data[3].skeleton[1].pose[7]``, or the annotation), with values shown as JSON.

    python -m tests.test_reader_mutations_estimated --seed 7 --cases 3000   # a longer local hunt
"""

from __future__ import annotations

import copy
import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from tests.test_reader_mutations import FORMATS, Format, main, mutate, run_child

ESTIMATED = ["openpose18", "toyota13", "pyskl_coco17", "pyskl_ntu25"]

#: Hostile JSON values a structural mutation may put anywhere.
JSON_VALUES = [
    None, True, "7", "", [], {}, 0, -1, 1.5, 10**12, 10**50, 1e300, 2**63, 1e-320, -0.0,
    [0.0] * 35, [0.0] * 37, [[0.0]], {"pose": []},
]
#: Hostile raw literals spliced into the JSON text (JSON has no spelling for some of them).
LITERALS = ["1e39", "-1e39", "1e999", "NaN", "Infinity", "-Infinity", "1" * 60, "3.4028235677973366e38",
            "3.4028235677973362e38", "1e-50", "0", "-0"]


# ---------------------------------------------------------------------------- JSON formats

def kinetics_doc(rng: np.random.Generator) -> dict:
    frames = []
    for k in range(1, int(rng.integers(1, 5)) + 1):
        people = []
        for _ in range(int(rng.integers(0, 4))):
            score = np.round(rng.uniform(0, 1, 18), 3) * (rng.uniform(size=18) > 0.2)
            people.append({"pose": np.round(rng.uniform(0, 1, 36), 3).tolist(), "score": score.tolist()})
        frames.append({"frame_index": k, "skeleton": people})
    order = rng.permutation(len(frames)) if rng.integers(4) == 0 else range(len(frames))
    return {"data": [frames[i] for i in order], "label": "dancing", "label_index": 7}


def toyota_doc(rng: np.random.Generator) -> dict:
    frames = []
    for _ in range(int(rng.integers(1, 5))):
        dets = [{"pose2d": np.round(rng.uniform(0, 640, 26), 2).tolist(),
                 "pose3d": np.round(rng.normal(size=39), 4).tolist(),
                 "cumscore": round(float(rng.uniform(0, 9)), 3)} for _ in range(int(rng.integers(0, 4)))]
        frames.append(dets)
    return {"K": 5, "njts": 13, "frames": frames}


def _containers(node, path=()):
    """Every (path, container) in a parsed JSON document."""
    yield path, node
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in items:
        if isinstance(child, (dict, list)):
            yield from _containers(child, (*path, key))


def mutate_json(rng: np.random.Generator, doc: dict) -> tuple[str, bytes]:
    """One structural mutation of a parsed document, or a hostile literal spliced into its text."""
    doc = copy.deepcopy(doc)
    spots = [(p, c) for p, c in _containers(doc) if c]
    kind = int(rng.integers(6))
    if kind == 5 or not spots:  # a literal JSON cannot write from Python, in place of a number
        text = json.dumps(doc)
        nums = list(re.finditer(r"(?<![\w.\"])-?\d[\d.eE+-]*", text))
        lit = LITERALS[int(rng.integers(len(LITERALS)))]
        if nums:
            m = nums[int(rng.integers(len(nums)))]
            return f"number at {m.start()} := {lit}", (text[:m.start()] + lit + text[m.end():]).encode()
        return "no number", text.encode()
    path, node = spots[int(rng.integers(len(spots)))]
    keys = list(node) if isinstance(node, dict) else list(range(len(node)))
    key = keys[int(rng.integers(len(keys)))]
    if kind == 0:
        value = copy.deepcopy(JSON_VALUES[int(rng.integers(len(JSON_VALUES)))])
        node[key] = value
        desc = f"{path + (key,)} := {json.dumps(value)[:30]}"
    elif kind == 1:
        del node[key]
        desc = f"{path + (key,)} removed"
    elif kind == 2 and isinstance(node, list):
        n = int(rng.choice([2, 50, 3000]))
        node.extend([copy.deepcopy(node[key])] * n)
        desc = f"{path + (key,)} repeated {n} times"
    elif kind == 3 and "frame_index" in json.dumps(node)[:200] and isinstance(node, dict) and "frame_index" in node:
        node["frame_index"] = int(rng.choice([0, -1, 10**12, 100_000, 100_001, 2**31]))
        desc = f"{path}.frame_index := {node['frame_index']}"
    else:
        node[key] = float(rng.choice([1e30, -1e30, 3.4e38, 1e-45, 0.0]))
        desc = f"{path + (key,)} := {node[key]}"
    return desc, json.dumps(doc).encode()


def _json_case(make):
    def case(fmt: Format, rng: np.random.Generator, case: int, path: Path) -> str:
        doc = make(rng)
        if case % 3 == 0:  # the byte-level mutations of the other formats
            desc, data = mutate(rng, json.dumps(doc).encode())
        else:
            desc, data = mutate_json(rng, doc)
            if case % 7 == 0:  # and a second one
                d2, data = mutate_json(rng, json.loads(data)) if _parses(data) else ("", data)
                desc += "; " + d2
        path.write_bytes(data)
        return desc
    return case


def _parses(data: bytes) -> bool:
    try:
        json.loads(data)
        return True
    except ValueError:
        return False


def _plain_doc(path: Path):
    # the reference: Python's json (an integer over its 4,300-digit limit, in a field the reader
    # need not read, becomes inf: out of range wherever it is read)
    return json.loads(path.read_bytes().decode("utf-8-sig"),
                      parse_int=lambda s: int(s) if len(s) < 4000 else float("inf"))


def _f32(values) -> np.ndarray:
    out = np.array(values, np.float64)
    assert np.isfinite(out).all() and (np.abs(out) < 3.4028235677973366e38).all()
    return out.astype(np.float32)


def check_kinetics(path: Path, raws) -> str | None:
    """Plain reading of st-gcn's rule: per frame the first 5 skeletons, ranked by summed score
    (stable), NaN where a joint's score is 0, frames up to the largest 1-based frame_index."""
    try:
        doc = _plain_doc(path)
        frames = {f["frame_index"]: f["skeleton"] for f in doc["data"]}
        assert len(frames) == len(doc["data"]) and all(type(k) is int and k >= 1 for k in frames)
        assert type(doc["label_index"]) is int
        T = max(frames)
        per_frame = {}
        for k, people in frames.items():
            rows = []
            for p in people[:5]:
                pose = _f32(p["pose"]).reshape(18, 2)
                score = _f32(p["score"])
                assert pose.shape == (18, 2) and score.shape == (18,)
                rows.append((pose, score))
            for p in people[5:]:
                assert len(p["pose"]) == 36 and len(p["score"]) == 18
                _f32(p["pose"]), _f32(p["score"])
            per_frame[k] = sorted(rows, key=lambda r: -r[1].sum(dtype=np.float64))
        slots = max([len(r) for r in per_frame.values()] + [1])
        want = np.full((slots, T, 18, 2), np.nan, np.float32)
        for k, rows in per_frame.items():
            for m, (pose, score) in enumerate(rows):
                want[m, k - 1] = np.where((score == 0)[:, None], np.nan, pose)
    except (AssertionError, KeyError, TypeError, ValueError, AttributeError) as exc:
        return f"s2i accepted what the plain reading rejects ({type(exc).__name__}: {exc})"
    got = raws[0].joints
    if got.shape != want.shape or got.tobytes() != want.tobytes():
        return f"Kinetics values differ from the plain reading ({got.shape} vs {want.shape})"
    return None


def check_toyota(path: Path, raws) -> str | None:
    """Plain reading: pose3d as reshape(3, 13).T, each frame's detections by cumscore (stable),
    file order when any detection lacks cumscore."""
    try:
        doc = _plain_doc(path)
        assert doc.get("njts", 13) == 13 and type(doc.get("njts", 13)) is int
        frames = doc["frames"]
        dets = [[(_f32(d["pose3d"]).reshape(3, 13).T, d.get("cumscore")) for d in f] for f in frames]
        assert all(len(d["pose3d"]) == 39 for f in frames for d in f)
        scores = [s for f in dets for _, s in f]
        assert all(s is None or (type(s) in (int, float) and abs(s) < 3.4028235677973366e38) for s in scores)
        if all(s is not None for s in scores):
            dets = [sorted(f, key=lambda d: -float(d[1])) for f in dets]
        slots = max([len(f) for f in dets] + [1])
        want = np.full((slots, len(frames), 13, 3), np.nan, np.float32)
        for t, f in enumerate(dets):
            for m, (pose, _) in enumerate(f):
                want[m, t] = pose
    except (AssertionError, KeyError, TypeError, ValueError, AttributeError) as exc:
        return f"s2i accepted what the plain reading rejects ({type(exc).__name__}: {exc})"
    got = raws[0].joints
    if got.shape != want.shape or got.tobytes() != want.tobytes():
        return f"Toyota values differ from the plain reading ({got.shape} vs {want.shape})"
    return None


_JSON_PATH = re.compile(r"\b(data|frames|skeleton|pose|score|label_index|label|njts|cumscore)\b")


def json_located(exc: BaseException) -> bool:
    """A JSON error names a line and column, or a frame, or the JSON path/key it is about."""
    loc = exc.location
    return loc.line is not None or loc.frame is not None or bool(_JSON_PATH.search(exc.message))


# ---------------------------------------------------------------------------- pyskl pickles

def coco_pickle_doc(rng: np.random.Generator) -> dict:
    anns = []
    for i in range(int(rng.integers(1, 4))):
        m, t = int(rng.integers(1, 3)), int(rng.integers(1, 5))
        kp = np.round(rng.uniform(0, 500, (m, t, 17, 2)), 2).astype(np.float32)
        score = (rng.uniform(0, 1, (m, t, 17)) * (rng.uniform(size=(m, t, 17)) > 0.2)).astype(np.float32)
        anns.append({"frame_dir": f"v{i}", "label": int(rng.integers(0, 60)), "img_shape": (480, 640),
                     "total_frames": t, "keypoint": kp, "keypoint_score": score})
    return {"split": {"train": ["v0"], "test": ["v1"]}, "annotations": anns}


def ntu_pickle_doc(rng: np.random.Generator) -> dict:
    anns = []
    for i in range(int(rng.integers(1, 4))):
        m, t = int(rng.integers(1, 3)), int(rng.integers(1, 5))
        kp = rng.normal(size=(m, t, 25, 3)).astype(np.float32)
        kp[:, int(rng.integers(t))] *= rng.integers(2)  # sometimes a padded frame
        action = int(rng.integers(1, 61))
        anns.append({"frame_dir": f"S001C001P001R001A{action:03d}", "label": action - 1,
                     "total_frames": t, "keypoint": kp})
    return {"split": {"xsub_train": [anns[0]["frame_dir"]], "xsub_val": []}, "annotations": anns}


ARRAY_MUTATIONS = [
    "dtype int32", "dtype float64", "dtype float16", "dtype object", "dtype complex64", "dtype bool",
    "nan", "inf", "-inf", "1e39", "-1e39", "1e30", "1e-45", "drop axis", "add axis", "V-1", "C+1",
    "M=0", "T=0", "T+1", "list", "scalar", "string", "fortran", "non-contiguous", "zeros", "big-endian",
]
KEY_VALUES = {
    "total_frames": [-1, 0, 10**9, 2**63, "3", 3.0, None, True, np.int64(2)],
    "label": [-1, 2**31, 2**40, "3", 1.5, None, True, np.int64(5), np.uint8(3)],
    "frame_dir": [None, "", 123, b"v0", "x" * 10000, "S001C001P001R001A999"],
    "img_shape": [(0, 0), (-1, 5), (10**12, 10), "abc", (480,), (480.0, 640.0), [480, 640], None],
}


def _mutate_array(rng: np.random.Generator, a: np.ndarray) -> tuple[str, object]:
    kind = ARRAY_MUTATIONS[int(rng.integers(len(ARRAY_MUTATIONS)))]
    a = a.copy()
    if kind.startswith("dtype"):
        return kind, a.astype(kind.split()[1])
    if kind in ("nan", "inf", "-inf", "1e39", "-1e39", "1e30", "1e-45") and a.size:
        a = a.astype(np.float64)
        a.flat[int(rng.integers(a.size))] = float(kind)
        return kind, a
    if kind == "drop axis":
        return kind, a[0]
    if kind == "add axis":
        return kind, a[None]
    if kind == "V-1":
        return kind, a[:, :, :-1] if a.ndim >= 3 else a
    if kind == "C+1":
        return kind, np.concatenate([a, a[..., :1]], axis=-1)
    if kind == "M=0":
        return kind, a[:0]
    if kind == "T=0":
        return kind, a[:, :0] if a.ndim >= 2 else a
    if kind == "T+1":
        return kind, np.concatenate([a, a[:, :1]], axis=1) if a.ndim >= 2 else a
    if kind == "list":
        return kind, a.tolist()
    if kind == "scalar":
        return kind, a.reshape(-1)[0] if a.size else np.float32(0)
    if kind == "string":
        return kind, "keypoint"
    if kind == "fortran":
        return kind, np.asfortranarray(a)
    if kind == "non-contiguous":
        return kind, np.repeat(a, 2, axis=-1)[..., ::2]
    if kind == "big-endian":
        return kind, a.astype(a.dtype.newbyteorder(">"))
    return kind, np.zeros_like(a)


def mutate_pickle_doc(rng: np.random.Generator, doc: dict) -> tuple[str, dict | list]:
    anns = doc["annotations"]
    i = int(rng.integers(len(anns)))
    ann = anns[i]
    kind = int(rng.integers(8))
    if kind <= 2 and isinstance(ann.get("keypoint"), np.ndarray):
        score = isinstance(ann.get("keypoint_score"), np.ndarray)
        key = "keypoint" if kind < 2 or not score else "keypoint_score"
        desc, ann[key] = _mutate_array(rng, ann[key])
        return f"annotation {i} {key}: {desc}", doc
    if kind <= 4:
        key = list(KEY_VALUES)[int(rng.integers(len(KEY_VALUES)))]
        value = KEY_VALUES[key][int(rng.integers(len(KEY_VALUES[key])))]
        ann[key] = value
        return f"annotation {i} {key} := {str(value)[:30]}", doc
    if kind == 5 and ann:
        key = list(ann)[int(rng.integers(len(ann)))]
        del ann[key]
        return f"annotation {i}: {key} removed", doc
    if kind == 6:
        choice = int(rng.integers(5))
        if choice == 0:
            return "bare list of annotations", anns
        if choice == 1:
            doc["split"] = {"train": [1, 2]}
            return "split of integers", doc
        if choice == 2:
            doc["annotations"] = [*anns, "not a dict"]
            return "an annotation that is a string", doc
        if choice == 3:
            doc["annotations"] = {"a": anns}
            return "annotations a dict", doc
        return "annotations repeated 200 times", {**doc, "annotations": anns * 200}
    return "one annotation twice", {**doc, "annotations": [*anns, copy.deepcopy(ann)]}


def _pickle_case(make):
    def case(fmt: Format, rng: np.random.Generator, case: int, path: Path) -> str:
        from s2i_prep.readers import pyskl_pickle

        pyskl_pickle._CACHE.clear()  # the reader caches per (path, size, mtime); cases are fast
        doc = make(rng)
        if case % 4 == 0:
            desc, data = mutate(rng, pickle.dumps(doc, protocol=4))
        else:
            desc, doc = mutate_pickle_doc(rng, doc)
            if case % 5 == 0:
                d2, doc = mutate_pickle_doc(rng, doc) if isinstance(doc, dict) and isinstance(
                    doc.get("annotations"), list) and all(isinstance(a, dict) for a in doc["annotations"]
                ) else ("", doc)
                desc += "; " + d2
            data = pickle.dumps(doc, protocol=4)
        path.write_bytes(data)
        return desc
    return case


def _int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def check_pickle(path: Path, raws) -> str | None:
    """Plain reading of the documented rules: every annotation's keypoint as float32 (finite,
    inside float32), NaN where its score is 0 (2-D) or where a person's frame is all zeros (3-D)."""
    try:
        doc = pickle.loads(path.read_bytes())
        anns = doc if isinstance(doc, list) else doc["annotations"]
        assert len(raws) == len(anns)
        for raw, ann in zip(raws, anns):
            kp = ann["keypoint"]
            assert isinstance(kp, np.ndarray) and kp.ndim == 4 and kp.dtype.kind in "fiu"
            assert _int(ann["label"]) and 0 <= ann["label"] < 2**31 and raw.label == ann["label"]
            assert ann.get("total_frames", kp.shape[1]) == kp.shape[1]
            wide = kp.astype(np.float64)
            assert np.isfinite(wide).all() and (np.abs(wide) < 3.4028235677973366e38).all()
            want = kp.astype(np.float32)
            if "keypoint_score" in ann:
                score = np.asarray(ann["keypoint_score"], np.float64)
                assert np.isfinite(score).all() and (np.abs(score) < 3.4028235677973366e38).all()
                want[score == 0] = np.nan
            else:
                want[(want == 0).all(axis=(2, 3))] = np.nan
            if raw.joints.shape != want.shape or raw.joints.tobytes() != want.tobytes():
                return f"annotation {ann['frame_dir']}: values differ from the plain reading"
    except (AssertionError, KeyError, TypeError, ValueError, AttributeError, EOFError,
            pickle.UnpicklingError) as exc:
        return f"s2i accepted what the plain reading rejects ({type(exc).__name__}: {exc})"
    return None


def pickle_located(exc: BaseException) -> bool:
    """A pickle has no lines: an error names the annotation, or is about the whole file."""
    return bool(re.search(r"annotation \d+|annotations|split|pickle|keypoint", exc.message))


def _json_base(make):
    return lambda rng: json.dumps(make(rng)).encode()


def _pickle_base(make):
    return lambda rng: pickle.dumps(make(rng), protocol=4)


FORMATS.update({
    "openpose18": Format("openpose18", "k/vid_abc.json", _json_base(kinetics_doc), check_kinetics,
                         case=_json_case(kinetics_doc), alternates=({"fields": "xyz"},),
                         located=json_located),
    "toyota13": Format("toyota13", "Cook.Cleandishes_p02_r00_v02_c03.json", _json_base(toyota_doc),
                       check_toyota, case=_json_case(toyota_doc), alternates=({"fields": "xyz"},),
                       located=json_located),
    "pyskl_coco17": Format("coco17", "p/coco.pkl", _pickle_base(coco_pickle_doc), check_pickle,
                           case=_pickle_case(coco_pickle_doc), reader="pyskl_pickle", options={"trust_pickle": True},
                           alternates=({"fields": "xyz"},), located=pickle_located, text_values=False),
    "pyskl_ntu25": Format("ntu25", "q/ntu.pkl", _pickle_base(ntu_pickle_doc), check_pickle,
                          case=_pickle_case(ntu_pickle_doc), reader="pyskl_pickle", options={"trust_pickle": True},
                          alternates=({"fields": "xyz"},), located=pickle_located, text_values=False),
})


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_mutated_estimated_inputs_give_exact_values_or_located_errors(seed, tmp_path):
    summary = run_child("tests.test_reader_mutations_estimated", seed, 180, tmp_path, ESTIMATED)
    for fmt in ESTIMATED:
        assert summary["outcomes"].get(f"{fmt} ok", 0) > 10, summary["outcomes"]
        assert summary["outcomes"].get(f"{fmt} ParseError", 0) > 50, summary["outcomes"]


if __name__ == "__main__":
    main(",".join(ESTIMATED))
