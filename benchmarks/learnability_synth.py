"""How learnable is the synthetic NTU data? Trivial baselines against a small model (numpy only).

Generates NTU files in memory, reads them back through the project's reader and body selection
(noise bodies, dropouts and empty frames included), and reports cross-view and cross-subject
accuracy of:

* nearest centroid and a linear (ridge, one-vs-rest) classifier on raw coordinates, centred on
  SpineMid of the first frame and resampled to 32 frames (the trivial baselines);
* a kNN and a one-hidden-layer MLP on view-normalised pose + motion features (pelvis-centred,
  rotated so the shoulders lie along x, both actors, frame differences).

Splits over all 20 classes: cross-view trains on cameras 2-3 and tests on camera 1 (the NTU-60
rule); cross-subject uses the NTU-120 training performers. The last line is JSON.

    python benchmarks/learnability_synth.py --samples 3000
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from s2i_prep.bodies import select_bodies
from s2i_prep.readers.ntu import parse_ntu_bytes
from s2i_prep.specs import load_spec
from s2i_prep.synthetic import make_job

FRAMES = 32
SPINE_BASE, SPINE_MID, SHOULDER_L, SHOULDER_R = 0, 1, 4, 8


def resample(x: np.ndarray, n: int = FRAMES) -> np.ndarray:
    """``(T, ...)`` -> ``(n, ...)`` by linear interpolation over time."""
    t = np.linspace(0, len(x) - 1, n)
    lo = np.floor(t).astype(int)
    hi = np.minimum(lo + 1, len(x) - 1)
    w = (t - lo).reshape((-1,) + (1,) * (x.ndim - 1))
    return x[lo] * (1 - w) + x[hi] * w


def fill(j: np.ndarray) -> np.ndarray:
    """NaN (absent actor) -> the actor's last seen pose, or zeros."""
    j = j.copy()
    for t in range(1, len(j)):
        gone = np.isnan(j[t])
        j[t][gone] = j[t - 1][gone]
    return np.nan_to_num(j)


def raw_features(sk) -> np.ndarray:
    """Trivial: actor 1, centred on SpineMid of frame 0, resampled, flattened."""
    j = fill(sk.joints[0].astype(np.float64))
    return resample(j - j[0, SPINE_MID]).ravel()


def motion_features(sk) -> np.ndarray:
    """View-normalised pose and motion of both actors (second actor zero when absent)."""
    actors = [fill(sk.joints[m].astype(np.float64)) for m in range(sk.joints.shape[0])]
    a = actors[0]
    origin = a[0, SPINE_BASE]
    across = a[:, SHOULDER_R] - a[:, SHOULDER_L]
    yaw = np.arctan2(across[:, 2].mean(), across[:, 0].mean())
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    feats = []
    for m in range(2):
        x = (actors[m] - origin) @ rot.T if m < len(actors) else np.zeros_like(a)
        x = resample(x)
        feats += [x.ravel(), 4.0 * np.diff(x, axis=0).ravel()]
    return np.concatenate(feats)


