#!/bin/bash
# Regenerate the solution diffs folded into each chapter's Quest section, after
# edits elsewhere in the chapters moved their context. solve.py applies each
# quest's solution by string replacement; the diff against the unsolved book
# replaces the chapter's ```` ```diff ```` block. Run from anywhere; then run
# tests/test_mastery.py, which applies every diff with patch(1).
set -e
REPO=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK" && mkdir a && cp -r "$REPO/book" a/
python3 - <<'PY'
import re
from pathlib import Path
for p in Path("a/book").glob("*.md"):
    t = p.read_text()
    p.write_text(re.sub(r"^````diff\n.*?^````$", "````diff\nPLACEHOLDER\n````", t, flags=re.S | re.M))
PY
for q in preparation launcher guest host switcher drivers mastery; do
  rm -rf b; mkdir b; cp -r a/book b/
  python3 "$HERE/solve.py" b $q
  (diff -ru a/book b/book | sed -E 's#^(---|\+\+\+) (a|b)/book/([a-z]+\.md).*#\1 \2/book/\3#' | grep -v '^diff ' > $q.diff) || true
done
cd "$REPO" && WORK="$WORK" python3 - <<'PY'
import os
import re
from pathlib import Path
for q in "preparation launcher guest host switcher drivers mastery".split():
    p = Path(f"book/{q}.md"); t = p.read_text()
    diff = Path(os.environ["WORK"], f"{q}.diff").read_text()
    blocks = re.findall(r"^````diff\n.*?^````$", t, re.S | re.M)
    assert len(blocks) == 1, (q, len(blocks))
    p.write_text(t.replace(blocks[0], "````diff\n" + diff + "````"))
PY
