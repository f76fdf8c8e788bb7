"""Slow, obvious twins of the NTU reader and the CTR-GCN body selection, written from the grammar
and the algorithm's description. Tests compare the fast code to these with exact equality; the
benchmarks time the reader against ``read_plain``.
"""

from __future__ import annotations

import numpy as np


def read_plain(path: str, fields: str = "all") -> dict:
    """Plain-Python parse (readline, split, float): {'num_frames', 'bodies': {...}}.

    ``fields="all"`` converts every field (as s2i's default); ``"xyz"`` only x, y, z.

    Each body: ``joints`` (n, 25, 3) float32 through float64 (numpy's str->float32 path),
    ``frames`` (original frame indices), ``valid`` (indices among non-empty frames).
    """
    bodies: dict[str, dict] = {}
    with open(path) as fh:
        num_frames = int(fh.readline())
        valid = -1
        for f in range(num_frames):
            nb = int(fh.readline())
            if nb:
                valid += 1
            for _ in range(nb):
                info = fh.readline().split()
                body_id = info[0]
                if fields == "all":  # converted (and dropped) like every field s2i converts
                    _ = [int(t) for t in info[1:7]], float(info[7]), float(info[8]), int(info[9])
                nj = int(fh.readline())
                xyz = []
                for _ in range(nj):
                    tokens = fh.readline().split()
                    if len(tokens) != 12:
                        raise ValueError(f"{path}: joint line with {len(tokens)} fields")
                    if fields == "all":
                        values = [float(t) for t in tokens[:11]]
                        int(tokens[11])
                    else:
                        values = [float(t) for t in tokens[:3]]
                    xyz.append(values[:3])
                body = bodies.setdefault(body_id, {"joints": [], "frames": [], "valid": []})
                body["joints"].append(xyz)
                body["frames"].append(f)
                body["valid"].append(valid)
    for body in bodies.values():
        body["joints"] = np.array(body["joints"], dtype=np.float64).astype(np.float32)
    return {"num_frames": num_frames, "num_valid": valid + 1, "bodies": bodies}


def ctrgcn_select(parsed: dict) -> np.ndarray:
    """CTR-GCN's denoised (T, 75) or (T, 150) float32 array for one parsed file.

    Follows get_raw_skes_data + get_raw_denoised_data: intervals start at the first valid frame and
    run contiguously; length <= 11 -> noise; spread x-range <= 0.8 y-range with ratio 0.69754;
    motion = sum of var; greedy assignment; rows summing to 0 removed for multi-body files.
    The all-short case (an IndexError there) keeps the longest body, as s2i does.
    """
    num_frames = parsed["num_valid"]
    data = {}
    for bid, body in parsed["bodies"].items():
        joints = body["joints"].reshape(-1, 3)
        start = body["valid"][0]
        data[bid] = {"joints": joints, "interval": list(range(start, start + len(body["valid"])))}
    if len(data) == 1:
        body = next(iter(data.values()))
        out = np.zeros((num_frames, 75), np.float32)
        out[body["interval"][0]:body["interval"][-1] + 1] = body["joints"].reshape(-1, 75)
        return out
    for body in data.values():
        body["motion"] = np.sum(np.var(body["joints"], axis=0))
    all_bodies = dict(data)
    for bid in list(data):
        if len(data[bid]["interval"]) <= 11:
            del data[bid]
    if not data:
        longest = max(all_bodies, key=lambda k: len(all_bodies[k]["interval"]))
        data = {longest: all_bodies[longest]}
    if len(data) > 1:
        for bid in list(data):
            if len(data) == 1:
                break
            pts = data[bid]["joints"].reshape(-1, 25, 3)
            good = []
            for i in range(pts.shape[0]):
                x, y = pts[i, :, 0], pts[i, :, 1]
                if float(x.max() - x.min()) <= 0.8 * float(y.max() - y.min()):
                    good.append(i)
            n = len(data[bid]["interval"])
            noisy = n - len(good)
            if noisy == 0:
                continue
            if noisy / float(n) >= 0.69754:
                del data[bid]
            else:
                m = np.sum(np.var(pts[good].reshape(-1, 3), axis=0))
                data[bid]["motion"] = min(data[bid]["motion"], m)
    items = sorted(data.items(), key=lambda kv: kv[1]["motion"], reverse=True)
    if len(items) == 1:
        body = items[0][1]
        out = np.zeros((num_frames, 75), np.float32)
        out[body["interval"][0]:body["interval"][-1] + 1] = body["joints"].reshape(-1, 75)
    else:
        out = np.zeros((num_frames, 150), np.float32)
        a1 = items[0][1]
        s1, e1 = a1["interval"][0], a1["interval"][-1]
        out[s1:e1 + 1, :75] = a1["joints"].reshape(-1, 75)
        s2, e2 = 0, 0
        for _, body in items[1:]:
            s, e = body["interval"][0], body["interval"][-1]
            if min(e1, e) - max(s1, s) <= 0:
                out[s:e + 1, :75] = body["joints"].reshape(-1, 75)
                s1, e1 = min(s, s1), max(e, e1)
            elif min(e2, e) - max(s2, s) <= 0:
                out[s:e + 1, 75:] = body["joints"].reshape(-1, 75)
                s2, e2 = min(s, s2), max(e, e2)
    return out[out.sum(axis=1) != 0]
