"""Parent side: the ordered event stream -> whole shards, each committed with its resume state."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from ..errors import S2IError
from ..specs import JointSpec
from .fingerprint import InputDigest
from .tasks import KIND_DUPLICATE, Excluded, Sample, Skip

#: StreamStats accumulators carried in the resume state (float64 round-trips exactly via JSON).
_STATS_FIELDS = ("count", "sum", "sumsq", "min", "max")


class Assembler:
    """Turns the ordered event stream into whole shards plus the resume state of each.

    Shards are written by one background thread while the next shard fills (two preallocated
    shard buffers), so workers keep running during a write instead of stalling once the task
    window is full. The resume state holds only O(skips) data; the per-sample columns of
    committed shards come back from the writer itself (``committed_columns``).
    """

    def __init__(
        self,
        writer: Any,
        spec: JointSpec,
        stats: Any,
        on_error: str,
        sample_shape: tuple[int, ...],
        dtype: str,
        digest: InputDigest,
    ) -> None:
        self.writer = writer
        self.digest = digest
        # Samples are copied into a preallocated shard buffer as they arrive; the second buffer
        # is allocated when the first goes to the writer thread.
        self.batch = np.empty((writer.shard_size, *sample_shape), dtype=dtype)
        self._spare: np.ndarray | None = None
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="s2i-shard-writer")
        self._writing: Future[None] | None = None
        self.on_error = on_error
        self.stats = stats
        self.keys = ("sample_id", "label", *spec.fields)
        self.pending: list[tuple[str, dict[str, int]]] = []  # name and columns of buffered samples
        self.columns: dict[str, list[Any]] = {k: [] for k in self.keys}
        self.skipped: list[tuple[str, str, str]] = []
        self.excluded = 0
        self.last_id: str | None = None
        state = writer.resume_state
        if state:
            for name in _STATS_FIELDS:
                getattr(stats, name)[...] = np.asarray(state["stats"][name])
            self.skipped = [(p, r, k) for p, r, k in state["skipped"]]
            self.excluded = int(state["excluded"])
            self.last_id = state["last_id"]
            committed = writer.committed_columns()
            self.columns = {k: np.asarray(committed[k]).tolist() for k in self.keys}

    @property
    def num_samples(self) -> int:
        return len(self.columns["label"])

    def add(self, event: Sample | Skip | Excluded, cursor: tuple[int, int],
            block: np.ndarray | None = None) -> None:
        """Take one event; a packed sample's data is row ``event.s2i`` of its task's ``block``."""
        if isinstance(event, Excluded):
            self.excluded += 1
            return
        if isinstance(event, Sample) and self.last_id is not None and event.name <= self.last_id:
            event = Skip(
                event.path,
                f"sample {event.name} repeats or comes out of order after "
                f"{self.last_id}; sample names must be unique",
                KIND_DUPLICATE,
            )
        if isinstance(event, Skip):
            if self.on_error == "fail":
                raise S2IError(f"{event.path}: {event.reason} (stopping: --on-error fail)")
            self.skipped.append((event.path, event.reason, event.kind))
            return
        self.batch[len(self.pending)] = (
            event.s2i if block is None else block[event.s2i]  # type: ignore[index]
        )
        self.stats.merge(event.stats)
        self.pending.append((event.name, event.columns))
        self.last_id = event.name
        if len(self.pending) == self.writer.shard_size:
            self.flush(cursor)

    def flush(self, cursor: tuple[int, int]) -> None:
        """Commit the buffered samples as one shard whose state resumes at ``cursor``."""
        if not self.pending:
            return
        batch = self.batch[: len(self.pending)]
        cols: dict[str, np.ndarray] = {"sample_id": np.array([name for name, _ in self.pending])}
        for key in self.pending[0][1]:
            cols[key] = np.array([c[key] for _, c in self.pending], dtype=np.int64)
        for key in self.keys:
            self.columns[key].extend(cols[key].tolist())
        self.pending = []
        inputs = cursor[0] + (cursor[1] > 0)  # files read in whole or in part
        state = {
            "file": cursor[0],
            "event": cursor[1],
            "inputs": inputs,
            "inputs_sha256": self.digest.of_first(inputs),
            "last_id": self.last_id,
            "stats": {name: getattr(self.stats, name).tolist() for name in _STATS_FIELDS},
            "skipped": [list(s) for s in self.skipped],
            "excluded": self.excluded,
        }
        self.wait()  # the previous write must end before its buffer is refilled
        self._writing = self._io.submit(self.writer.write_shard, batch, cols, state)
        if self._spare is None:
            self._spare = np.empty_like(self.batch)
        self.batch, self._spare = self._spare, self.batch

    def wait(self) -> None:
        """Block until the shard being written is committed; re-raises the writer's error."""
        if self._writing is not None:
            writing, self._writing = self._writing, None
            writing.result()

    def close(self) -> None:
        """Let an in-flight shard commit (so a resume keeps it), then stop the writer thread."""
        try:
            self.wait()
        finally:
            self._io.shutdown(wait=True)
