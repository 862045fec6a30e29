"""The tangler under attack (book/literate.md, the appendix): random chunk graphs with
cycles, self-references and dangling references, saved in every encoding and
with every line ending an editor might choose, tabs, enormous and explosive
chunks, and a package directory that fights back.

Each book either tangles, and then to exactly what the same book saved as
plain UTF-8 with LF line endings tangles to, or is refused with one line,
``book/PAGE.md:LINE: ...`` (or chapters.yml); never a traceback, and never a
half-written src/lguest: on any error the tree is byte for byte as it was.
The API is attacked with hypothesis (a fixed seed); the command itself,
``lguest tangle``, with a list of the worst books we could think of.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from conftest import ROOT, lguest, snapshot, write_repo
from lguest.literate.book import LiterateError
from lguest.literate.tangle import MAX_DEPTH, tangle, write_package
from lguest.literate.web import load_web

ATTACK = settings(derandomize=True, database=None, deadline=None, print_blob=True,
                  suppress_health_check=list(HealthCheck))
ERROR = re.compile(r"(book/[^:\n]+\.md|chapters\.yml|src/lguest[^:\n]*)(:\d+)?: [^\n]+")
NAMES = ["Alpha", "beta gamma", "naïve λ", "x[2]", "it's", "a:1", "Δ\tδ"]
ROOTS = ["src/lguest/one.py", "src/lguest/two.c"]
CODE = st.text(st.sampled_from("abc xyz=()+-*;:#\"'\t\u00a0éλ日"), max_size=30).filter(
    lambda line: not line.lstrip().startswith((":", "```", "~~~")))


@st.composite
def graphs(draw) -> str:
    """A chapter: roots and chunks whose references may dangle, loop or point home."""
    count = draw(st.integers(1, len(NAMES)))
    names = NAMES[:count]
    targets = st.sampled_from(names + ["undefined one"])
    blocks = []
    for index, name in enumerate([*ROOTS[:draw(st.integers(1, 2))], *names]):
        body = draw(st.lists(st.one_of(CODE, st.builds(lambda indent, target: f"{indent}<<{target}>>",
                                                       st.sampled_from(["", "    ", "\t", " \t"]),
                                                       targets)), max_size=6))
        fence = draw(st.sampled_from(["```", "~~~", "````"]))
        options = [f":file: {name}"] if name.startswith("src/") else []
        if not options and draw(st.integers(0, 4)) == 0:
            options = [draw(st.sampled_from([":append:", ":replace:"]))]
        blocks += ["", f"Prose about {name}.", "", f"{fence}{{chunk}} {name}", *options, *body, fence]
    return "\n".join(["# A chapter", *blocks]) + "\n"


ENCODINGS = ["utf-8", "utf-8-sig", "latin-1", "cp1252", "utf-16", "utf-16-le", "utf-32"]


def saved(text: str, encoding: str, ending: str) -> bytes | None:
    try:
        return text.replace("\n", ending).encode(encoding)
    except UnicodeEncodeError:
        return None


def tangle_repo(root: Path) -> dict[str, str] | str:
    """The tangle of the book under ``root``, or the one-line error."""
    try:
        return tangle(load_web(root))
    except LiterateError as error:
        return str(error)


@settings(ATTACK, max_examples=300)
@given(text=graphs(), encoding=st.sampled_from(ENCODINGS), ending=st.sampled_from(["\n", "\r\n", "\r"]))
def test_a_book_in_any_encoding_tangles_as_utf8_or_fails_in_one_line(tmp_path_factory, text, encoding, ending):
    base = write_repo(tmp_path_factory.mktemp("plain"), {"a.md": text})
    expected = tangle_repo(base)
    data = saved(text, encoding, ending)
    if data is None:  # some characters have no latin-1 form: nothing to test
        return
    root = write_repo(tmp_path_factory.mktemp("saved"), {"a.md": ""})
    (root / "book" / "a.md").write_bytes(data)
    package = root / "src" / "lguest"
    package.mkdir(parents=True)
    (package / "keep.py").write_text("# by hand\n")
    before = snapshot(root)
    try:
        outputs = tangle(load_web(root))
    except LiterateError as error:
        message = str(error)
        note(message)
        event(f"{encoding}: refused")
        assert ERROR.fullmatch(message), message
        assert snapshot(root) == before
        if encoding in ("utf-8", "utf-8-sig") or data.isascii() and "\0" not in data.decode("ascii"):
            assert message == expected  # the same mistake, at the same line
        return
    event(f"{encoding}: tangled")
    assert outputs == expected  # exactly what the plain book gives
    write_package(root, outputs)
    assert (package / "keep.py").read_text() == "# by hand\n"


def test_cycles_of_every_length_are_named_at_a_line(tmp_path):
    for length in (1, 2, 3, 7):
        names = [f"C{index}" for index in range(length)]
        chunks = "".join(f"\n```{{chunk}} {name}\n<<{names[(index + 1) % length]}>>\n```\n"
                         for index, name in enumerate(names))
        text = f"# A\n\n```{{chunk}} src/lguest/a.py\n:file: src/lguest/a.py\n<<C0>>\n```\n{chunks}"
        result = tangle_repo(write_repo(tmp_path / str(length), {"a.md": text}))
        assert isinstance(result, str) and ERROR.fullmatch(result), result
        assert "reference cycle" in result and result.count("→") == length


# --- The command itself, against the worst books we could think of ---------------------------

def chunk(name: str, body: str, file: bool = False) -> str:
    return f"\n```{{chunk}} {name}\n" + (f":file: {name}\n" if file else "") + body + "```\n"


FINE = "# A\n" + chunk("src/lguest/a.py", "x = 1\n<<B>>\n", file=True) + chunk("B", "\ty = 2\n")
FAN = ("# A\n" + chunk("src/lguest/a.py", "<<L1>>\n" * 1000, file=True)
       + chunk("L1", "<<L2>>\n" * 1000) + chunk("L2", "<<L3>>\n" * 1000) + chunk("L3", "z\n"))
DEEP = "# A\n" + chunk("src/lguest/a.py", "<<D0>>\n", file=True) + "".join(
    chunk(f"D{level}", f"<<D{level + 1}>>\n") for level in range(MAX_DEPTH + 20)) + chunk(
    f"D{MAX_DEPTH + 20}", "bottom\n")
HUGE = "# A\n" + chunk("src/lguest/a.py", "x = 'a long line of code'  # with a comment\n" * 200_000, file=True)
TOC = ("cover:\n  id: cover\n  title: Cover\n  file: book/index.md\n"
       "chapters:\n  - id: a\n    title: A\n    file: book/a.md\n")

# name: (chapter bytes, chapters.yml bytes or None, expected: "ok" or words of the error)
COMMAND_CASES = {
    "fine": (FINE.encode(), None, "ok"),
    "UTF-8 byte-order mark on the first fence": (b"\xef\xbb\xbf" + FINE.split("\n", 1)[1].lstrip().encode(), None, "ok"),
    "CRLF and tabs": (FINE.replace("\n", "\r\n").encode(), None, "ok"),
    "UTF-16": (FINE.encode("utf-16"), None, "book/a.md:1: saved as UTF-16"),
    "UTF-16 without a mark": (FINE.encode("utf-16-le"), None, "book/a.md:1: holds a NUL byte"),
    "latin-1": ((FINE + "caf\u00e9\n").encode("latin-1"), None, "book/a.md:12: not valid UTF-8"),
    "a self-reference": (FINE.replace("\ty = 2", "<<B>>").encode(), None, "reference cycle"),
    "a billion lines": (FAN.encode(), None, "book/a.md:3: «src/lguest/a.py» expands to more than"),
    "too deep": (DEEP.encode(), None, f"nest more than {MAX_DEPTH} deep"),
    "an enormous chunk": (HUGE.encode(), None, "ok"),
    "an unclosed fence": (FINE.rsplit("```", 1)[0].encode(), None, "book/a.md:"),
    "chapters.yml in UTF-16": (FINE.encode(), TOC.encode("utf-16"), "chapters.yml: cannot read it"),
    "chapters.yml with a byte-order mark": (FINE.encode(), b"\xef\xbb\xbf" + TOC.encode(), "ok"),
    "chapters.yml with CRLF": (FINE.encode(), TOC.replace("\n", "\r\n").encode(), "ok"),
    "chapters.yml with a tab": (FINE.encode(), TOC.replace("  - id", "\t- id").encode(), "chapters.yml:"),
    "a root where the package has a directory": (  # named as it is, not in the staging directory
        FINE.replace("src/lguest/a.py", "src/lguest/sub").encode(), None, "src/lguest/sub: cannot write it: "),
    "code that reads as an end marker": (
        FINE.replace("x = 1\n", "x = 1\n    # «/B»\n").encode(), None,
        "book/a.md:6: this line of code reads as a chunk marker"),
    "code that reads as a begin marker": (
        FINE.replace("\ty = 2", "\ty = 2\n# «src/lguest/a.py» book/a.md:3 @0123abcd").encode(), None,
        "book/a.md:11: this line of code reads as a chunk marker"),
    "a marker of C in Python code": (FINE.replace("x = 1\n", "x = '/* «/B» */'\n/* «/B» */\n").encode(), None, "ok"),
    "chapters.yml nested 3,000 deep": (FINE.encode(), (TOC + "deep: " + "[" * 3000 + "]" * 3000 + "\n").encode(),
                                       "chapters.yml: nested too deep for PyYAML to read it"),
}


@pytest.mark.parametrize("case", COMMAND_CASES)
def test_lguest_tangle_tangles_or_says_one_line_and_writes_nothing(tmp_path, case):
    chapter, toc, expected = COMMAND_CASES[case]
    root = write_repo(tmp_path, {"a.md": ""})
    (root / "book" / "a.md").write_bytes(chapter)
    if toc is not None:
        (root / "chapters.yml").write_bytes(toc)
    package = root / "src" / "lguest"
    (package / "sub").mkdir(parents=True)
    (package / "sub" / "by_hand.py").write_text("# written by hand\n")
    (package / "old.py").write_text("# also by hand\n")
    before = snapshot(root)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    result = subprocess.run([sys.executable, "-m", "lguest", "tangle"], cwd=root, env=env,
                            capture_output=True, text=True, timeout=120)
    assert "Traceback" not in result.stderr
    if expected == "ok":
        assert result.returncode == 0, result.stderr
        assert (package / "a.py").is_file()
        assert (package / "sub" / "by_hand.py").read_text() == "# written by hand\n"
        return
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert ERROR.fullmatch(lines[0]) or lines[0].startswith("lguest: "), lines[0]
    assert ".tangle-" not in lines[0]
    assert snapshot(root) == before
    assert not [path for path in package.parent.iterdir() if path.name.startswith(".tangle-")]


# --- Symbolic links: no command follows one out of src/lguest ------------------------------

LINKED = ("# A\n" + chunk("src/lguest/a.py", "x = 1\n", file=True)
          + chunk("src/lguest/sub/b.py", "y = 2\n", file=True) + chunk("src/lguest/zzz.py", "z = 3\n", file=True))

# name: the link, relative to the repository; it points at what stood there, moved outside the tree
LINKS = {
    "a file": "src/lguest/a.py",
    "a directory": "src/lguest/sub",
    "a directory, and the tangle then fails": "src/lguest/sub",
    "a link no root writes through": "src/lguest/sub/c",
    "the package": "src/lguest",
    "src": "src",
}
COMMANDS = [("tangle",), ("tangle", "--check"), ("stitch",), ("where", "src/lguest/zzz.py:3")]


def files_under(top: Path) -> dict[str, bytes]:
    return {path.relative_to(top).as_posix(): path.read_bytes() for path in sorted(top.rglob("*"))
            if path.is_file() and not path.is_symlink() and "__pycache__" not in path.parts}


def plant_link(base: Path, case: str, outside: Path) -> Path:
    """Replace LINKS[case] under ``base`` with a symbolic link into ``outside``; its target."""
    outside.mkdir()
    link = base / LINKS[case]
    target = outside / link.name
    if link.exists():
        os.rename(link, target)
    else:
        target.mkdir()
    link.symlink_to(target)
    if "fails" in case:  # a later root cannot be written: main wrote through the link first anyway
        (base / "src/lguest/zzz.py").unlink()
        (base / "src/lguest/zzz.py").mkdir()
    return target


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
@pytest.mark.parametrize("case", LINKS)
def test_no_command_follows_a_symbolic_link_out_of_the_package(tmp_path, case, command):
    root = write_repo(tmp_path / "repo", {"a.md": LINKED})
    assert lguest(root, "tangle").returncode == 0
    outside = tmp_path / "outside"
    target = plant_link(root, case, outside)
    chapter = root / "book/a.md"
    chapter.write_text(chapter.read_text().replace(" = ", " = 4 + "))  # something to tangle
    before, outside_before = snapshot(root), files_under(outside)
    result = lguest(root, *command)
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [f"{LINKS[case]}: a symbolic link (to {target}); the tangler follows"
                                          " none, and writes nothing while one is in src/lguest: remove it"]
    assert files_under(outside) == outside_before
    assert snapshot(root) == before
    assert not [path for path in (root / "src").iterdir() if path.name.startswith(".tangle-")]


@pytest.mark.parametrize("case", LINKS)
def test_a_snapshot_written_elsewhere_follows_no_link_either(tmp_path, case):
    """lguest tangle --into DIR guards DIR/src/lguest as tangle guards the repository's."""
    root = write_repo(tmp_path / "repo", {"a.md": LINKED})
    into = tmp_path / "into"
    assert lguest(root, "tangle", "--upto", "a", "--into", str(into)).returncode == 0
    outside = tmp_path / "outside"
    target = plant_link(into, case, outside)
    chapter = root / "book/a.md"
    chapter.write_text(chapter.read_text().replace(" = ", " = 4 + "))
    before, outside_before = files_under(into), files_under(outside)
    for command in (("tangle", "--upto", "a", "--into", str(into)),
                    ("tangle", "--check", "--into", str(into))):
        result = lguest(root, *command)
        assert result.returncode == 1, result.stdout
        assert result.stderr.splitlines() == [f"{into}/{LINKS[case]}: a symbolic link (to {target}); the"
                                              " tangler follows none, and writes nothing while one is in"
                                              " src/lguest: remove it"]
    assert files_under(outside) == outside_before
    assert files_under(into) == before
    assert not [path for path in (into / "src").iterdir() if path.name.startswith(".tangle-")]


