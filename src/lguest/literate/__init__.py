# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/literate/__init__.py» book/literate-way-back.md:272 @1bbc5077
"""The literate engine: the book is the source, the package is tangled from it.

``book`` reads chapters.yml, ``web`` finds and checks the chunks, ``tangle``
writes the package, ``stitch`` carries edits back, and ``weave`` draws the
chunks in the rendered book.
"""
# «/src/lguest/literate/__init__.py»
