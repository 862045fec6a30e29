# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/literate/weave.py» book/literate-weaving.md:340 @9dc09615
"""Weaving: a Sphinx extension that draws chunks in the rendered book."""

from __future__ import annotations

import os
import re
from html import escape
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import directives
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound
from sphinx.errors import ExtensionError
from sphinx.util.docutils import SphinxDirective

from .. import __version__
from . import kernels
from .book import Book, LiterateError, read_book
from .jupyterbook import toc_parts
from .tangle import tangle
from .web import OPTIONS, REFERENCE, Chunk, Part, Web, fingerprint, load_web, normalize

BOOK_BUILD = "LGUEST_BOOK_BUILD"  # set while a book build runs cells: they record no progress

# «Directives for chunks» book/literate-weaving.md:45 @6a07c057
class chunk_part(nodes.General, nodes.Element):
    """A chunk part's place in a page, drawn once every page is known."""


class chunk_index(nodes.General, nodes.Element):
    """The place for the table of every chunk."""


class ChunkDirective(SphinxDirective):
    required_arguments = 1
    final_argument_whitespace = True
    has_content = True
    option_spec = {option: directives.unchanged for option in OPTIONS}  # the tangler checks them

    def run(self) -> list[nodes.Node]:
        web: Web = self.env.lguest_web
        chapter = _chapter_of(self.env, self.env.docname)
        seen = self.env.temp_data.get("lguest-chunks", 0)
        self.env.temp_data["lguest-chunks"] = seen + 1
        parts = web.parts_of(chapter)
        name = normalize(self.arguments[0])
        if seen >= len(parts) or parts[seen].name != name:
            raise self.error(f"chunk «{name}» is not where the tangler found it")
        node = chunk_part(chapter=chapter, ordinal=seen)
        self.set_source_info(node)
        return [node]


class ChunkIndexDirective(SphinxDirective):
    def run(self) -> list[nodes.Node]:
        return [chunk_index()]


def _chapter_of(env, docname: str) -> str:
    return Path(env.doc2path(docname)).resolve().relative_to(env.lguest_web.book.root).as_posix()


def _docname(env, chapter: str) -> str:
    return env.path2doc(str(env.lguest_web.book.root / chapter))
# «/Directives for chunks»


# «Draw a chunk» book/literate-weaving.md:95 @bf2a9293
def _anchor(part: Part) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", part.name.lower()).strip("-") or "chunk"
    return f"chunk-{slug}" + (f"-{part.number}" if part.number > 1 else "")


def _link(app, fromdoc: str, part: Part) -> str:
    target = _docname(app.env, part.chapter)
    uri = "" if target == fromdoc else app.builder.get_relative_uri(fromdoc, target)
    return f"{uri}#{_anchor(part)}"


def _title(app, part: Part) -> str:
    return next((page.title for page in app.env.lguest_web.book.pages if page.path == part.chapter), part.chapter)


def _code(app, fromdoc: str, web: Web, part: Part, lang: str) -> str:
    try:
        lexer = get_lexer_by_name(lang, stripnl=False, ensurenl=True)
    except ClassNotFound:
        lexer = get_lexer_by_name("text", stripnl=False, ensurenl=True)
    formatter = HtmlFormatter(nowrap=True)
    out: list[str] = []
    run: list[str] = []
    for line in [*part.lines, None]:
        reference = REFERENCE.match(line) if line is not None else None
        if line is not None and not reference:
            run.append(line)
            continue
        if run:
            out.append(highlight("\n".join(run) + "\n", lexer, formatter))
            run = []
        if reference:
            target = web.chunks[normalize(reference["name"])]
            out.append(f'{escape(reference["indent"])}<a class="lguest-chunk-ref" '
                       f'href="{_link(app, fromdoc, target.parts[0])}">«{escape(target.name)}»</a>\n')
    return (f'<div class="highlight-{lang} notranslate"><div class="highlight"><pre>'
            f'{"".join(out)}</pre></div></div>')


