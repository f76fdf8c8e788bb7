"""``s2i-prep formats``: the skeleton specs available."""

from __future__ import annotations

import click


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def formats(as_json: bool) -> None:
    """List the built-in skeleton formats (use --spec FILE.yaml for your own)."""
    import json

    from ..specs import list_specs, load_spec

    rows = []
    for name in list_specs():
        spec = load_spec(name)
        rows.append({
            "format": name, "joints": spec.num_joints, "reader": spec.reader,
            "max_persons": spec.max_persons, "splits": [s.name for s in spec.splits],
            "description": spec.description,
        })
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    for r in rows:
        click.echo(f"{r['format']:<12} {r['joints']:>3} joints  {r['reader']:<13} {r['description']}")
        click.echo(f"{'':<12} splits: {', '.join(r['splits']) or '-'}")
