# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/cli.py» book/preparation.md:1442 @ca0f614d
"""The lguest command: every chapter adds its subcommands here."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator

import click

from . import __version__
from .literate.book import LiterateError, find_root
from .literate.stitch import stitch, where
from .literate.tangle import drift, tangle, write_package
from .literate.web import load_web

# «The lguest command» book/preparation.md:1373 @4a972ec2
@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lguest")
def main() -> None:
    """lguest.py: a hypervisor you can read."""


@contextmanager
def reporting() -> Iterator[None]:
    """Turn a mistake in the book into one line on stderr and exit status 1."""
    try:
        yield
    except LiterateError as error:
        click.echo(str(error), err=True)
        sys.exit(1)
    except OSError as error:
        click.echo(f"lguest: {error.filename or ''}: {error.strerror}", err=True)
        sys.exit(1)


# «Commands of the lguest tool» book/preparation.md:1399 @763b47cb
@main.command("tangle")
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if src/lguest differs from the book.")
def tangle_command(check: bool) -> None:
    """Write src/lguest from the chapters, all files or none."""
    with reporting():
        root = find_root()
        outputs = tangle(load_web(root))
        if check:
            report = drift(root, outputs)
            for line in report:
                click.echo(line, err=True)
            if report:
                sys.exit(1)
            click.echo(f"src/lguest agrees with the book ({len(outputs)} files)")
            return
        written = write_package(root, outputs)
        for path in written:
            click.echo(f"tangled {path}")
        click.echo(f"{len(written)} of {len(outputs)} files changed")


@main.command("stitch")
def stitch_command() -> None:
    """Carry edits made in src/lguest back into the chapters."""
    with reporting():
        changed = stitch(find_root())
        for chapter in changed:
            click.echo(f"stitched {chapter}")
        if not changed:
            click.echo("nothing to stitch: src/lguest holds no edits the book lacks")


@main.command("where")
@click.argument("location")
def where_command(location: str) -> None:
    """Name the chapter, line and chunk behind FILE:LINE of the package."""
    with reporting():
        click.echo(where(find_root(), location))
# «/Commands of the lguest tool»
# «/The lguest command»
# «/src/lguest/cli.py»
