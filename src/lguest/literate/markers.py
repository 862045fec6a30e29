# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/literate/markers.py» book/literate.md:1114 @b1425808
"""The comment lines that tie every tangled line back to its chunk."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from .web import Part, normalize

# «Comment syntax and markers» book/literate.md:1056 @03b20a37
HEADER = ("Tangled from the book by 'lguest tangle'. Edit the chapter a marker names,"
          " or edit here and run 'lguest stitch'.")
BEGIN = r"«(?P<name>[^«»]+)»(?:\[(?P<number>\d+)\])? (?P<chapter>\S+):(?P<first>\d+) @(?P<digest>[0-9a-f]{8})"
END = r"«/(?P<name>[^«»]+)»"


@dataclass(frozen=True)
class Marker:
    indent: str
    name: str
    end: bool
    number: int = 1
    chapter: str = ""
    first: int = 0
    digest: str = ""


@dataclass(frozen=True)
class CommentStyle:
    opening: str
    closing: str = ""

    def comment(self, text: str) -> str:
        return f"{self.opening}{text}{self.closing}"

    def begin(self, part: Part) -> str:
        number = f"[{part.number}]" if part.number > 1 else ""
        return self.comment(f"«{part.name}»{number} {part.chapter}:{part.first} @{part.digest}")

    def end(self, part: Part) -> str:
        return self.comment(f"«/{part.name}»")

    def read(self, text: str) -> Marker | None:
        for pattern, end in ((BEGIN, False), (END, True)):
            match = re.fullmatch(r"(?P<indent>[ \t]*)" + re.escape(self.opening) + pattern
                                 + re.escape(self.closing) + r"\s*", text)
            if match:
                fields = match.groupdict()
                return Marker(fields["indent"], normalize(fields["name"]), end,
                              int(fields.get("number") or 1), fields.get("chapter") or "",
                              int(fields.get("first") or 0), fields.get("digest") or "")
        return None


HASH = CommentStyle("# ")
SLASH_STAR = CommentStyle("/* ", " */")
STYLES = {".py": HASH, ".sh": HASH, ".s": HASH, ".yml": HASH, ".yaml": HASH,
          ".toml": HASH, ".c": SLASH_STAR, ".h": SLASH_STAR, ".S": SLASH_STAR,
          ".ld": SLASH_STAR, ".css": SLASH_STAR}


def comment_style(path: str) -> CommentStyle | None:
    return STYLES.get(PurePosixPath(path).suffix)
# «/Comment syntax and markers»
# «/src/lguest/literate/markers.py»
