# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/cli.py» book/literate-way-back.md:404 @47002bc6
"""The lguest command: every chapter adds its subcommands here."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import click

from . import __version__
from .literate.book import LiterateError, find_root
from .literate.stitch import stitch, where
from .literate.tangle import destination, drift, tangle, tangle_every_snapshot, write_package
from .literate.web import load_web

# «The lguest command» book/literate-way-back.md:295 @4a972ec2
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


# «Commands of the lguest tool» book/literate-way-back.md:334 @607dc75d
@main.command("tangle")
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if src/lguest differs from the book"
              " or if some chapter's snapshot does not tangle.")
@click.option("--upto", metavar="CHAPTER", help="The package as it stands at the end of CHAPTER"
              " (an id in chapters.yml); write it elsewhere with --into.")
@click.option("--into", metavar="DIR", type=click.Path(path_type=Path),
              help="Write DIR/src/lguest instead of the repository's src/lguest.")
def tangle_command(check: bool, upto: str | None, into: Path | None) -> None:
    """Write src/lguest from the chapters, all files or none."""
    shown = "" if into is None else f"{into}/"
    with reporting(), naming(shown):
        root = find_root()
        web = load_web(root)
        outputs = tangle(web, upto)
        last = upto is None or web.rank(upto) == web.last
        if check and into is None and not last:  # nothing to compare with: it tangles, and that is all
            tangle_every_snapshot(web)
            click.echo(f"the snapshot of {upto} tangles ({len(outputs)} files),"
                       " and so does every chapter's")
            return
        target = destination(root, into, last)
        if check:
            report = drift(target, outputs)
            for line in report:
                click.echo(shown + line, err=True)
            if report:
                sys.exit(1)
            tangle_every_snapshot(web)
            click.echo(f"{shown}src/lguest agrees with the book ({len(outputs)} files),"
                       " and every chapter's snapshot tangles")
            return
        written = write_package(target, outputs)
        for path in written:
            click.echo(f"tangled {shown}{path}")
        click.echo(f"{len(written)} of {len(outputs)} files changed")


@contextmanager
def naming(shown: str) -> Iterator[None]:
    """Name a file of the package under the directory it is in, when that is not the repository."""
    try:
        yield
    except LiterateError as error:
        if not shown or not (error.path == "src" or error.path.startswith("src/")):
            raise
        raise LiterateError(shown + error.path, error.line, error.message) from None


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
# «Commands of the lguest tool»[2] book/literate-way-back.md:701 @9914b8f8
@main.command("notebook", context_settings={"ignore_unknown_options": True})
@click.option("--print", "print_only", is_flag=True,
              help="Pair the notebook and print the command that would open it; start nothing.")
@click.option("--no-browser", is_flag=True, help="Start Jupyter without opening a browser.")
@click.argument("chapter", default="preparation")
@click.argument("jupyter_args", nargs=-1, type=click.UNPROCESSED)
def notebook_command(print_only: bool, no_browser: bool, chapter: str,
                     jupyter_args: tuple[str, ...]) -> None:
    """Open CHAPTER (such as host) in JupyterLab, paired with its page by jupytext."""
    import shlex

    from .literate.book import read_book
    from .literate.notebook import find_page, hand_over, jupyter_command, pair_notebook

    with reporting():
        root = find_root()
        page = find_page(read_book(root), chapter)
        arguments = [*(["--no-browser"] if no_browser else []), *jupyter_args]
        command = jupyter_command(root, pair_notebook(root, page), arguments)
        if print_only:
            click.echo(shlex.join(command))
            return
        sys.exit(hand_over(command, root))
# «/Commands of the lguest tool»
# «Commands of the lguest tool»[3] book/literate-way-back.md:859 @e654cd17

@main.command("milestone")
@click.argument("chapter")
def milestone_command(chapter: str) -> None:
    """Run what the machine of CHAPTER can do, from that chapter's snapshot alone."""
    from .literate.milestones import milestone

    with reporting():
        sys.exit(milestone(find_root(), chapter))
# «/Commands of the lguest tool»
# «Commands of the lguest tool»[4] book/literate-weaving.md:598 @c18abae4

@main.command("book-config")
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if a file is stale.")
def book_config_command(check: bool) -> None:
    """Write Jupyter Book's _config.yml and book/_toc.yml from conf.py and chapters.yml."""
    from .literate.jupyterbook import book_files, stale_files

    with reporting():
        root = find_root()
        files = book_files(root)
        stale = stale_files(root, files)
        if check:
            for path in stale:
                click.echo(f"{path} is stale: run lguest book-config", err=True)
            if stale:
                sys.exit(1)
            click.echo(f"{', '.join(files)} agree with conf.py and chapters.yml")
            return
        for path in stale:
            (root / path).write_text(files[path], encoding="utf-8")
            click.echo(f"wrote {path}")
