"""The run folder: refuses to mix runs, holds ``config.json``, ``metrics.jsonl``, ``checkpoint.pt``,
``test_scores.npz`` and ``result.json``; only rank 0 writes."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from s2i_train.errors import S2ITrainError

__all__ = ["RunDir"]

CHECKPOINT = "checkpoint.pt"
CONFIG = "config.json"
METRICS = "metrics.jsonl"
SCORES = "test_scores.npz"
RESULT = "result.json"
_RUN_FILES = (CHECKPOINT, CONFIG, METRICS, SCORES, RESULT)


class RunDir:
    """``out`` prepared for a run of ``kind``.

    An existing non-empty folder is refused unless ``resume`` (it must hold a checkpoint of the same
    kind) or ``overwrite`` (only a folder that looks like an s2i-train run is emptied; anything else
    is refused, so a mistyped path never deletes a user's files).
    """

    def __init__(
        self, out: str | Path, kind: str, *, resume: bool, overwrite: bool, write: bool = True
    ) -> None:
        self.path = Path(out)
        self.kind = kind
        self.write = write
        if resume and overwrite:
            raise S2ITrainError("--resume and --overwrite contradict each other; choose one")
        if self.path.exists() and not self.path.is_dir():
            raise S2ITrainError(f"{self.path}: exists and is not a folder")
        entries = sorted(p.name for p in self.path.iterdir()) if self.path.is_dir() else []
        self.resuming = False
        if resume:
            if not (self.path / CHECKPOINT).is_file():
                raise S2ITrainError(
                    f"{self.path}: nothing to resume (no {CHECKPOINT}); drop --resume to start"
                )
            self.resuming = True
        elif entries:
            ours = [e for e in entries if e in _RUN_FILES or e.endswith(".tmp")]
            if not overwrite:
                raise S2ITrainError(
                    f"{self.path}: output folder already holds files ({', '.join(entries[:5])}); "
                    "pass --resume to continue that run or --overwrite to replace it"
                )
            if len(ours) != len(entries):
                other = [e for e in entries if e not in ours]
                raise S2ITrainError(
                    f"{self.path}: --overwrite refused, the folder holds files that are not "
                    "an s2i-train "
                    f"run's ({', '.join(other[:5])})"
                )
            if write:
                for e in entries:
                    (self.path / e).unlink()
        if write:
            self.path.mkdir(parents=True, exist_ok=True)

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT

    @property
    def scores(self) -> Path:
        return self.path / SCORES

    def save_config(self, config: dict[str, Any]) -> None:
        if self.write:
            _atomic_text(self.path / CONFIG, json.dumps(config, indent=2, sort_keys=True) + "\n")

    def log(self, **record: Any) -> None:
        """Append one JSON line to ``metrics.jsonl`` (with a UTC timestamp)."""
        if self.write:
            record = {
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "kind": self.kind,
                **record,
            }
            with open(self.path / METRICS, "a") as f:
                f.write(json.dumps(record) + "\n")

    def save_result(self, result: dict[str, Any]) -> None:
        if self.write:
            _atomic_text(self.path / RESULT, json.dumps(result, indent=2) + "\n")

    def drop_metrics_after(self, epoch: int) -> None:
        """On resume, forget metric lines of epochs after the checkpoint (a crash may leave
        some)."""
        if not self.write or not (self.path / METRICS).is_file():
            return
        kept = [
            line
            for line in (self.path / METRICS).read_text().splitlines()
            if line.strip() and json.loads(line).get("epoch", -1) <= epoch
        ]
        _atomic_text(self.path / METRICS, "".join(line + "\n" for line in kept))


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
