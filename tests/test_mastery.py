"""Mastery: the quests, the progress record and the Beer, on copies of the book, with a
temporary home and state directory. The shipped book holds no solutions, so every check fails
on it; each test that needs a quest done applies that chapter's reference solution (the edits in
tools/quests/solutions, drawn as the diff folded into its Quest section) to the copy with GNU
patch, exactly as a reader could."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from lguest.literate.book import read_book
from lguest.mastery.solutions import StaleSolution, solution_diff

CHAPTERS = [chapter.id for chapter in read_book(ROOT).chapters]
CODE = re.compile(r"\b[0-9A-F]{4}(?:-[0-9A-F]{4}){4}\b")


def solution(root: Path, chapter: str) -> str:
    return solution_diff(root, chapter)


def apply_solution(root: Path, chapter: str) -> None:
    result = subprocess.run(["patch", "-p1", "--no-backup-if-mismatch", "--forward"], cwd=root,
                            input=solution(root, chapter), capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


class Reader:
    """A reader with a copy of the book, a home of their own and an empty record."""

    def __init__(self, root: Path, home: Path):
        self.root, self.state = root, home / "state"
        shutil.copytree(ROOT / "tools" / "quests", root / "tools" / "quests")
        self.env = dict(os.environ, HOME=str(home), LGUEST_STATE_DIR=str(self.state),
                        PYTHONPATH=str(root / "src"))
        self.env.pop("XDG_STATE_HOME", None)

    def lguest(self, *args: str, input: str = "") -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "lguest", *args], cwd=self.root, env=self.env,
                              input=input, capture_output=True, text=True, timeout=1200)

    def solve(self, chapter: str) -> None:
        apply_solution(self.root, chapter)
        result = self.lguest("tangle")
        assert result.returncode == 0, result.stderr

    def check(self, chapter: str) -> str:
        result = self.lguest("quest", "check", chapter)
        assert result.returncode == 0, result.stderr
        return result.stdout

    @property
    def progress_file(self) -> Path:
        return self.state / "progress.json"


@pytest.fixture
def reader(book_copy, tmp_path_factory) -> Reader:
    return Reader(book_copy, tmp_path_factory.mktemp("home"))


def test_every_chapter_has_a_quest_a_check_and_a_solution():
    from lguest.mastery.quests import QUESTS

    assert list(QUESTS) == CHAPTERS
    last_pages = {page.id: page.files[-1] for page in read_book(ROOT).chapters}
    for chapter in CHAPTERS:
        text = (ROOT / last_pages[chapter]).read_text()  # the quest ends the chapter's last page
        quest = text[text.index("\n## Quest\n"):]
        folds = re.findall(r"^:::\{dropdown\} (.+)$", quest, re.M)
        assert folds == ["Hint", "Another hint", "Solution"], (chapter, folds)
        assert f"```{{quest-solution}} {chapter}\n```" in quest.split(":::{dropdown} Solution")[1]
        assert "```diff" not in text  # no hand-made diffs: the build draws them from the edits
        assert solution(ROOT, chapter).startswith("--- a/book/")
        assert "reached_the_end(" in text.rsplit("```{code-cell}", 1)[1]  # the last cell


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_each_check_fails_as_shipped_and_passes_with_its_solution(reader, chapter):
    result = reader.lguest("quest", "check", chapter)
    assert result.returncode == 1, (chapter, result.stdout)
    reader.solve(chapter)
    result = reader.lguest("quest", "check", chapter)
    assert result.returncode == 0, (chapter, result.stderr)
    assert "quest complete: " in result.stdout



def test_with_every_quest_solved_every_chapter_still_ends_with_its_machine_running(reader):
    """A solution edits the chapter that owns each line it changes, and a line an earlier
    chapter's snapshot holds must still work there: Mastery's call gates once had the Host
    chapter's SET_STACK call the Switcher, and the Host's milestone died of it."""
    for chapter in CHAPTERS:
        reader.solve(chapter)
    result = reader.lguest("tangle", "--check")
    assert result.returncode == 0, result.stdout + result.stderr
    for chapter in CHAPTERS:
        result = reader.lguest("milestone", chapter)
        assert result.returncode == 0, (chapter, result.stdout[-2000:], result.stderr[-2000:])


def test_a_call_gate_with_no_task_register_is_a_verdict_not_a_crash(reader):
    """Unicorn aborts the process when a call gate finds no TSS: the check must survive it."""
    reader.solve("mastery")
    switcher = reader.root / "book" / "switcher.md"
    text = switcher.read_text()
    line = next(line for line in text.splitlines(keepends=True) if "UC_X86_REG_TR, (" in line)
    switcher.write_text(text.replace(line, ""))
    assert reader.lguest("tangle").returncode == 0
    result = reader.lguest("quest", "check", "mastery")
    assert result.returncode == 1, (result.stdout, result.stderr)
    verdict, = result.stderr.splitlines()
    assert verdict.startswith("Mastery: not done yet: ") and "no valid task-state segment" in verdict

def test_a_solution_that_no_longer_fits_is_named_not_drawn(reader):
    from lguest.mastery.solutions import read_edits, solution_file

    first = read_edits(solution_file(ROOT, "host"))[0]
    host = reader.root / "book" / "host.md"
    shipped = host.read_text()
    host.write_text(shipped.replace(first.old, first.old.replace("\n", "\n\n", 1)))
    with pytest.raises(StaleSolution, match=rf"host.edits:{first.line}: .* occurs 0 times in "
                                            r"book/host.md, not once"):
        solution(reader.root, "host")
    result = reader.lguest("quest", "solution", "host")
    assert result.returncode == 1 and result.stderr.startswith(f"lguest: host.edits:{first.line}:")
    # A change elsewhere in the chapter only moves the diff: it is drawn afresh, and applies.
    title = shipped.index("\n# ") + 1
    moved_book = shipped[:title] + "A new paragraph, to move every line below.\n\n" + shipped[title:]
    host.write_text(moved_book)
    moved = reader.lguest("quest", "solution", "host")
    assert moved.returncode == 0 and moved.stdout != solution(ROOT, "host")
    reader.solve("host")
    assert host.read_text() != moved_book


def test_the_shipped_book_fails_every_check_and_records_nothing(reader):
    for chapter in CHAPTERS:
        result = reader.lguest("quest", "check", chapter)
        assert result.returncode == 1, (chapter, result.stdout)
        line, = result.stderr.splitlines()
        assert re.fullmatch(r"[A-Z][a-z]+: not done yet: .+", line), line
    assert not reader.progress_file.exists()
    result = reader.lguest("beer")
    assert result.returncode == 1
    assert result.stderr.startswith(f"lguest: no progress recorded yet in {reader.progress_file}")
    assert "lguest quest check preparation" in result.stderr
    table = reader.lguest("progress").stdout
    assert "0 of 7 quests done" in table and "to do: A tickless sleep" in table


def test_the_whole_journey_ends_in_a_verified_beer(reader):
    for chapter in CHAPTERS:
        reader.solve(chapter)
        assert "quest complete: " in reader.check(chapter)
    # Mastery's solution changed the Guest, Host and Switcher chapters after their quests passed,
    # and their quests still pass on top of it.
    result = reader.lguest("beer")
    assert result.returncode == 1
    for name in ("Guest", "Host", "Switcher"):
        assert f"{name}: book/{name.lower()}.md has changed since its quest passed" in result.stderr
    assert "Launcher" not in result.stderr
    for chapter in ("guest", "host", "switcher"):
        assert "quest complete: " in reader.check(chapter)
    table = reader.lguest("progress").stdout
    assert "7 of 7 quests done" in table and "two more seconds cost" in table

    result = reader.lguest("beer", "--name", "Ada Lovelace")
    assert result.returncode == 0, result.stderr
    assert "THE BEER" in result.stdout and "Ada Lovelace" in result.stdout
    code = CODE.search(result.stdout)[0]
    verified = reader.lguest("beer", "--verify", code)
    assert (verified.returncode, verified.stdout.strip()) == (0, f"valid: a Beer for Ada Lovelace, "
                                                                 f"issued {json.loads(reader.progress_file.read_text())['voucher']['date']}")
    assert reader.lguest("beer", "--verify", code.lower().replace("-", "")).returncode == 0
    wrong = reader.lguest("beer", "--verify", "0000-0000-0000-0000-0000")
    assert wrong.returncode == 1 and "is not the code of the voucher issued here" in wrong.stderr

    # The guest gets the voucher through the BEER hypercall.
    result = reader.lguest("run", "--deterministic", "16", input="beer\npoweroff\n")
    assert result.returncode == 0, result.stderr
    assert "Ada Lovelace" in result.stdout and code in result.stdout

    # A record edited by hand no longer verifies, and neither does the guest get a Beer.
    honest = reader.progress_file.read_text()
    record = json.loads(honest)
    record["chapters"]["switcher"]["quest"]["detail"] = "a million crossings, none of them flushed"
    reader.progress_file.write_text(json.dumps(record))
    forged = reader.lguest("beer", "--verify", code)
    assert forged.returncode == 1 and "progress record is not the one" in forged.stderr
    result = reader.lguest("run", "--deterministic", "16", input="beer\npoweroff\n")
    assert "No Beer yet" in result.stdout and code not in result.stdout
    reader.progress_file.write_text(honest)
    assert reader.lguest("beer", "--verify", code).returncode == 0

    # So does a changed chapter, even a change to its prose.
    switcher = reader.root / "book" / "switcher.md"
    switcher.write_text(switcher.read_text() + "\nA footnote, added after the Beer.\n")
    changed = reader.lguest("beer", "--verify", code)
    assert changed.returncode == 1
    assert changed.stderr.strip() == "book/switcher.md changed since the voucher was issued"
    result = reader.lguest("beer")
    assert result.returncode == 1 and "Switcher: book/switcher.md has changed" in result.stderr


def test_the_build_draws_the_diff_and_refuses_a_stale_one(reader):
    page = reader.root / "book" / "page.md"
    page.write_text("# A page\n\n:::{dropdown} Solution\n```{quest-solution} switcher\n```\n:::\n")
    (reader.root / "conf.py").write_text(
        f"extensions = ['myst_parser', 'sphinx_design', 'lguest.mastery.solutions']\n"
        f"root_doc = 'page'\nmyst_enable_extensions = ['colon_fence']\n"
        f"lguest_root = '..'\n"  # from the book's folder, as Jupyter Book's _config.yml has it
        f"exclude_patterns = {[p.name for p in (reader.root / 'book').glob('*.md') if p != page]!r}\n")

    def build() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "sphinx", "-W", "-q", "-b", "html", "-c",
                               str(reader.root), str(reader.root / "book"),
                               str(reader.root / "_build")], capture_output=True, text=True,
                              env=reader.env, timeout=300)

    result = build()
    assert result.returncode == 0, result.stderr
    html = (reader.root / "_build" / "page.html").read_text()
    assert "UC_CTL_TLB_FLUSH" in html and "b/book/switcher.md" in html
    switcher = reader.root / "book" / "switcher.md"
    switcher.write_text(switcher.read_text().replace("    def write_gdt(self) -> None:",
                                                     "    def write_gdt(self)->None:"))
    result = build()
    assert result.returncode != 0
    assert "the solution of 'switcher' does not fit the book: switcher.edits:" in result.stderr


def test_drift_and_failing_checks_are_named(reader):
    diff = solution(reader.root, "preparation")
    reader.solve("preparation")
    reader.check("preparation")
    cli = reader.root / "src" / "lguest" / "cli.py"
    cli.write_text(cli.read_text() + "\n# an edit made behind the book's back\n")
    result = reader.lguest("quest", "check", "launcher")
    assert result.returncode == 1
    assert "src/lguest does not match the book (src/lguest/cli.py: differs from the book)" in result.stderr
    result = reader.lguest("beer")
    assert "  - drift: src/lguest/cli.py: differs from the book (lguest tangle)" in result.stderr
    assert "  - Launcher: its quest is not done yet (then: lguest quest check launcher)" in result.stderr
    # A check that passed once but fails now: the :until: option is taken out of the appendix again.
    assert reader.lguest("tangle").returncode == 0
    apply_reverse = subprocess.run(["patch", "-p1", "-R", "--no-backup-if-mismatch"], cwd=reader.root,
                                   input=diff, capture_output=True,
                                   text=True)
    assert apply_reverse.returncode == 0, apply_reverse.stdout
    assert reader.lguest("tangle").returncode == 0
    record = json.loads(reader.progress_file.read_text())
    result = reader.lguest("beer")
    assert ("Preparation: its check fails now: the tangler does not know the option :until: yet"
            in result.stderr)
    assert json.loads(reader.progress_file.read_text()) == record  # beer records nothing


def test_unknown_chapter_and_bad_record_are_one_line(reader):
    result = reader.lguest("quest", "check", "epilogue")
    assert result.returncode == 2
    assert result.stderr == ("lguest: no chapter 'epilogue'; the chapters are preparation, launcher, "
                             "guest, host, switcher, drivers, mastery\n")
    result = reader.lguest("quest", "solution", "epilogue")
    assert result.returncode == 2 and result.stderr.startswith("lguest: no solution for 'epilogue'")
    assert len(result.stderr.splitlines()) == 1
    reader.state.mkdir(parents=True)
    reader.progress_file.write_text("{not json")
    for command in (("progress",), ("beer",), ("beer", "--verify", "1234")):
        result = reader.lguest(*command)
        assert result.returncode == 1
        line, = result.stderr.splitlines()
        assert line.startswith(f"lguest: {reader.progress_file} is not JSON")
    reader.progress_file.write_text('{"version": 99, "chapters": {}}')
    result = reader.lguest("progress")
    assert "is not a progress file of this lguest" in result.stderr


def test_the_state_directory_follows_xdg(monkeypatch, tmp_path):
    from lguest.mastery import progress

    monkeypatch.delenv("LGUEST_STATE_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert progress.progress_path() == tmp_path / "xdg" / "lguest" / "progress.json"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/is/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert progress.progress_path() == tmp_path / "home" / ".local" / "state" / "lguest" / "progress.json"
    monkeypatch.setenv("LGUEST_STATE_DIR", str(tmp_path / "override"))
    assert progress.progress_path() == tmp_path / "override" / "progress.json"


def test_the_last_cell_records_reading_but_not_in_a_book_build(monkeypatch, tmp_path, capsys):
    from lguest.mastery import progress

    monkeypatch.setenv("LGUEST_STATE_DIR", str(tmp_path))
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("LGUEST_BOOK_BUILD", "1")
    progress.reached_the_end("host")
    assert "nothing was recorded" in capsys.readouterr().out
    assert not (tmp_path / "progress.json").exists()
    monkeypatch.delenv("LGUEST_BOOK_BUILD")
    progress.reached_the_end("host")
    assert "The end of Host: recorded as read" in capsys.readouterr().out
    record = json.loads((tmp_path / "progress.json").read_text())
    assert list(record["chapters"]) == ["host"] and "read" in record["chapters"]["host"]
    assert "quest" not in record["chapters"]["host"]


def test_the_guest_has_no_beer_without_a_voucher(guest, tmp_path):
    from conftest import run_guest
    from lguest.guest import build_kernel

    result = run_guest(build_kernel(), input="beer\npoweroff\n", flags=("--deterministic",))
    assert result.returncode == 0, result.stderr
    assert "No Beer yet: the Host has no voucher to hand over." in result.stdout


def test_a_long_voucher_is_cut_to_the_guest_buffer():
    import io

    from lguest.guest import build_kernel
    from lguest.launcher import launch

    console = io.BytesIO()
    voucher = b"".join(b"%05d beer\n" % line for line in range(1000))  # 11000 bytes
    status = launch(16, build_kernel(), [], console=console, deterministic=True, voucher=voucher,
                    console_input=io.BytesIO(b"beer\npoweroff\n"))
    transcript = console.getvalue()
    assert status == 0
    assert voucher[:4096] in transcript and voucher[:4097] not in transcript


def test_the_name_on_the_voucher_comes_from_git_or_the_login(monkeypatch, tmp_path):
    from lguest.mastery.voucher import default_name

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.delenv("GIT_CONFIG_GLOBAL", raising=False)
    monkeypatch.setenv("LOGNAME", "hero")
    (tmp_path / ".gitconfig").write_text("[user]\n\tname = Grace Hopper\n")
    assert default_name(tmp_path) == "Grace Hopper"
    (tmp_path / ".gitconfig").unlink()
    assert default_name(tmp_path) == "hero"
