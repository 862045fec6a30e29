# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/mastery/__init__.py» book/mastery.md:58 @28be5d48
"""Mastery: the quests at the end of each chapter, the reader's progress, and the Beer.

``progress`` keeps the record, ``quests`` holds the checks and runs them against
the reader's own tangled package, ``voucher`` decides whether a Beer is due.
"""
# «/src/lguest/mastery/__init__.py»