# «/Commands of the lguest tool»
# «Commands of the lguest tool»[5] book/launcher.md:1112 @960e3e98

@main.command("run", context_settings={"ignore_unknown_options": True,
                                        "allow_interspersed_args": False})
# «The options of lguest run»[2] book/host-boot.md:761 @d27af3f9
@click.option("--verbose", is_flag=True,
              help="Print every exit from the guest, and the chunk of the book that handles it.")
@click.option("--deterministic", is_flag=True,
              help="Count instructions instead of watching the clock, so runs repeat exactly.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Kill the guest if it is still running after this many seconds.")
# «/The options of lguest run»
# «The options of lguest run»[3] book/drivers-plugging.md:290 @99b2eced
@click.option("--console", "virtio_console", type=click.Choice(["early", "virtio"]),
              default="early", show_default=True,
              callback=lambda context, parameter, value: value == "virtio",
              help="Which console reads standard input: the Host's early one, or virtio.")
@click.option("--block", multiple=True, metavar="IMAGE[:ro]",
              help="A virtio disk backed by IMAGE; ':ro' for read-only. Repeatable.")
@click.option("--read-only-block", multiple=True, metavar="IMAGE",
              help="A read-only virtio disk: IMAGE is never opened for writing. Repeatable.")
@click.option("--net", multiple=True, metavar="udp:LOCAL:REMOTE|switch",
              callback=lambda context, parameter, specs: checked_nets(context, specs),
              help="A virtio network card wired over UDP on 127.0.0.1, or to the Launcher's "
                   "own switch. Repeatable.")
@click.option("--rng", is_flag=True, help="A virtio entropy device, fed by os.urandom.")
@click.option("--guests", type=click.IntRange(1, 16), default=1, show_default=True,
              help="Run this many guests, each with the same options; guest 0 has stdin.")
@click.option("--input", "inputs", multiple=True, metavar="FILE", type=click.File("rb"),
              help="A script for the next guest after guest 0 (with --guests). Repeatable.")
# «/The options of lguest run»
# «The options of lguest run»[4] book/mastery-gdb.md:1116 @805894ca
@click.option("--gdb", metavar="[HOST:]PORT",
              callback=lambda context, parameter, value: checked_gdb(context, value),
              help="Wait before the first instruction for gdb on PORT (of 127.0.0.1 unless "
                   "HOST is named), and serve it.")
# «/The options of lguest run»
@click.argument("mem_mb", metavar="MEM_MB", type=int)
@click.argument("guest", metavar="[GUEST.elf]", required=False)
@click.argument("guest_args", metavar="[GUEST_ARGS]...", nargs=-1, type=click.UNPROCESSED)
def run_command(mem_mb: int, guest: str | None, guest_args: tuple[str, ...],
                **options: object) -> None:
    """Boot GUEST.elf with MEM_MB MiB of memory; GUEST_ARGS become its command line.

    \b
    Exit status:
      0  the guest powered off
      1  the Launcher could not start the guest (the reason is on stderr)
      2  the command line was wrong
      3  the guest asked to be restarted
      4  the Host killed the guest (the reason is on stderr)
    141  standard output was closed: killed by SIGPIPE, like cat, saying nothing
    """
    from . import launcher

    # «Find the kernel to boot»[2] book/guest-shell.md:821 @0edc5502
    if guest is None:
        from .guest import KernelBuildError, build_kernel

        try:
            guest = str(build_kernel())
        except KernelBuildError as error:
            click.echo(f"lguest: {error}", err=True)
            sys.exit(launcher.EXIT_ERROR)
    # «/Find the kernel to boot»
    # «Run the guest from the command line»[3] book/mastery.md:908 @f3718fdb
    from .mastery.voucher import poured

    status = launcher.launch(mem_mb, guest, guest_args, voucher=poured(), **options)
    if status == launcher.EXIT_BROKEN_PIPE:
        launcher.die_of_a_broken_pipe()
    sys.exit(status)
    # «/Run the guest from the command line»
# «/Commands of the lguest tool»
# «Commands of the lguest tool»[6] book/drivers-plugging.md:312 @040f1517

def checked_nets(context: click.Context, specs: tuple[str, ...]) -> tuple[str, ...]:
    """The --net options, if every one is a cable; otherwise one line and status 2."""
    from .drivers import DeviceError, parse_net
    from .launcher import EXIT_USAGE

    for spec in specs:
        try:
            parse_net(spec)
        except DeviceError as error:
            click.echo(f"lguest: {error}", err=True)
            context.exit(EXIT_USAGE)
    return specs