def _part_link(app, fromdoc: str, part: Part) -> str:
    return f'<a href="{_link(app, fromdoc, part)}">{escape(_title(app, part))} ({part.number})</a>'


def _replacements(app, fromdoc: str, web: Web, chunk: Chunk, part: Part) -> list[str]:
    """What a replacement supersedes, and what supersedes a part that a later chapter replaces."""
    notes = []
    if part.replace:
        replaced = web.snapshot(part.rank - 1).get(part.name, [])
        links = ", ".join(_part_link(app, fromdoc, other) for other in replaced)
        notes.append(f"Replaces «{escape(part.name)}» as it stood before this chapter: {links}.")
    later = next((other for other in chunk.parts if other.replace and other.rank > part.rank), None)
    if later is not None:
        notes.append(f"A later chapter replaces this part: {_part_link(app, fromdoc, later)}.")
    return notes


def draw_part(app, fromdoc: str, part: Part) -> str:
    web: Web = app.env.lguest_web
    chunk = web.chunks[part.name]
    op = "≡" if part.number == 1 or part.replace else "+≡"
    title = [f'<a class="lguest-chunk-name" href="#{_anchor(part)}">«{escape(part.name)}»</a>',
             f'<span class="lguest-chunk-op">{op}</span>']
    if part.file:
        title.append(f'<span class="lguest-chunk-file">{escape(part.file)}</span>')
    if part.replace:
        title.append('<span class="lguest-chunk-replaces">replaces</span>')
    notes = _replacements(app, fromdoc, web, chunk, part)
    others = [other for other in chunk.parts if other is not part]
    if others:
        links = ", ".join(f'<a href="{_link(app, fromdoc, other)}">{escape(_title(app, other))} ({other.number})</a>'
                          for other in others)
        notes.append(f"Part {part.number} of {len(chunk.parts)}; the others: {links}.")
    if chunk.users:
        links = ", ".join(f'<a href="{_link(app, fromdoc, user)}">«{escape(user.name)}»</a> '
                          f"({escape(_title(app, user))})" for user in chunk.users)
        notes.append(f"Used in {links}.")
    elif part.file:
        notes.append(f"Tangled to <code>{escape(part.file)}</code>.")
    footer = "".join(f"<p>{note}</p>" for note in notes)
    return (f'<div class="lguest-chunk" id="{_anchor(part)}">'
            f'<div class="lguest-chunk-title">{" ".join(title)}</div>'
            f"{_code(app, fromdoc, web, part, part.lang or chunk.lang)}"
            f'<div class="lguest-chunk-notes">{footer}</div></div>')
# «/Draw a chunk»
# «Draw a chunk»[2] book/literate-weaving.md:188 @3f65007d

def draw_index(app, fromdoc: str) -> str:
    web: Web = app.env.lguest_web
    rows = []
    for chunk in sorted(web.chunks.values(), key=lambda chunk: chunk.name.casefold()):
        where = ", ".join(f'<a href="{_link(app, fromdoc, part)}">{escape(_title(app, part))}</a>'
                          + (" (replaces)" if part.replace else "") for part in chunk.parts)
        used = (", ".join(f"«{escape(user.name)}»" for user in chunk.users)
                or f"<code>{escape(chunk.file or '')}</code>")
        rows.append(f'<tr><td><a href="{_link(app, fromdoc, chunk.parts[0])}">«{escape(chunk.name)}»</a></td>'
                    f"<td>{where}</td><td>{used}</td></tr>")
    return ('<table class="table lguest-chunk-index"><thead><tr><th>Chunk</th><th>Defined in</th>'
            f'<th>Used in</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')


