"""``s2i-prep``: a thin click layer over the Python API.

Command modules live beside this file, one per command, and are imported only when their command
runs, so ``--help`` neither imports numba nor compiles anything. :class:`~s2i_prep.errors.S2IError`
is turned into a one-line ``error:`` message here and nowhere else.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

import click

from .._version import __version__

#: command name -> module in this package defining a click command of the same name.
_COMMANDS = {
    "formats": "formats",
    "dump": "dump",
    "synth": "synth",
    "convert": "convert",
    "inspect": "inspect_cmd",
    "verify": "verify",
    "preview": "preview",
    "demo": "demo",
    "export": "export",
}

EXIT_CODES = """\b
Exit status:
  0  success
  1  error (bad input, bad options, failed conversion)
  2  usage error
  3  convert finished, but some input files were skipped (see the report)"""


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(n for n, m in _COMMANDS.items() if importlib.util.find_spec(f"{__name__}.{m}"))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in _COMMANDS or not importlib.util.find_spec(f"{__name__}.{_COMMANDS[name]}"):
            return None
        module = importlib.import_module(f"{__name__}.{_COMMANDS[name]}")
        return getattr(module, name.replace("-", "_"))


@click.group(cls=_LazyGroup, epilog=EXIT_CODES, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="s2i-prep")
@click.option("-v", "--verbose", count=True, help="Show tracebacks on errors (-vv).")
@click.pass_context
def cli(ctx: click.Context, verbose: int) -> None:
    """Turn raw 3D skeleton recordings into Skeleton-to-Image (S2I) datasets."""
    ctx.obj = {"verbose": verbose}


def main(argv: list[str] | None = None) -> int:
    """Console entry point: runs the group and maps S2IError to exit status 1."""
    from ..errors import S2IError

    try:
        # Without standalone mode click returns the code of ``ctx.exit(n)`` instead of raising.
        status = cli.main(args=argv, prog_name="s2i-prep", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort as exc:
        # Ctrl-C outside a command that handles it itself: the shell's status for SIGINT.
        click.echo("aborted", err=True)
        return 130 if isinstance(exc.__cause__, KeyboardInterrupt) else 1
    except S2IError as exc:
        if "-vv" in (argv or sys.argv):
            raise
        click.echo(f"error: {exc}", err=True)
        return 1
    return status if isinstance(status, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