# «/Commands of the lguest tool»
# «Commands of the lguest tool»[7] book/mastery.md:985 @f87addf1

@contextmanager
def recording() -> Iterator[None]:
    """``reporting``, and a bad progress file as one line too."""
    from .mastery.progress import ProgressError

    with reporting():
        try:
            yield
        except ProgressError as error:
            click.echo(f"lguest: {error}", err=True)
            sys.exit(1)


@main.group("quest")
def quest_group() -> None:
    """The quest at the end of each chapter: list them, or check one."""


@quest_group.command("list")
def quest_list_command() -> None:
    """Name each chapter's quest."""
    from .literate.book import read_book
    from .mastery.quests import QUESTS

    with reporting():
        for chapter in read_book(find_root()).chapters:
            quest = QUESTS.get(chapter.id)
            click.echo(f"{chapter.id:12} {quest.title if quest else '(no quest)'}")


@quest_group.command("check")
@click.argument("chapter")
def quest_check_command(chapter: str) -> None:
    """Check that CHAPTER's quest is done in this book, and record it if it is."""
    from .literate.book import read_book
    from .mastery.progress import record_quest
    from .mastery.quests import check_quest

    with recording():
        root = find_root()
        chapters = {page.id: page for page in read_book(root).chapters}
        if chapter not in chapters:
            click.echo(f"lguest: no chapter {chapter!r}; the chapters are {', '.join(chapters)}",
                       err=True)
            sys.exit(2)
        result = check_quest(root, chapter)
        title = chapters[chapter].title
        if not result.passed:
            click.echo(f"{title}: not done yet: {result.message}", err=True)
            sys.exit(1)
        record_quest(root, chapters[chapter], result.message)
        click.echo(f"{title}: quest complete: {result.message}")


@quest_group.command("solution")
@click.argument("chapter")
def quest_solution_command(chapter: str) -> None:
    """Print CHAPTER's reference solution as a diff (patch -p1 applies it). No peeking, Hero."""
    from .mastery.solutions import StaleSolution, solution_diff, solution_file

    with reporting():
        root = find_root()
        if not solution_file(root, chapter).is_file():
            click.echo(f"lguest: no solution for {chapter!r} in {solution_file(root, chapter)}",
                       err=True)
            sys.exit(2)
        try:
            click.echo(solution_diff(root, chapter), nl=False)
        except StaleSolution as stale:
            click.echo(f"lguest: {stale}", err=True)
            sys.exit(1)


@main.command("progress")
def progress_command() -> None:
    """Show, for each chapter, whether it was read and whether its quest is done."""
    from .mastery.progress import progress_table
    from .mastery.quests import QUESTS

    with recording():
        click.echo(progress_table(find_root(), {q.chapter: q.title for q in QUESTS.values()}))


@main.command("beer")
@click.option("--name", help="The name on the voucher (default: git's user.name, or your login).")
@click.option("--verify", "code", metavar="CODE", help="Check a voucher's code instead.")
def beer_command(name: str | None, code: str | None) -> None:
    """Claim the Beer: a voucher if every quest is done, or a list of what remains."""
    from .mastery.voucher import NoProgress, default_name, pour, verify, what_remains

    with recording():
        root = find_root()
        if code is not None:
            ok, message = verify(root, code)
            click.echo(message, err=not ok)
            sys.exit(0 if ok else 1)
        try:
            remaining = what_remains(root)
        except NoProgress as nothing:
            click.echo(f"lguest: {nothing}", err=True)
            sys.exit(1)
        if remaining:
            click.echo("Not yet, Hero. What remains:", err=True)
            for line in remaining:
                click.echo(f"  - {line}", err=True)
            sys.exit(1)
        click.echo(pour(root, name or default_name(root)), nl=False)
# «/Commands of the lguest tool»
# «Commands of the lguest tool»[8] book/mastery-gdb.md:1125 @c0fff01b

def checked_gdb(context: click.Context, value: str | None) -> tuple[str, int] | None:
    """The --gdb option as (host, port), if it is one; otherwise one line and status 2."""
    if value is None:
        return None
    from .gdbstub import parse_address
    from .launcher import EXIT_USAGE

    try:
        return parse_address(value)
    except ValueError as error:
        click.echo(f"lguest: {error}", err=True)
        context.exit(EXIT_USAGE)
# «/Commands of the lguest tool»
# «/The lguest command»
# «/src/lguest/cli.py»
