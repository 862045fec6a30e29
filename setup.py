"""Build hook: assemble the Switcher and build the Guest's kernel into the wheel
(see the Switcher and Guest chapters)."""

import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithSwitcher(build_py):
    def run(self):
        super().run()
        sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))
        from lguest.switcher_build import assemble, stamp_of

        source = Path(self.build_lib) / "lguest" / "switcher.S"
        if source.is_file():  # an editable install copies nothing: it assembles on first use
            (source.parent / "switcher.bin").write_bytes(stamp_of(source) + assemble(source))
        guest = Path(self.build_lib) / "lguest" / "guest"
        if (guest / "boot.c").is_file():  # as with the Switcher: editable installs build on use
            from lguest.guest import build_kernel

            build_kernel(guest)


setup(cmdclass={"build_py": BuildWithSwitcher})
