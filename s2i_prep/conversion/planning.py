"""Which input files a conversion reads, in which order, and why any listed path is skipped."""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from ..errors import S2IError
from ..specs import JointSpec, load_spec
from .config import ConvertConfig, describe_inputs
from ..readers import archive
from ..readers.archive import file_stem
from .tasks import KIND_DUPLICATE, KIND_MEMBER, KIND_NOT_FILE, KIND_PATH, InputFile
from ..urls import Url

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


def sample_name_of_file(path: Path | str) -> str:
    """The sample name a file stands for before it is read (its stem; PKU: the video's name)."""
    return file_stem(path)


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
    note: str | None = None  # what the user must know about the input (a damaged archive)


#: One discovered input file before it is inspected: its sample name, its planned path, and the
#: path to stat (a folder's file) or the finished entry (an archive member, known from the
#: archive's index).
_Found = tuple[str, str, "Path | InputFile"]


def plan_inputs(
    cfg: ConvertConfig, spec: JointSpec, reader: Reader, excluded: frozenset[str]
) -> Plan:
    """The input files to convert, in order, each with its size and modification time.

    Several inputs plan as one: the files of all of them sorted by sample name (NTU names are
    globally ordered, so two archives give the order of their extracted union), ties broken by
    the input (inputs are sorted, see :class:`ConvertConfig`) and then the path; neither the
    order the inputs are listed in nor where one archive ends changes the plan. A sample name
    found in several inputs is converted from the first and reported as a ``duplicate`` from
    each other one, naming both places.
    """
    _refuse_nested(cfg.input)
    planned: list[tuple[str, int, str, Path | InputFile]] = []
    notes = []
    # a compressed tar's members spill next to a local output (its disk is meant for bulk data)
    spill = cfg.output.absolute().parent if isinstance(cfg.output, Path) else None
    for number, source in enumerate(cfg.input):
        found, note = _input_files(source, reader, spill)
        planned.extend((name, number, key, p) for name, key, p in found)
        if note:
            notes.append(note)
    planned.sort(key=lambda entry: entry[:3])
    kept = [entry for entry in planned if entry[0] not in excluded]
    limited = 0
    if cfg.limit is not None:
        limited = max(0, len(kept) - cfg.limit)
        kept = kept[: cfg.limit]
    files = [p if isinstance(p, InputFile) else _inspect_input(p) for *_, p in kept]
    if len(cfg.input) > 1:
        files = _duplicates_across_inputs(files, kept)
    return Plan(files, len(planned) - len(kept) - limited, limited, "\n".join(notes) or None)


def _refuse_nested(inputs: tuple[Path | Url, ...]) -> None:
    """A folder input inside another folder input would list its files twice."""
    folders = [(p, p.resolve()) for p in inputs if isinstance(p, Path) and p.is_dir()]
    for inner, inner_real in folders:
        for outer, outer_real in folders:
            if inner_real != outer_real and inner_real.is_relative_to(outer_real):
                raise S2IError(f"input {inner} lies inside input {outer}, which already holds "
                               "its files; list the outer folder only")
            if inner is not outer and inner_real == outer_real:
                raise S2IError(f"inputs {outer} and {inner} are the same folder; list it once")


def _input_files(source: Path | Url, reader: Reader,
                 spill_dir: Path | None) -> tuple[list[_Found], str | None]:
    """The files of one input (a folder, an archive or one file the reader takes whole, or the
    objects under a URL) and a note on damage. Each kind of input is one branch here.
    ``spill_dir``: where a compressed tar's members are decompressed to (None: a temporary
    folder)."""
    if isinstance(source, Url):
        if not archive.is_archive(source):
            return _url_inputs(source, reader), None
        if not source.name.lower().endswith(".zip"):
            raise S2IError(f"{source}: tar archives are read from local files only; download "
                           "it, or give its .zip or its extracted objects")
        return _archive_inputs(source, reader, spill_dir)  # read in place by range requests
    if archive.is_archive(source):
        return _archive_inputs(source, reader, spill_dir)
    if problem := archive.archive_problem(source):
        raise S2IError(problem)
    if not source.exists():
        raise S2IError(f"{source}: input does not exist")
    try:
        found = reader.discover(source)
    except OSError as exc:
        raise S2IError(f"{source}: cannot list the input files: {exc}") from None
    return [(sample_name_of_file(p), str(p), p) for p in found], None


def _archive_inputs(path: Path | Url, reader: Reader,
                    spill_dir: Path | None) -> tuple[list[_Found], str | None]:
    """The members of an archive input that ``reader`` reads, as planned inputs, and a note on
    damage; members are read in place by the workers (a damaged archive: what its local headers
    still give)."""
    suffixes = getattr(reader, "archive_suffixes", None)
    if not suffixes:
        raise S2IError(
            f"{path}: the {reader.name} reader reads folders only (its files refer to each "
            "other); extract the archive and convert the folder"
        )
    try:
        # the reader lives as long as the conversion: so does a compressed tar's spill file
        members, damage = archive.list_members(path, tuple(suffixes), spill_dir, owner=reader)
    except OSError as exc:
        raise S2IError(f"{path}: cannot read the archive: {exc.strerror or exc}") from None
    out: list[_Found] = []
    for m in members:
        if not m.name.lower().endswith(suffixes):
            continue
        ref = archive.member_ref(path, m.name)
        kind = None if m.problem is None else KIND_MEMBER
        # the member's own stem: cheaper than resolving the reference again (114,480 for NTU-120)
        name = file_stem(m.name)
        out.append((name, ref, InputFile(ref, m.nbytes, m.date_ns, m.problem, kind)))
    return out, damage


