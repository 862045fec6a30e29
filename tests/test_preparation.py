"""Preparation: the literate engine (tangle, check, where, stitch) and its errors."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, lguest, snapshot, write_repo
from lguest.literate import tangle as tangle_module
from lguest.literate.book import LiterateError, read_book
from lguest.literate.stitch import stitch, where
from lguest.literate.tangle import drift, tangle, write_package
from lguest.literate.web import load_web

FENCE = "```"

HELLO = f"""# Hello

{FENCE}{{chunk}} src/lguest/hello.py
:file: src/lguest/hello.py

def main():
    <<Greet the reader>>
    return 0
{FENCE}

Some prose.

{FENCE}{{chunk}} Greet the reader
print("Hello, Hero.")
{FENCE}
"""

MORE = f"""# More

{FENCE}{{chunk}} Greet the reader
:append:

print("Your Beer awaits.")
{FENCE}
"""


def test_tangle_writes_expansion_with_markers(tmp_path):
    root = write_repo(tmp_path, {"one.md": HELLO, "two.md": MORE})
    result = lguest(root, "tangle")
    assert result.returncode == 0, result.stderr
    text = (root / "src/lguest/hello.py").read_text()
    code = [line for line in text.split("\n") if not line.lstrip().startswith("#")]
    assert code == ["def main():", '    print("Hello, Hero.")', '    print("Your Beer awaits.")',
                    "    return 0", ""]
    assert '    # «Greet the reader»[2] book/two.md:6 @' in text
    assert lguest(root, "tangle", "--check").returncode == 0
    exec(compile(text, "hello.py", "exec"), namespace := {})
    assert namespace["main"]() == 0


def test_where_maps_every_line_back(tmp_path):
    root = write_repo(tmp_path, {"one.md": HELLO, "two.md": MORE})
    lguest(root, "tangle")
    text = (root / "src/lguest/hello.py").read_text().split("\n")
    chapters = {name: (root / "book" / name).read_text().split("\n") for name in ("one.md", "two.md")}
    for number, line in enumerate(text, start=1):
        if not line or line.lstrip().startswith("#"):
            continue
        result = lguest(root, "where", f"src/lguest/hello.py:{number}")
        assert result.returncode == 0, result.stderr
        place, _, chunk = result.stdout.strip().partition(": ")
        chapter, _, book_line = place.rpartition(":")
        assert chapters[Path(chapter).name][int(book_line) - 1].strip() == line.strip()
        assert chunk.startswith("«")


def _error_case(tmp_path, chapters, toc=None):
    root = write_repo(tmp_path, chapters, toc)
    before = snapshot(root)
    result = lguest(root, "tangle")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().split("\n")
    assert len(lines) == 1, result.stderr
    assert snapshot(root) == before, "nothing may be written"
    assert not (root / "src").exists()
    return lines[0]


ROOT_CHUNK = f"{FENCE}{{chunk}} Root\n:file: src/lguest/a.py\n\n<<Body>>\n{FENCE}\n"

ERRORS = {
    "undefined reference": ({"a.md": ROOT_CHUNK}, "book/a.md:4: reference to undefined chunk «Body»"),
    "unused chunk": ({"a.md": f"{FENCE}{{chunk}} Root\n:file: src/lguest/a.py\n\nx = 1\n{FENCE}\n\n"
                              f"{FENCE}{{chunk}} Lonely\ny = 2\n{FENCE}\n"},
                     "book/a.md:7: chunk «Lonely» is never used"),
    "cycle": ({"a.md": ROOT_CHUNK + f"\n{FENCE}{{chunk}} Body\n<<Loop>>\n{FENCE}\n\n"
                                    f"{FENCE}{{chunk}} Loop\n  <<Body>>\n{FENCE}\n"},
              "book/a.md:12: reference cycle: «Body» → «Loop» → «Body»"),
    "two roots": ({"a.md": f"{FENCE}{{chunk}} One\n:file: src/lguest/a.py\n\nx = 1\n{FENCE}\n",
                   "b.md": f"\n\n{FENCE}{{chunk}} Two\n:file: src/lguest/a.py\n\nx = 2\n{FENCE}\n"},
                  "book/b.md:3: two roots for src/lguest/a.py: this one and book/a.md:1"),
    "unterminated fence": ({"a.md": f"# A\n\n{FENCE}{{chunk}} Root\n:file: src/lguest/a.py\n\nx = 1\n"},
                           "book/a.md:3: unterminated fence ```"),
    "unterminated container": ({"a.md": f"````{{note}}\nText.\n\n{FENCE}python\nx\n{FENCE}\n"},
                               "book/a.md:1: unterminated fence ````"),
    "defined twice": ({"a.md": ROOT_CHUNK + f"\n{FENCE}{{chunk}} Body\nx = 1\n{FENCE}\n\n"
                                            f"{FENCE}{{chunk}} Body\nx = 2\n{FENCE}\n"},
                      "book/a.md:11: «Body» is already defined at book/a.md:7; mark this part :append:"),
    "append before definition": ({"a.md": ROOT_CHUNK + f"\n{FENCE}{{chunk}} Body\n:append:\nx = 1\n{FENCE}\n"},
                                 "book/a.md:7: «Body» is continued here, but no chunk of that name comes before it"),
    "unknown option": ({"a.md": f"{FENCE}{{chunk}} Root\n:file: src/lguest/a.py\n:apend:\n\nx\n{FENCE}\n"},
                       "book/a.md:3: unknown chunk option :apend:"),
    "file outside the package": ({"a.md": f"{FENCE}{{chunk}} Root\n:file: ../etc/passwd\n\nx\n{FENCE}\n"},
                                 "book/a.md:2: :file: '../etc/passwd' must name a file inside src/lguest/"),
    "chunk without a name": ({"a.md": f"{FENCE}{{chunk}}\nx\n{FENCE}\n"},
                             "book/a.md:1: a chunk needs a name"),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_book_errors_are_one_line_and_write_nothing(tmp_path, case):
    chapters, expected = ERRORS[case]
    assert _error_case(tmp_path, chapters).startswith(expected)


def test_missing_chapter_file_names_chapters_yml_line(tmp_path):
    toc = ("cover:\n  id: cover\n  title: Cover\n  file: book/index.md\nchapters:\n"
           "  - id: a\n    title: A\n    file: book/a.md\n"
           "  - id: gone\n    title: Gone\n    file: book/gone.md\n")
    line = _error_case(tmp_path, {"a.md": ROOT_CHUNK.replace("<<Body>>", "x = 1")}, toc)
    assert line == "chapters.yml:11: book/gone.md does not exist"


def test_unlisted_chapter_is_an_error(tmp_path):
    root = tmp_path
    write_repo(root, {"a.md": ROOT_CHUNK.replace("<<Body>>", "x = 1")})
    (root / "book" / "stray.md").write_text("# Stray\n")
    result = lguest(root, "tangle")
    assert result.returncode == 1
    assert result.stderr.strip() == "book/stray.md:1: this page is not listed in chapters.yml"


def test_invalid_utf8_names_the_line(tmp_path):
    root = write_repo(tmp_path, {"a.md": "# A\n\nfine\n"})
    (root / "book" / "a.md").write_bytes(b"# A\n\nbad \xff byte\n")
    result = lguest(root, "tangle")
    assert result.returncode == 1
    assert result.stderr.strip() == "book/a.md:3: not valid UTF-8"


def test_crlf_chapters_tangle_like_lf(tmp_path):
    lf = write_repo(tmp_path / "lf", {"one.md": HELLO, "two.md": MORE})
    crlf = write_repo(tmp_path / "crlf", {"one.md": HELLO.replace("\n", "\r\n"), "two.md": MORE})
    assert tangle(load_web(lf)) == tangle(load_web(crlf))


def test_chunks_inside_admonitions_are_found_and_literal_fences_are_not(tmp_path):
    text = (f"````{{note}}\n{FENCE}{{chunk}} Root\n:file: src/lguest/a.py\n\nx = 1\n{FENCE}\n````\n\n"
            f"````markdown\n{FENCE}{{chunk}} Example only\ny = 2\n{FENCE}\n````\n")
    web = load_web(write_repo(tmp_path, {"a.md": text}))
    assert sorted(web.chunks) == ["Root"]


def test_stale_and_missing_files_are_drift(tmp_path):
    root = write_repo(tmp_path, {"one.md": HELLO, "two.md": MORE})
    outputs = tangle(load_web(root))
    assert drift(root, outputs) == ["src/lguest/hello.py: missing, but defined in the book"]
    write_package(root, outputs)
    assert drift(root, outputs) == []
    (root / "src/lguest/old.py").write_text(outputs["src/lguest/hello.py"])
    (root / "src/lguest/mine.txt").write_text("not tangled, left alone\n")
    assert drift(root, outputs) == ["src/lguest/old.py: stale: no chunk in the book produces it"]
    assert write_package(root, outputs) == ["src/lguest/old.py"]
    assert not (root / "src/lguest/old.py").exists()
    assert (root / "src/lguest/mine.txt").exists()


def test_write_is_all_or_nothing(tmp_path, monkeypatch):
    root = write_repo(tmp_path, {"one.md": HELLO, "two.md": MORE})
    write_package(root, tangle(load_web(root)))
    before = snapshot(root)
    outputs = {path: text + "# changed\n" for path, text in tangle(load_web(root)).items()}
    outputs["src/lguest/second.py"] = "# Tangled\n"
    written = []
    real = Path.write_text

    def failing(self, *args, **kwargs):
        written.append(self)
        if len(written) == 2:
            raise OSError(28, "No space left on device")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", failing)
    with pytest.raises(LiterateError, match=r"^src/lguest/second\.py: cannot write it: No space left on device$"):
        write_package(root, outputs)
    assert snapshot(root) == before
    assert not list((root / "src").glob(".tangle-*"))


def test_drift_in_the_real_book_is_named(book_copy):
    chapter = book_copy / "book/literate.md"
    chapter.write_text(chapter.read_text().replace("MAX_DEPTH = 100", "MAX_DEPTH = 101"))
    result = lguest(book_copy, "tangle", "--check")
    assert result.returncode == 1
    assert result.stderr.strip() == "src/lguest/literate/tangle.py: differs from the book"


def test_self_hosting(tmp_path, book_copy):
    """The committed tangler reproduces itself, and what it produces does too."""
    first = tmp_path / "first"
    first.mkdir()
    for name in ("book", "chapters.yml"):
        os.rename(book_copy / name, first / name)
    assert lguest(first, "tangle").returncode == 0
    outputs = tangle(load_web(first))
    tangled = {path: data for path, data in snapshot(first).items() if path in outputs}
    committed = {path: data for path, data in snapshot(ROOT).items() if path in outputs}
    assert sorted(tangled) == sorted(outputs)
    assert tangled == committed
    second = tmp_path / "second"
    second.mkdir()
    (second / "book").symlink_to(first / "book")
    (second / "chapters.yml").symlink_to(first / "chapters.yml")
    env = dict(os.environ, PYTHONPATH=str(first / "src"))
    result = subprocess.run([sys.executable, "-c", "import lguest, sys; print(lguest.__file__)"],
                            env=env, capture_output=True, text=True, cwd=second)
    assert result.stdout.strip() == str(first / "src/lguest/__init__.py")
    assert lguest(second, "tangle", env=env).returncode == 0
    assert {p: d for p, d in snapshot(second).items() if p in outputs} == tangled


def test_where_on_the_real_package():
    tangled = (ROOT / "src/lguest/literate/tangle.py").read_text().split("\n")
    number = next(n for n, text in enumerate(tangled, 1) if text.startswith("def write_package"))
    result = lguest(ROOT, "where", f"src/lguest/literate/tangle.py:{number}")
    assert result.returncode == 0
    match = re.fullmatch(r"book/literate\.md:(\d+): «Write the package in one step» \(The bookbinding\)\n", result.stdout)
    assert match, result.stdout
    book = (ROOT / "book/literate.md").read_text().split("\n")
    assert book[int(match[1]) - 1] == tangled[number - 1]


def test_where_rejects_bad_locations(tmp_path):
    root = write_repo(tmp_path, {"one.md": HELLO, "two.md": MORE})
    lguest(root, "tangle")
    for location, message in (("nonsense", "expected FILE:LINE"),
                              ("src/lguest/hello.py:1", "no chunk covers this line"),
                              ("src/lguest/absent.py:3", "cannot read it")):
        result = lguest(root, "where", location)
        assert result.returncode == 1 and message in result.stderr
        assert len(result.stderr.strip().split("\n")) == 1


def test_stitch_carries_an_edit_into_the_book(book_copy):
    target = book_copy / "src/lguest/literate/tangle.py"
    target.write_text(target.read_text().replace("MAX_DEPTH = 100", "MAX_DEPTH = 64"))
    result = lguest(book_copy, "stitch")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "stitched book/literate.md"
    assert "MAX_DEPTH = 64\n" in (book_copy / "book/literate.md").read_text()
    assert lguest(book_copy, "tangle", "--check").returncode == 0
    assert lguest(book_copy, "stitch").stdout.startswith("nothing to stitch")


def test_stitch_of_a_nested_chunk_keeps_its_indentation(book_copy):
    target = book_copy / "src/lguest/literate/web.py"
    old = '                raise LiterateError(part.chapter, line, f"reference to undefined chunk «{name}»")'
    assert old in target.read_text()
    target.write_text(target.read_text().replace(old, old.replace("reference to", "a reference to")))
    assert lguest(book_copy, "stitch").returncode == 0
    book = (book_copy / "book/literate.md").read_text()
    assert '            raise LiterateError(part.chapter, line, f"a reference to undefined chunk' in book
    assert lguest(book_copy, "tangle", "--check").returncode == 0


def test_stitch_refuses_when_both_sides_changed(book_copy):
    target = book_copy / "src/lguest/literate/tangle.py"
    target.write_text(target.read_text().replace("MAX_DEPTH = 100", "MAX_DEPTH = 64"))
    chapter = book_copy / "book/literate.md"
    chapter.write_text(chapter.read_text().replace("MAX_DEPTH = 100", "MAX_DEPTH = 128"))
    before = snapshot(book_copy)
    result = lguest(book_copy, "stitch")
    assert result.returncode == 1
    assert re.fullmatch(r"src/lguest/literate/tangle\.py:\d+: «Expand a chunk» changed both here and in "
                        r"book/literate\.md:\d+ since the last tangle; keep one version and try again\n",
                        result.stderr)
    assert snapshot(book_copy) == before


@pytest.mark.parametrize("failing, call", [("mkstemp", 1), ("mkstemp", 2), ("replace", 1), ("replace", 2)])
def test_a_stitch_that_cannot_write_a_chapter_loses_no_edit(tmp_path, monkeypatch, failing, call):
    root = write_repo(tmp_path, {"one.md": HELLO, "two.md": MORE})
    write_package(root, tangle(load_web(root)))
    target = root / "src/lguest/hello.py"
    edited = (target.read_text().replace("Hello, Hero.", "Hello again, Hero.")
              .replace("Your Beer awaits.", "Your Beer is cold."))
    target.write_text(edited)
    module = tempfile if failing == "mkstemp" else os
    real, calls = getattr(module, failing), []

    def full(*args, **kwargs):
        calls.append(args)
        if len(calls) == call:
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(module, failing, full)
    with pytest.raises(LiterateError, match=r"^book/(one|two)\.md: cannot write it: No space left on device;"
                                            r" the edits are still in src/lguest, so run 'lguest stitch' again$"):
        stitch(root)
    monkeypatch.undo()
    assert target.read_text() == edited  # the package still holds the edits, markers and all
    assert not list((root / "book").glob(".stitch-*"))
    assert stitch(root)  # the retry finds what is left to carry
    assert "Hello again, Hero." in (root / "book/one.md").read_text()
    assert "Your Beer is cold." in (root / "book/two.md").read_text()
    assert drift(root, tangle(load_web(root))) == []
    assert stitch(root) == []


def test_stitch_refuses_an_edit_that_breaks_the_book(book_copy):
    target = book_copy / "src/lguest/literate/tangle.py"
    target.write_text(target.read_text().replace("MAX_DEPTH = 100", "    <<No such chunk>>"))
    before = snapshot(book_copy)
    result = lguest(book_copy, "stitch")
    assert result.returncode == 1
    assert "reference to undefined chunk «No such chunk»" in result.stderr
    assert snapshot(book_copy) == before


def test_the_book_tangles_without_drift():
    assert drift(ROOT, tangle(load_web(ROOT))) == []


def test_literate_error_format():
    assert str(LiterateError("book/a.md", 3, "boom")) == "book/a.md:3: boom"
    assert str(LiterateError("chapters.yml", None, "boom")) == "chapters.yml: boom"


def test_too_deep_nesting_is_an_error_not_a_crash(tmp_path):
    depth = tangle_module.MAX_DEPTH + 5
    chunks = [f"{FENCE}{{chunk}} Root\n:file: src/lguest/a.py\n\n<<C0>>\n{FENCE}\n"]
    chunks += [f"{FENCE}{{chunk}} C{i}\n<<C{i + 1}>>\n{FENCE}\n" for i in range(depth)]
    chunks.append(f"{FENCE}{{chunk}} C{depth}\nx = 1\n{FENCE}\n")
    line = _error_case(tmp_path, {"a.md": "\n".join(chunks)})
    assert "chunks nest more than" in line


def test_front_matter_comes_before_the_chapters_and_is_optional(tmp_path):
    from lguest.literate.book import read_book
    toc = ("cover:\n  id: cover\n  title: Cover\n  file: book/index.md\n"
           "front:\n  - id: read\n    title: Read me\n    file: book/read.md\n"
           "chapters:\n  - id: a\n    title: A\n    file: book/a.md\n"
           "appendix:\n  - id: z\n    title: Z\n    file: book/z.md\n")
    root = write_repo(tmp_path, {"read.md": "# Read me\n", "a.md": "# A\n", "z.md": "# Z\n"}, toc)
    book = read_book(root)
    assert [page.id for page in book.pages] == ["cover", "read", "a", "z"]
    assert [page.kind for page in book.pages] == ["cover", "front", "chapter", "appendix"]
    assert [page.id for page in book.chapters] == ["a"]
    (root / "chapters.yml").write_text(toc.replace("front:\n  - id: read\n    title: Read me\n"
                                                   "    file: book/read.md\n", "front: read\n"))
    with pytest.raises(LiterateError, match=r"chapters.yml:5: 'front' should be a list of pages"):
        read_book(root)


def test_the_real_book_reads_before_it_sets_out():
    from lguest.literate.book import read_book
    book = read_book(ROOT)
    assert [page.id for page in book.front] == ["reading"]
    assert book.pages.index(book.front[0]) == 1


# --- Jupyter Book's files: written from conf.py and chapters.yml, checked for staleness ------

def test_jupyter_books_files_agree_with_conf_and_chapters():
    result = lguest(ROOT, "book-config", "--check")
    assert result.returncode == 0, result.stderr


def test_a_changed_chapter_list_or_setting_makes_jupyter_books_files_stale(book_copy):
    for name in ("_config.yml", "book/_toc.yml"):
        (book_copy / name).write_bytes((ROOT / name).read_bytes())
    assert lguest(book_copy, "book-config", "--check").returncode == 0
    toc = book_copy / "chapters.yml"
    toc.write_text(toc.read_text().replace("  - id: bibliography\n", "  - id: references\n")
                   .replace("  - id: chunks\n    title: Index of chunks\n    file: book/chunks.md\n", "")
                   + "  - id: chunks\n    title: Index of chunks\n    file: book/chunks.md\n")
    conf = book_copy / "conf.py"
    conf.write_text(conf.read_text().replace("nb_execution_timeout = 600", "nb_execution_timeout = 900"))
    result = lguest(book_copy, "book-config", "--check")
    assert result.returncode == 1
    assert result.stderr.splitlines() == ["_config.yml is stale: run lguest book-config",
                                          "book/_toc.yml is stale: run lguest book-config"]
    written = lguest(book_copy, "book-config")
    assert written.stdout.splitlines() == ["wrote _config.yml", "wrote book/_toc.yml"]
    assert lguest(book_copy, "book-config", "--check").returncode == 0
    import yaml
    config = yaml.safe_load((book_copy / "_config.yml").read_text())["sphinx"]["config"]
    assert config["nb_execution_timeout"] == 900
    # Paths are relative to book/, where Jupyter Book resolves them, so the file is the same anywhere.
    assert config["lguest_root"] == ".." and config["html_static_path"] == ["_static"]
    assert config["bibtex_bibfiles"] == ["references.bib"]
    appendix = yaml.safe_load((book_copy / "book/_toc.yml").read_text())["parts"][-1]
    assert [entry["file"] for entry in appendix["chapters"]] == ["literate", "bibliography", "chunks"]


def test_a_broken_conf_py_is_one_line(book_copy):
    (book_copy / "conf.py").write_text("numfig = True\nraise ValueError('no such theme')\n")
    result = lguest(book_copy, "book-config", "--check")
    assert result.returncode == 1
    assert result.stderr.strip() == "conf.py: cannot run it: ValueError: no such theme"


KERNEL_RUN = """
import nbformat
from nbclient import NotebookClient
notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(6 * 7)")])
notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
seen = []
client = NotebookClient(notebook, timeout=120)
client.on_notebook_start = lambda **_: seen.append(type(client.km.provisioner).__name__)
client.execute()
print(notebook.cells[0].outputs[0]["text"].strip(), *seen)
"""


@pytest.mark.parametrize("provisioner", ["lguest-encrypted", None])
def test_the_book_builds_kernels_talk_encrypted(provisioner):
    from lguest.literate import kernels

    assert kernels.registered()
    env = {key: value for key, value in os.environ.items() if key != kernels.CHOOSE}
    if provisioner:
        env[kernels.CHOOSE] = provisioner
    result = subprocess.run([sys.executable, "-c", KERNEL_RUN], capture_output=True, text=True,
                            timeout=180, env=env)
    assert result.returncode == 0, result.stderr
    expected = "EncryptedProvisioner" if provisioner else "LocalProvisioner"
    assert result.stdout.split() == ["42", expected]
    # Without our provisioner ipykernel warns of plain-text TCP: the check can tell the difference.
    assert ("without encryption" in result.stderr) == (provisioner is None)


# --- Chapter snapshots: :replace:, lguest tangle --upto/--into, lguest milestone ------------

def chunk(name: str, body: str, *options: str) -> str:
    return f"\n{FENCE}{{chunk}} {name}\n" + "".join(f"{option}\n" for option in options) + body + f"{FENCE}\n"


GREET = "src/lguest/greet.py"
# Three chapters: the greeting is written, replaced and continued; the root is replaced last.
SNAPSHOTS = {
    "one.md": "# One\n" + chunk(GREET, "def main():\n    <<Greet>>\n", f":file: {GREET}")
              + chunk("Greet", "print('hello')\n<<Old helper>>\n") + chunk("Old helper", "print('old')\n"),
    "two.md": "# Two\n" + chunk("Greet", "print('welcome back')\n", ":replace:")
              + chunk("Greet", "print('and again')\n", ":append:"),
    "three.md": "# Three\n" + chunk(GREET, "def main():\n    <<Greet>>\n    return 3\n", ":replace:", f":file: {GREET}")
                + chunk("Greet", "print('one more')\n", ":append:"),
}


def code_of(text: str) -> list[str]:
    return [line for line in text.split("\n") if line and not line.lstrip().startswith("#")]


def test_each_snapshot_holds_the_latest_version_of_each_chunk(tmp_path):
    web = load_web(write_repo(tmp_path, SNAPSHOTS))
    one, two, three = (tangle(web, upto)[GREET] for upto in ("one", "two", "three"))
    assert code_of(one) == ["def main():", "    print('hello')", "    print('old')"]
    assert code_of(two) == ["def main():", "    print('welcome back')", "    print('and again')"]
    assert code_of(three) == ["def main():", "    print('welcome back')", "    print('and again')",
                              "    print('one more')", "    return 3"]
    assert tangle(web) == tangle(web, "three")
    assert "«Greet»[2] book/two.md:" in two and "«Greet»[1]" not in two
    # «Old helper», used only by the part that chapter two replaced, is not unused: it lives in one.
    assert web.chunks["Old helper"].users == [web.chunks["Greet"].parts[0]]


def test_tangle_upto_into_writes_a_snapshot_elsewhere_and_check_compares_it(tmp_path):
    root = write_repo(tmp_path / "repo", SNAPSHOTS)
    into = tmp_path / "out"
    result = lguest(root, "tangle", "--upto", "two", "--into", str(into))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"tangled {into}/src/lguest/greet.py", "1 of 1 files changed"]
    assert (into / GREET).read_text() == tangle(load_web(root), "two")[GREET]
    assert not (root / "src").exists()
    check = lguest(root, "tangle", "--check", "--upto", "two", "--into", str(into))
    assert check.returncode == 0 and "every chapter's snapshot tangles" in check.stdout
    assert lguest(root, "tangle", "--check", "--upto", "one", "--into", str(into)).stderr == (
        f"{into}/src/lguest/greet.py: differs from the book\n")
    # The last snapshot may go to the repository; an earlier one may not.
    refused = lguest(root, "tangle", "--upto", "one")
    assert refused.returncode == 1 and refused.stderr == (
        "src/lguest: holds the last chapter's snapshot only; write an earlier one elsewhere, with --into DIR\n")
    assert lguest(root, "tangle", "--upto", "one", "--into", str(root)).returncode == 1
    checked = lguest(root, "tangle", "--check", "--upto", "one")  # nothing to compare: it tangles
    assert (checked.returncode, checked.stdout) == (
        0, "the snapshot of one tangles (1 files), and so does every chapter's\n")
    assert not (root / "src").exists()
    assert lguest(root, "tangle", "--upto", "three").returncode == 0


def test_tangle_upto_an_unknown_chapter_is_one_line(tmp_path):
    root = write_repo(tmp_path, SNAPSHOTS)
    before = snapshot(root)
    result = lguest(root, "tangle", "--upto", "four", "--into", str(tmp_path / "out"))
    assert result.returncode == 1
    assert result.stderr == "chapters.yml: no chapter 'four'; the chapters are one, two, three\n"
    assert snapshot(root) == before and not (tmp_path / "out").exists()


def test_tangle_into_a_file_or_through_a_symbolic_link_is_refused(tmp_path):
    root = write_repo(tmp_path / "repo", SNAPSHOTS)
    afile = tmp_path / "afile"
    afile.write_text("mine\n")
    result = lguest(root, "tangle", "--upto", "one", "--into", str(afile))
    assert result.returncode == 1
    assert result.stderr == f"{afile}: not a directory: --into writes DIR/src/lguest\n"
    assert afile.read_text() == "mine\n"
    into, outside = tmp_path / "out", tmp_path / "outside"
    (into / "src/lguest").mkdir(parents=True)
    outside.mkdir()
    (into / GREET).symlink_to(outside / "greet.py")
    result = lguest(root, "tangle", "--upto", "one", "--into", str(into))
    assert result.returncode == 1
    assert result.stderr == (f"{into}/src/lguest/greet.py: a symbolic link (to {outside}/greet.py); the tangler"
                             " follows none, and writes nothing while one is in src/lguest: remove it\n")
    assert list(outside.iterdir()) == []
    (into / GREET).unlink()
    (into / "src/lguest").rmdir()
    (into / "src/lguest").symlink_to(outside)
    assert lguest(root, "tangle", "--upto", "one", "--into", str(into)).returncode == 1
    assert list(outside.iterdir()) == []


SNAPSHOT_ERRORS = {
    "replace in the same chapter": (
        {"a.md": ROOT_CHUNK + chunk("Body", "x = 1\n") + chunk("Body", "x = 2\n", ":replace:")},
        "book/a.md:11: «Body» is replaced here, but book/a.md:7 is in the same snapshot: :replace: supersedes"
        " only what an earlier chapter wrote; edit that part instead"),
    "replace after an append of the same chapter": (
        {"a.md": ROOT_CHUNK + chunk("Body", "x = 1\n"),
         "b.md": chunk("Body", "x = 2\n", ":append:") + chunk("Body", "x = 3\n", ":replace:")},
        "book/b.md:7: «Body» is replaced here, but book/b.md:2 is in the same snapshot"),
    "replace of nothing": (
        {"a.md": ROOT_CHUNK + chunk("Body", "x = 1\n", ":replace:")},
        "book/a.md:7: «Body» is replaced here, but no chunk of that name comes before it"),
    "replace and append at once": (
        {"a.md": ROOT_CHUNK + chunk("Body", "x = 1\n"), "b.md": chunk("Body", "x = 2\n", ":append:", ":replace:")},
        "book/b.md:4: a part either continues a chunk (:append:) or replaces it (:replace:), not both"),
    "a replacement moves its root": (
        {"a.md": ROOT_CHUNK + chunk("Body", "x = 1\n"),
         "b.md": chunk("Root", "y = 1\n", ":replace:", ":file: src/lguest/b.py")},
        "book/b.md:2: «Root» is tangled to src/lguest/a.py: a part that replaces it cannot make it src/lguest/b.py"),
    "an appendix continues a chapter's chunk": (
        {"a.md": ROOT_CHUNK + chunk("Body", "x = 1\n"), "z.md": chunk("Body", "x = 2\n", ":append:")},
        "book/z.md:2: «Body» is continued here, but no chunk of that name comes before it (this page is in"
        " every snapshot, so it comes before every chapter)"),
}
APPENDIX_TOC = ("cover:\n  id: cover\n  title: Cover\n  file: book/index.md\n"
                "chapters:\n  - id: a\n    title: A\n    file: book/a.md\n"
                "appendix:\n  - id: z\n    title: Z\n    file: book/z.md\n")


@pytest.mark.parametrize("case", sorted(SNAPSHOT_ERRORS))
def test_replacement_mistakes_are_one_line_and_write_nothing(tmp_path, case):
    chapters, expected = SNAPSHOT_ERRORS[case]
    assert _error_case(tmp_path, chapters, APPENDIX_TOC if "z.md" in chapters else None).startswith(expected)


FORWARD = {"launcher.md": "# Launcher\n\n" + chunk("src/lguest/launch.py", "<<Launch>>\n", ":file: src/lguest/launch.py")
                          + "\nProse.\n" + chunk("Launch", "start()\n<<Plug in the disks>>\n"),
           "drivers.md": "# Drivers\n" + chunk("Plug in the disks", "plug()\n")}


def test_a_forward_reference_is_refused_by_its_snapshot_and_by_check(tmp_path):
    root = write_repo(tmp_path, FORWARD)
    message = ("book/launcher.md:13: «Launch» uses «Plug in the disks», which book/drivers.md:3"
               " defines later\n")
    web = load_web(root)  # the last snapshot is fine: the Drivers have happened by then
    assert "plug()" in tangle(web)["src/lguest/launch.py"]
    with pytest.raises(LiterateError) as error:
        tangle(web, "launcher")
    assert f"{error.value}\n" == message
    assert lguest(root, "tangle").returncode == 0  # it writes the last snapshot, which tangles
    result = lguest(root, "tangle", "--check")
    assert result.returncode == 1 and result.stderr == message
    result = lguest(root, "tangle", "--upto", "launcher", "--into", str(tmp_path / "out"))
    assert result.returncode == 1 and result.stderr == message
    assert not (tmp_path / "out").exists()


def test_a_cycle_only_an_earlier_snapshot_has_is_found_by_check(tmp_path):
    chapters = {"a.md": ROOT_CHUNK + chunk("Body", "<<Loop>>\n") + chunk("Loop", "<<Body>>\n"),
                "b.md": chunk("Loop", "x = 1\n", ":replace:")}
    root = write_repo(tmp_path, chapters)
    assert lguest(root, "tangle").returncode == 0
    result = lguest(root, "tangle", "--check")
    assert result.returncode == 1
    assert result.stderr == "book/a.md:12: reference cycle: «Body» → «Loop» → «Body»\n"


def test_appendix_pages_are_in_every_snapshot(tmp_path):
    chapters = {"a.md": chunk("Body", "x = 2\n", ":append:"),
                "b.md": chunk("Body", "x = 3\n", ":replace:"),
                "z.md": chunk("src/lguest/z.py", "<<Body>>\n", ":file: src/lguest/z.py") + chunk("Body", "x = 1\n")}
    toc = APPENDIX_TOC + "  - id: b\n    title: B\n    file: book/b.md\n"
    toc = toc.replace("appendix:\n", "  - id: b\n    title: B\n    file: book/b.md\nappendix:\n").rsplit("  - id: b", 1)[0]
    web = load_web(write_repo(tmp_path, chapters, toc))
    assert code_of(tangle(web, "a")["src/lguest/z.py"]) == ["x = 1", "x = 2"]
    assert code_of(tangle(web, "b")["src/lguest/z.py"]) == ["x = 3"]


def test_where_names_the_chapter_and_stitch_finds_a_replacement(tmp_path):
    root = write_repo(tmp_path, SNAPSHOTS)
    assert lguest(root, "tangle").returncode == 0
    target = root / GREET
    lines = target.read_text().split("\n")
    number = lines.index("    print('and again')") + 1
    result = lguest(root, "where", f"{GREET}:{number}")
    assert result.stdout == "book/two.md:10: «Greet» (Two)\n"
    target.write_text(target.read_text().replace("print('welcome back')", "print('welcome home')"))
    result = lguest(root, "stitch")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "stitched book/two.md\n"
    assert "print('welcome home')" in (root / "book/two.md").read_text()
    assert "print('hello')" in (root / "book/one.md").read_text()  # the superseded part is untouched
    assert lguest(root, "tangle", "--check").returncode == 0


def test_read_back_counts_a_replaced_chunk_used_twice_in_a_row_twice(tmp_path):
    from lguest.literate.stitch import read_tangled
    chapters = dict(SNAPSHOTS, **{"three.md": "# Three\n" + chunk(GREET, "<<Greet>>\n<<Greet>>\n", ":replace:")})
    root = write_repo(tmp_path, chapters)
    text = tangle(load_web(root))[GREET]
    occurrences, _ = read_tangled(GREET, text)
    assert occurrences[0].lines == ["<<Greet>>", "<<Greet>>"]


# lguest milestone: a chapter's snapshot, run alone

def milestone_book(one: str, two: str | None = None) -> dict[str, str]:
    init = chunk("src/lguest/__init__.py", '"""A tiny package."""\n', ":file: src/lguest/__init__.py")
    book = {"one.md": "# One\n" + init + chunk("src/lguest/milestone.py", one, ":file: src/lguest/milestone.py")}
    if two is not None:
        book["two.md"] = "# Two\n" + chunk("src/lguest/milestone.py", two, ":replace:")
    return book


REPORT = ("import sys, lguest\n\ndef main():\n    print('file', lguest.__file__)\n"
          "    print('isolated', sys.flags.isolated, 'book', sys.argv[1])\n    return 3\n")


def test_milestone_runs_its_snapshot_alone_and_passes_its_status_through(tmp_path):
    root = write_repo(tmp_path / "repo", milestone_book("def main():\n    print('one')\n    return 0\n", REPORT))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = dict(os.environ, TMPDIR=str(scratch), PYTHONPATH=str(ROOT / "src"))
    result = lguest(root, "milestone", "two", env=env)
    assert result.returncode == 3, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"file {scratch}/lguest-milestone-") and lines[0].endswith("/src/lguest/__init__.py")
    assert lines[1] == f"isolated 1 book {root}"
    assert list(scratch.iterdir()) == []  # the scratch directory is gone
    result = lguest(root, "milestone", "one", env=env)
    assert (result.returncode, result.stdout) == (0, "one\n")


def test_milestone_refuses_in_one_line(tmp_path):
    root = write_repo(tmp_path / "a", dict(milestone_book("def main():\n    return 0\n"), **{"two.md": "# Two\n"}))
    result = lguest(root, "milestone", "two")
    assert result.returncode == 1
    assert result.stderr == ("book/two.md: Two has no milestone of its own yet: its src/lguest/milestone.py"
                             " is the one of book/one.md:8\n")
    bare = write_repo(tmp_path / "b", {"one.md": "# One\n" + chunk("src/lguest/x.py", "x = 1\n", ":file: src/lguest/x.py")})
    result = lguest(bare, "milestone", "one")
    assert result.returncode == 1 and result.stderr == (
        "book/one.md: the snapshot of One has no milestone: no chunk is tangled to src/lguest/milestone.py\n")
    broken = write_repo(tmp_path / "c", milestone_book("<<Nothing>>\n"))
    result = lguest(broken, "milestone", "one")
    assert result.returncode == 1 and result.stderr == "book/one.md:10: reference to undefined chunk «Nothing»\n"
    assert lguest(bare, "milestone", "zero").stderr == "chapters.yml: no chapter 'zero'; the chapters are one\n"


def test_milestone_without_a_package_init_never_runs_the_installed_package(tmp_path):
    book = milestone_book(REPORT)
    book["one.md"] = book["one.md"].replace(":file: src/lguest/__init__.py", ":file: src/lguest/init.py")
    root = write_repo(tmp_path, book)
    result = lguest(root, "milestone", "one")
    assert result.returncode == 1
    assert result.stderr.startswith("lguest milestone: lguest came from ") and "not the snapshot" in result.stderr
    assert "file " not in result.stdout


def test_milestone_removes_its_scratch_directory_on_ctrl_c(tmp_path):
    slow = ("import os\nimport time\n\ndef main():\n    print('ready', os.getpid(), flush=True)\n"
            "    time.sleep(60)\n    return 0\n")
    root = write_repo(tmp_path / "repo", milestone_book(slow))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = dict(os.environ, TMPDIR=str(scratch))
    process = subprocess.Popen([sys.executable, "-m", "lguest", "milestone", "one"], cwd=root, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    word, pid = process.stdout.readline().split()
    assert word == "ready"
    assert len(list(scratch.iterdir())) == 1
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == -signal.SIGINT
    assert list(scratch.iterdir()) == []
    assert not Path(f"/proc/{pid}").exists()  # the milestone itself was stopped and reaped


# The real book: every chapter's milestone runs. A chapter listed here has not replaced
# Preparation's milestone yet, so its test must fail; adding a milestone makes it pass, and
# strict xfail then fails until the chapter is removed from this list.
WITHOUT_A_MILESTONE_YET: set[str] = set()
BOOK_CHAPTERS = [page.id for page in read_book(ROOT).chapters]


@pytest.mark.parametrize("chapter", [
    pytest.param(chapter, marks=pytest.mark.xfail(strict=True, reason="no milestone of its own yet"))
    if chapter in WITHOUT_A_MILESTONE_YET else chapter for chapter in BOOK_CHAPTERS])
def test_every_chapter_milestone_runs(chapter):
    result = subprocess.run([sys.executable, "-m", "lguest", "milestone", chapter], cwd=ROOT,
                            capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


def test_the_list_of_chapters_without_a_milestone_names_chapters():
    assert WITHOUT_A_MILESTONE_YET <= set(BOOK_CHAPTERS)


def test_every_chapter_snapshot_of_the_real_book_tangles():
    from lguest.literate.tangle import tangle_every_snapshot
    assert tangle_every_snapshot(load_web(ROOT)) == len(BOOK_CHAPTERS)


def test_the_weaver_links_a_replacement_and_what_it_replaces(tmp_path):
    chapters = dict(SNAPSHOTS, **{"chunks.md": "# Index\n\n```{chunk-index}\n```\n"})
    root = write_repo(tmp_path, chapters, toc=None)
    toc = (root / "chapters.yml").read_text().replace("  - id: chunks\n    title: Chunks\n    file: book/chunks.md\n", "")
    (root / "chapters.yml").write_text(toc + "appendix:\n  - id: chunks\n    title: Index\n    file: book/chunks.md\n")
    (root / "conf.py").write_text("extensions = ['myst_nb', 'lguest.literate.weave']\nroot_doc = 'index'\n"
                                  "lguest_root = '..'\nsuppress_warnings = ['toc.not_included']\n")
    result = subprocess.run([sys.executable, "-m", "sphinx", "-W", "-q", "-b", "html", "-c", str(root),
                             str(root / "book"), str(root / "_build")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    one, two = ((root / "_build" / f"{name}.html").read_text() for name in ("one", "two"))
    # The first «Greet» is superseded in chapter two; the replacement links back to it.
    assert 'A later chapter replaces this part: <a href="two.html#chunk-greet-2">Two (2)</a>.' in one
    assert '<span class="lguest-chunk-replaces">replaces</span>' in two
    assert ('Replaces «Greet» as it stood before this chapter: <a href="one.html#chunk-greet">One (1)</a>.'
            in two)
    index = (root / "_build" / "chunks.html").read_text()
    assert '<a href="two.html#chunk-greet-2">Two</a> (replaces)' in index


def test_the_first_guest_boots_within_the_first_400_lines_of_the_book():
    """Cover, front matter and Preparation: a reader meets a running guest before line 400."""
    read = 0
    book = read_book(ROOT)
    for page in [book.cover, *book.front, *book.chapters]:
        text = (ROOT / page.path).read_text()
        cells = re.finditer(r"^```\{code-cell\}[^\n]*\n(.*?)^```$", text, re.S | re.M)
        first = next((cell for cell in cells if "launch(" in cell[1]), None)
        if first is not None:
            read += text[:first.start()].count("\n")
            break
        read += text.count("\n")
    assert first is not None and read <= 400, read
    assert (ROOT / "book/preparation.md").read_text().count("\n") <= 400


def test_a_web_made_by_hand_takes_its_pages_as_chapters_in_the_order_met():
    from lguest.literate.web import Web, parse_chapter
    web = Web()
    for path, text in (("book/a.md", ROOT_CHUNK + chunk("Body", "x = 1\n")),
                       ("book/b.md", chunk("Body", "x = 2\n", ":replace:"))):
        for part in parse_chapter(path, text):
            web.add(part)
    web.check()
    assert [part.rank for part in web.parts] == [1, 1, 2]
    assert code_of(tangle(web)["src/lguest/a.py"]) == ["x = 2"]
    late = parse_chapter("book/a.md", chunk("Body", "x = 3\n", ":append:"))[0]
    with pytest.raises(LiterateError, match=r"^book/a.md:2: parts come in snapshot order"):
        web.add(late)


# --- A chapter of several pages -------------------------------------------------------------

PAGES_TOC = ("cover:\n  id: cover\n  title: Cover\n  file: book/index.md\n"
             "chapters:\n"
             "  - id: a\n    title: A\n    file: book/a.md\n"
             "  - id: b\n    title: B\n    file: book/b.md\n"
             "    pages:\n"
             "      - id: b-more\n        title: More of B\n        file: book/b-more.md\n"
             "      - id: b-last\n        title: The last of B\n        file: book/b-last.md\n"
             "  - id: c\n    title: C\n    file: book/c.md\n")
PAGES = {"a.md": "# A\n" + chunk(GREET, "<<Greet>>\n", f":file: {GREET}") + chunk("Greet", "x = 'a'\n"),
         "b.md": "# B\n" + chunk("Greet", "x = 'b'\n<<Helper>>\n", ":replace:"),
         "b-more.md": "# More\n" + chunk("Helper", "y = 'b-more'\n"),  # used from b.md, one page back
         "b-last.md": "# Last\n" + chunk("Helper", "z = 'b-last'\n", ":append:"),
         "c.md": "# C\n" + chunk("Helper", "w = 'c'\n", ":replace:")}


def test_a_chapters_pages_make_one_snapshot_read_in_order(tmp_path):
    root = write_repo(tmp_path, PAGES, PAGES_TOC)
    book = read_book(root)
    assert [page.id for page in book.chapters] == ["a", "b", "c"]
    assert [page.id for page in book.pages] == ["cover", "a", "b", "b-more", "b-last", "c"]
    assert book.chapters[1].files == ["book/b.md", "book/b-more.md", "book/b-last.md"]
    assert book.chapter_of("book/b-last.md") is book.chapters[1]
    web = load_web(root)
    assert code_of(tangle(web, "a")[GREET]) == ["x = 'a'"]
    assert code_of(tangle(web, "b")[GREET]) == ["x = 'b'", "y = 'b-more'", "z = 'b-last'"]
    assert code_of(tangle(web, "c")[GREET]) == ["x = 'b'", "w = 'c'"]
    assert lguest(root, "tangle", "--check", "--upto", "b").returncode == 0


def test_jupyter_books_table_lists_a_chapters_pages_as_its_sections(tmp_path):
    from lguest.literate.jupyterbook import table_of_contents

    toc = yaml.safe_load(table_of_contents(read_book(write_repo(tmp_path, PAGES, PAGES_TOC))))
    assert toc["parts"][0]["chapters"] == [
        {"file": "a"}, {"file": "b", "sections": [{"file": "b-more"}, {"file": "b-last"}]},
        {"file": "c"}]


def test_a_chapters_digest_covers_every_page(tmp_path):
    from lguest.mastery.progress import chapter_digest

    root = write_repo(tmp_path, PAGES, PAGES_TOC)
    single, several = read_book(root).chapters[0], read_book(root).chapters[1]
    assert chapter_digest(root, single) == hashlib.sha256((root / "book/a.md").read_bytes()).hexdigest()
    before = chapter_digest(root, several)
    (root / "book" / "b-last.md").write_text("# Last, changed\n" + chunk("Helper", "z = 1\n", ":append:"))
    assert chapter_digest(root, several) != before


@pytest.mark.parametrize("pages, expected", [
    ("    pages: []\n", "chapters.yml:9: 'pages' should be a list of pages"),
    ("    pages:\n      - id: b-more\n        title: M\n        file: book/b-more.md\n"
     "        pages:\n          - id: deep\n            title: D\n            file: book/b-last.md\n",
     "chapters.yml:12: book/b-more.md: a page of a chapter cannot have pages of its own"),
    ("    pages:\n      - id: b-more\n        title: M\n        file: book/b-gone.md\n",
     "chapters.yml:12: book/b-gone.md does not exist"),
    ("    pages:\n      - id: b\n        title: M\n        file: book/b-more.md\n",
     "chapters.yml:12: 'b' is listed twice (also at line 8)"),
])
def test_pages_mistakes_are_one_line(tmp_path, pages, expected):
    toc = ("cover:\n  id: cover\n  title: Cover\n  file: book/index.md\nchapters:\n"
           "  - id: b\n    title: B\n    file: book/b.md\n" + pages)
    chapters = {"b.md": "# B\n", "b-more.md": "# More\n", "b-last.md": "# Last\n"}
    root = write_repo(tmp_path, chapters, toc)
    with pytest.raises(LiterateError) as error:
        read_book(root)
    assert str(error.value) == expected
