# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/__init__.py» book/literate-way-back.md:440 @2a057a4f
"""lguest.py: a hypervisor you can read.

This package is tangled from the book in ``book/``: every line of it is
explained there, in order. Each file's markers name the chapter and line of
the chunk it came from; ``lguest where FILE:LINE`` does the lookup for you.
"""

__version__ = "0.1.0"
# «/src/lguest/__init__.py»
