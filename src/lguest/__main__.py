# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/__main__.py» book/literate-way-back.md:427 @daea6122
"""``python -m lguest`` is the lguest command."""

from .cli import main

main()
# «/src/lguest/__main__.py»