def standardise(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu, sd = train.mean(0), train.std(0) + 1e-6
    return (train - mu) / sd, (test - mu) / sd


def nearest_centroid(xtr, ytr, xte) -> np.ndarray:
    classes = np.unique(ytr)
    cent = np.stack([xtr[ytr == c].mean(0) for c in classes])
    d = ((xte[:, None, :] - cent[None]) ** 2).sum(-1)
    return classes[d.argmin(1)]


def ridge(xtr, ytr, xte, lam: float = 10.0) -> np.ndarray:
    classes = np.unique(ytr)
    y = (ytr[:, None] == classes[None]).astype(float) * 2 - 1
    xb = np.hstack([xtr, np.ones((len(xtr), 1))])
    w = np.linalg.solve(xb.T @ xb + lam * np.eye(xb.shape[1]), xb.T @ y)
    return classes[(np.hstack([xte, np.ones((len(xte), 1))]) @ w).argmax(1)]


def knn(xtr, ytr, xte, k: int = 5) -> np.ndarray:
    d = (xte**2).sum(1)[:, None] - 2 * xte @ xtr.T + (xtr**2).sum(1)[None]
    idx = np.argsort(d, 1)[:, :k]
    votes = ytr[idx]
    return np.array([np.bincount(v).argmax() for v in votes])


def pca(xtr, xte, dims: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Project both sets on the top principal axes of the training set, then whiten."""
    _, _, vt = np.linalg.svd(xtr, full_matrices=False)
    ptr, pte = xtr @ vt[:dims].T, xte @ vt[:dims].T
    return standardise(ptr, pte)


def mlp(xtr, ytr, xte, hidden: int = 256, epochs: int = 60, seed: int = 0) -> np.ndarray:
    """PCA to 256 dims, one hidden layer, ReLU, softmax, Adam, input dropout: numpy only."""
    rng = np.random.default_rng(seed)
    xtr, xte = pca(xtr, xte)
    classes = np.unique(ytr)
    y = np.searchsorted(classes, ytr)
    d, k = xtr.shape[1], len(classes)
    params = [
        rng.normal(0, np.sqrt(2 / d), (d, hidden)),
        np.zeros(hidden),
        rng.normal(0, np.sqrt(1 / hidden), (hidden, k)),
        np.zeros(k),
    ]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    step, lr, wd = 0, 1e-3, 1e-4
    for _ in range(epochs):
        order = rng.permutation(len(xtr))
        for b in range(0, len(order), 64):
            i = order[b : b + 64]
            x = xtr[i] * (rng.random(xtr[i].shape) > 0.2) / 0.8
            h = np.maximum(x @ params[0] + params[1], 0)
            z = h @ params[2] + params[3]
            p = np.exp(z - z.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            p[np.arange(len(i)), y[i]] -= 1
            p /= len(i)
            gh = (p @ params[2].T) * (h > 0)
            grads = [x.T @ gh + wd * params[0], gh.sum(0), h.T @ p + wd * params[2], p.sum(0)]
            step += 1
            for n, g in enumerate(grads):
                m[n] = 0.9 * m[n] + 0.1 * g
                v[n] = 0.999 * v[n] + 0.001 * g * g
                params[n] -= (
                    lr * (m[n] / (1 - 0.9**step)) / (np.sqrt(v[n] / (1 - 0.999**step)) + 1e-8)
                )
    h = np.maximum(xte @ params[0] + params[1], 0)
    return classes[(h @ params[2] + params[3]).argmax(1)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t0 = time.perf_counter()
    spec = load_spec("ntu25")
    job = make_job("ntu25", args.samples, seed=args.seed)
    raw_x, mot_x, labels, meta = [], [], [], []
    for i in range(args.samples):
        r = job.render(i)
        raw = parse_ntu_bytes(r.data, r.info.path, spec)
        if raw.joints.shape[0] == 0:
            continue  # an all-empty file: the pipeline skips it too
        sk = select_bodies(raw, spec)
        raw_x.append(raw_features(sk))
        mot_x.append(motion_features(sk))
        labels.append(r.info.label)
        meta.append(spec.parse_name(r.info.name))
    y = np.array(labels)
    cam = np.array([m["camera"] for m in meta])
    subj = np.array([m["subject"] for m in meta])
    xsub_train = set(
        spec.splits[[s.name for s in spec.splits].index("ntu120-xsub")].train["subject"]
    )
    splits = {"xview": cam != 1, "xsub": np.isin(subj, list(xsub_train))}
    feats = {"raw": np.array(raw_x), "motion": np.array(mot_x)}
    models = {
        "nearest_centroid(raw)": ("raw", nearest_centroid),
        "ridge(raw)": ("raw", ridge),
        "knn5(motion)": ("motion", knn),
        "mlp(motion)": ("motion", mlp),
    }
    results: dict[str, dict[str, float]] = {}
    for split, train in splits.items():
        for name, (kind, fit) in models.items():
            xtr, xte = standardise(feats[kind][train], feats[kind][~train])
            acc = float((fit(xtr, y[train], xte) == y[~train]).mean())
            results.setdefault(name, {})[split] = round(acc, 4)
            print(
                f"{split:6s} {name:24s} {100 * acc:5.1f}%  "
                f"(train {train.sum()}, test {(~train).sum()})"
            )
    print(
        json.dumps(
            {
                "samples": len(y),
                "classes": int(len(np.unique(y))),
                "seed": args.seed,
                "seconds": round(time.perf_counter() - t0, 1),
                "accuracy": results,
            }
        )
    )


if __name__ == "__main__":
    main()
