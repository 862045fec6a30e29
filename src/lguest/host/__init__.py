# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/host/__init__.py»[2] book/switcher.md:823 @b59c1749
"""The Host: the hypervisor proper, one module per concern, as in lguest."""
# «/src/lguest/host/__init__.py»
