# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/guest/__main__.py» book/guest-shell.md:778 @c5486675
"""``python -m lguest.guest``: build the Guest's kernel and print its path."""

import sys

from . import KernelBuildError, build_kernel

try:
    print(build_kernel(sys.argv[1] if len(sys.argv) > 1 else None))
except KernelBuildError as error:
    sys.exit(str(error))
# «/src/lguest/guest/__main__.py»
