"""``s2i-prep dump``: what the reader (and body selection) made of one raw file, as ``.npz``."""

from __future__ import annotations

from pathlib import Path

import click

from .options import format_options, format_or_spec


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@format_options
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Output .npz file.")
@click.option("--stage", type=click.Choice(["raw", "selected"]), default="raw", show_default=True,
              help="raw: every body and frame as in the file; selected: after body selection.")
@click.option("--trust-pickle", is_flag=True,
              help="FILE is a pyskl/mmaction2 pickle you trust (unpickling can run code).")
def dump(file: Path, fmt: str | None, spec: Path | None, output: Path, stage: str,
         trust_pickle: bool) -> None:
    """Write what s2i reads from FILE to an .npz (one sample, or one group of keys per clip).

    \b
    raw:      joints (B, T, V, C) float32, NaN where a body is absent; body_ids (B,) strings in
              order of first appearance; every other per-joint and per-body field. A PKU-MMD
              recording is dumped whole (no label file needed).
    selected: joints (M, T', V, C) float32 after body selection and removal of empty frames
              (NaN where an actor is absent in a kept frame); frame_index (T',) into the file's
              frames; one group of keys per labelled clip for PKU-MMD.
    """
    import numpy as np

    from ..bodies import select_bodies
    from ..readers import get_reader, reader_for_input
    from ..specs import load_spec

    reader_name, joint_spec = reader_for_input(file, load_spec(format_or_spec(fmt, spec)))
    options = {"trust_pickle": True} if trust_pickle and reader_name == "pyskl_pickle" else {}
    reader = get_reader(reader_name, **options)
    # Readers that cut one file into labelled clips can also give the whole file, unlabelled.
    whole = getattr(reader, "read_recording", None)
    if stage == "raw" and whole is not None:
        samples = [whole(file, joint_spec)]
    else:
        samples = reader.read(file, joint_spec)
    arrays: dict[str, np.ndarray] = {}
    for raw in samples:
        prefix = f"{raw.name}/" if len(samples) > 1 else ""
        if stage == "raw":
            arrays[prefix + "joints"] = raw.joints
            arrays[prefix + "body_ids"] = np.array(raw.body_ids, dtype=str)
            for key, value in {**raw.joint_fields, **raw.body_fields}.items():
                arrays[prefix + key] = value
        else:
            skel = select_bodies(raw, joint_spec)
            arrays[prefix + "joints"] = skel.joints
            arrays[prefix + "frame_index"] = skel.frame_index
        if raw.label is not None:
            arrays[prefix + "label"] = np.array(raw.label, dtype=np.int64)
    output.parent.mkdir(parents=True, exist_ok=True)
    np.savez(output, **arrays)
    shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in arrays.items() if k.endswith("joints"))
    click.echo(f"{file}: {len(samples)} sample(s) -> {output} ({shapes})")