def _object_version(info: dict) -> int:
    """What the fingerprint compares for one listed object: its ETag (content identity on S3 and
    most stores; hashed to an int) when the store gives one, else its modification time in ns."""
    import datetime
    import hashlib

    etag = info.get("ETag") or info.get("etag") or info.get("md5Hash")
    if etag:
        return int.from_bytes(hashlib.sha256(str(etag).encode()).digest()[:7], "little")
    for key in ("LastModified", "mtime", "last_modified", "updated", "created"):
        value = info.get(key)
        if isinstance(value, datetime.datetime):
            return int(value.timestamp() * 1e9)
        if isinstance(value, (int, float)):
            return int(value * 1e9)
        if isinstance(value, str):
            try:
                return int(datetime.datetime.fromisoformat(value).timestamp() * 1e9)
            except ValueError:
                continue
    return 0


def _url_inputs(root: Url, reader: Reader) -> list[_Found]:
    """The objects under ``root`` that ``reader`` reads, listed once (sizes and versions for the
    fingerprint); workers read each one through ``read_bytes``. Only readers whose files stand
    alone (those that read archive members) read objects: the others need their neighbours."""
    suffixes = getattr(reader, "archive_suffixes", None)
    if not suffixes:
        raise S2IError(
            f"{root}: the {reader.name} reader reads local folders only (its files refer to "
            "each other); copy the input to a local or shared disk"
        )
    fs = root.fs
    try:
        fs.invalidate_cache(root.path)  # a listing cached earlier in this process may be stale
        if fs.isfile(root.path):
            found = {root.path: fs.info(root.path)}
        else:
            found = fs.find(root.path, detail=True)
            if not found and not fs.exists(root.path):
                raise FileNotFoundError(root.path)
    except FileNotFoundError:
        raise S2IError(f"{root}: no such input (no object or prefix of that name)") from None
    except PermissionError as exc:
        raise S2IError(f"{root}: cannot list the input objects: permission denied ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - any backend's network or service error
        raise S2IError(f"{root}: cannot list the input objects: {type(exc).__name__}: {exc}") \
            from None
    out: list[_Found] = []
    for key, info in found.items():
        if info.get("type", "file") != "file" or not key.lower().endswith(suffixes):
            continue
        url = str(Url(f"{root.protocol}://{key}"))
        out.append((file_stem(key), url,
                    InputFile(url, int(info.get("size") or 0), _object_version(info))))
    return out


def _duplicates_across_inputs(
    files: list[InputFile], planned: list[tuple[str, int, str, Path | InputFile]]
) -> list[InputFile]:
    """Of the files sharing a sample name across inputs, the first readable one is converted and
    those of the other inputs become ``duplicate`` skips naming it (a repeat inside one input is
    the assembler's to report; a file already known to be unreadable keeps its own reason)."""
    out = list(files)
    start = 0
    while start < len(planned):
        end = start + 1
        while end < len(planned) and planned[end][0] == planned[start][0]:
            end += 1
        chosen = next((i for i in range(start, end) if files[i].problem is None), None)
        for i in range(start, end) if chosen is not None else ():
            if planned[i][1] != planned[chosen][1] and files[i].problem is None:
                out[i] = files[i]._replace(
                    problem=f"sample {planned[i][0]} is also in {printable(planned[chosen][2])}, "
                            "which is converted instead; sample names must be unique across "
                            "the inputs",
                    kind=KIND_DUPLICATE,
                )
        start = end
    return out


def no_input_message(cfg: ConvertConfig, spec: JointSpec, reader: Reader) -> str:
    """Why nothing was found: what the inputs hold, and which format would read them."""
    from ..readers import get_reader
    from ..specs import list_specs

    if all(isinstance(p, Url) for p in cfg.input):
        return (f"{describe_inputs(cfg.input)}: no {spec.format} input objects found (the "
                f"{reader.name} reader reads objects ending in "
                f"{', '.join(getattr(reader, 'archive_suffixes', ()))})")
    counts: dict[str, int] = {}
    seen = 0
    folders = [p for p in cfg.input if isinstance(p, Path) and not archive.is_archive(p)]
    for source in cfg.input:
        if archive.is_archive(source):
            for m in archive.list_members(source)[0]:
                suffix = PurePosixPath(m.name).suffix.lower()
                if suffix:
                    counts[suffix] = counts.get(suffix, 0) + 1
    for path in (p for folder in folders for p in folder.rglob("*")):
        seen += 1
        if seen > 100_000:
            break
        if path.suffix and path.is_file():
            counts[path.suffix.lower()] = counts.get(path.suffix.lower(), 0) + 1
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:4]
    found = (", ".join(f"{n} {suffix} file{'s' if n > 1 else ''}" for suffix, n in top)
             if top else "no files")
    hints: list[str] = []
    for name in list_specs() if folders == list(cfg.input) else []:
        if name == spec.format:
            continue
        try:
            other = load_spec(name)
            if any(get_reader(other.reader).discover(folder) for folder in folders):
                hints.append(name)
        except (S2IError, OSError):
            continue
    text = (f"{describe_inputs(cfg.input)}: no {spec.format} input files found "
            f"(reader {spec.reader}); found {found}")
    if hints:
        text += f"; try --format {' or --format '.join(hints)}"
    layout_help = getattr(reader, "expected_layout", None) or (type(reader).discover.__doc__ or "")
    layout_help = " ".join(layout_help.replace("``", "").split())
    return f"{text}. The {spec.format} reader expects: {layout_help}"
