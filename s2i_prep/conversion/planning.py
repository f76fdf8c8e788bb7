"""Which input files a conversion reads, in which order, and why any listed path is skipped."""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import S2IError
from ..specs import JointSpec, load_spec
from .config import ConvertConfig
from .tasks import KIND_NOT_FILE, KIND_PATH, InputFile

if TYPE_CHECKING:
    from ..readers import Reader


def exclusion_names(spec: JointSpec) -> frozenset[str]:
    """Sample names listed in the spec's exclude lists (``s2i_prep/data/<name>.txt``)."""
    names: set[str] = set()
    for list_name in spec.exclude_lists:
        path = Path(__file__).resolve().parents[1] / "data" / f"{list_name}.txt"
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise S2IError(
                f"{spec.source}: exclude list {list_name!r}: cannot read {path}: {exc.strerror}"
            ) from None
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                names.add(line)
    return frozenset(names)


def sample_name_of_file(path: Path) -> str:
    """The sample name a file stands for before it is read (its stem; PKU: the video's name)."""
    return path.stem


def printable(path: str) -> str:
    """``path`` as valid UTF-8 text: undecodable bytes of a file name shown as ``\\xff``."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


_FILE_TYPES = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _inspect_input(path: Path) -> InputFile:
    """Stat one discovered path; anything but a readable regular file with a UTF-8 name becomes a
    planned skip with its reason. Such paths are never opened (a FIFO would block forever,
    ``/dev/zero`` never ends), and none of them can end the run."""
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return InputFile(printable(text), 0, 0, "the file name is not valid UTF-8 (shown with "
                         "\\x escapes); rename the file to convert it", KIND_PATH)
    link = ""
    if path.is_symlink():
        try:
            link = f" (symbolic link to {os.readlink(path)!r})"
        except OSError:
            link = " (symbolic link)"
    try:
        st = path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            reason = f"symbolic link loop{link}"
        elif link and exc.errno == errno.ENOENT:
            reason = f"dangling symbolic link: its target does not exist{link}"
        else:
            reason = f"cannot read the file's status: {exc.strerror}{link}"
        return InputFile(text, 0, 0, reason, KIND_NOT_FILE)
    if not stat.S_ISREG(st.st_mode):
        what = next((name for test, name in _FILE_TYPES if test(st.st_mode)), "not a file")
        return InputFile(text, 0, 0, f"not a regular file but {what}{link}; not opened",
                         KIND_NOT_FILE)
    return InputFile(text, st.st_size, st.st_mtime_ns)


@dataclass(frozen=True)
class Plan:
    files: list[InputFile]  # in sample-name order (so ``sample_id`` comes out sorted)
    excluded: int  # files dropped by the spec's exclude lists
    limited: int  # files left out by ``limit``


def plan_inputs(
    cfg: ConvertConfig, spec: JointSpec, reader: Reader, excluded: frozenset[str]
) -> Plan:
    """The input files to convert, in order, each with its size and modification time."""
    if not cfg.input.exists():
        raise S2IError(f"{cfg.input}: input folder does not exist")
    try:
        found = reader.discover(cfg.input)
    except OSError as exc:
        raise S2IError(f"{cfg.input}: cannot list the input files: {exc}") from None
    paths = sorted(found, key=lambda p: (sample_name_of_file(p), str(p)))
    kept = [p for p in paths if sample_name_of_file(p) not in excluded]
    limited = 0
    if cfg.limit is not None:
        limited = max(0, len(kept) - cfg.limit)
        kept = kept[: cfg.limit]
    return Plan([_inspect_input(p) for p in kept], len(paths) - len(kept) - limited, limited)


def no_input_message(cfg: ConvertConfig, spec: JointSpec, reader: Reader) -> str:
    """Why nothing was found: what the folder holds, and which format would read it."""
    from ..readers import get_reader
    from ..specs import list_specs

    counts: dict[str, int] = {}
    seen = 0
    for path in cfg.input.rglob("*"):
        seen += 1
        if seen > 100_000:
            break
        if path.suffix and path.is_file():
            counts[path.suffix.lower()] = counts.get(path.suffix.lower(), 0) + 1
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:4]
    found = (", ".join(f"{n} {suffix} file{'s' if n > 1 else ''}" for suffix, n in top)
             if top else "no files")
    hints = []
    for name in list_specs():
        if name == spec.format:
            continue
        try:
            other = load_spec(name)
            if get_reader(other.reader).discover(cfg.input):
                hints.append(name)
        except (S2IError, OSError):
            continue
    text = f"{cfg.input}: no {spec.format} input files found (reader {spec.reader}); found {found}"
    if hints:
        text += f"; try --format {' or --format '.join(hints)}"
    layout_help = getattr(reader, "expected_layout", None) or (type(reader).discover.__doc__ or "")
    layout_help = " ".join(layout_help.replace("``", "").split())
    return f"{text}. The {spec.format} reader expects: {layout_help}"