def resolve(app, doctree: nodes.document, docname: str) -> None:
    web: Web = app.env.lguest_web
    html = app.builder.format == "html"
    for node in list(doctree.findall(chunk_part)):
        part = web.parts_of(node["chapter"])[node["ordinal"]]
        if html:
            node.replace_self(nodes.raw("", draw_part(app, docname, part), format="html"))
        else:
            node.replace_self(nodes.literal_block("\n".join(part.lines), "\n".join(part.lines)))
    for node in list(doctree.findall(chunk_index)):
        if html:
            node.replace_self(nodes.raw("", draw_index(app, docname), format="html"))
        else:
            node.replace_self(nodes.paragraph(text=", ".join(sorted(web.chunks))))
# «/Draw a chunk»


# «Keep the build honest» book/literate-weaving.md:265 @1233daab
def config_inited(app, config) -> None:
    os.environ[BOOK_BUILD] = "1"  # inherited by every kernel that runs a page's cells
    if kernels.registered():
        os.environ.setdefault(kernels.CHOOSE, kernels.NAME)  # the build's kernels talk encrypted
    root = Path(app.srcdir, config.lguest_root).resolve()
    try:
        book = read_book(root)
    except LiterateError as error:
        raise ExtensionError(str(error)) from None
    quiet = [str(root / page.path) for page in book.pages
             if "```{code-cell}" not in (root / page.path).read_text(encoding="utf-8")]
    config.nb_execution_excludepatterns = [*config.nb_execution_excludepatterns, *quiet]


def builder_inited(app) -> None:
    try:
        web = load_web(Path(app.srcdir, app.config.lguest_root).resolve())
    except LiterateError as error:
        raise ExtensionError(str(error)) from None
    app.env.lguest_web = web
    app.env.lguest_package = fingerprint(sorted(f"{path}:{fingerprint(text.split(chr(10)))}"
                                                for path, text in tangle(web).items()))


def outdated(app, env, added, changed, removed) -> list[str]:
    now = (env.lguest_web.shape(), env.lguest_package)
    before, env.lguest_digests = getattr(env, "lguest_digests", None), now
    if before is None or before == now:
        return []
    pages = [_docname(env, page.path) for page in env.lguest_web.book.pages]
    return [page for page in pages if page in env.found_docs and page not in added]


def source_read(app, docname: str, source: list[str]) -> None:
    book = app.env.lguest_web.book
    if "sphinx_external_toc" not in app.extensions:
        if docname == _docname(app.env, book.cover.path):
            source[0] += _toctree(app.env, book)
        head = next((page for page in book.pages if _docname(app.env, page.path) == docname), None)
        if head is not None and head.more:
            entries = "\n".join(_docname(app.env, page.path) for page in head.more)
            source[0] += f"\n\n```{{toctree}}\n:hidden:\n\n{entries}\n```\n"
    if "format_name: myst" in source[0] and "```{code-cell}" in source[0]:
        source[0] += ("\n+++\n\n```{code-cell} ipython3\n:tags: [remove-cell]\n\n"
                      f"# lguest package digest {app.env.lguest_package}\n```\n")


def _toctree(env, book: Book) -> str:
    text = ""
    for caption, pages, options in toc_parts(book):
        lines = [f":caption: {caption}", *(f":{key}:" if value is True else f":{key}: {value}"
                                          for key, value in options.items())]
        entries = "\n".join(_docname(env, page.path) for page in pages)
        text += f"\n\n```{{toctree}}\n" + "\n".join(lines) + f"\n\n{entries}\n```\n"
    return text


def setup(app) -> dict:
    app.add_config_value("lguest_root", ".", "env")  # the repository, from the book's folder
    app.connect("config-inited", config_inited)
    app.add_node(chunk_part)
    app.add_node(chunk_index)
    app.add_directive("chunk", ChunkDirective)
    app.add_directive("chunk-index", ChunkIndexDirective)
    app.connect("builder-inited", builder_inited)
    app.connect("env-get-outdated", outdated)
    app.connect("source-read", source_read)
    app.connect("doctree-resolved", resolve)
    return {"version": __version__, "env_version": 1,
            "parallel_read_safe": False, "parallel_write_safe": True}
# «/Keep the build honest»
# «/src/lguest/literate/weave.py»