# --- Size: a hostile chapter costs time in proportion to its length ------------------------

def many_roots(count: int) -> str:
    return "".join(chunk(f"src/lguest/r{index}.py", f"x = {index}\n", file=True) for index in range(count))


def many_users(count: int, root: str = "src/lguest/a.py") -> str:
    return (chunk(root, "<<B>>\n", file=True) + chunk("B", "x = 1\n")
            + "".join(f"\n```{{chunk}} B\n:append:\n<<C>>\n```\n" for _ in range(count)) + chunk("C", "y = 2\n"))


LONG_OPTION = "\n```{chunk} src/lguest/o.py\n:file: src/lguest/o.py\n:lang: x" + " " * 150_000 + "y\nz = 3\n```\n"


def ten_megabytes() -> str:
    text = LONG_OPTION + many_roots(20_000) + many_users(20_000, "src/lguest/b.py")
    filler = "x = 'a line of code, one of very many in the chapter'\n"
    return text + chunk("src/lguest/filler.py", filler * ((10_000_000 - len(text)) // len(filler)), file=True)


# Each took minutes before: the option pattern backtracked over the line's white space, each
# root was compared with every root before it, and each user was searched for among the users.
SIZES = {
    "one option line of 150 KB": lambda: LONG_OPTION,
    "30,000 roots": lambda: many_roots(30_000),
    "a chunk with 40,000 parts using another": lambda: many_users(40_000),
    "all of them in a 10 MB chapter": ten_megabytes,
}


@pytest.mark.parametrize("case", SIZES)
def test_a_large_chapter_tangles_in_linear_time(tmp_path, case):
    root = write_repo(tmp_path, {"a.md": "# A\n" + SIZES[case]()})
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    result = subprocess.run([sys.executable, "-m", "lguest", "tangle"], cwd=root, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith(" files changed\n")
