# The front door. Every target sets up .venv by itself the first time.
#   make book    render the book with Jupyter Book, executing its cells, into _build/html
#   make test    check the package and Jupyter Book's files against the book, then run the tests
#   make tangle  write src/lguest from the chapters
#   make stitch  carry edits in src/lguest back into the chapters
#   make run     boot a guest: make run [GUEST=path/to/kernel.elf] [MEM=32]
#   make guest   build the book's own kernel and print its path
#   make bench   run the benchmarks in bench/: one table, bench/results/latest.json
#   make profile profile the hypercall fast path and the full exit with pyinstrument
#   make soak    hostile guests for a long while: make soak [LGUEST_SOAK_CASES=N LGUEST_SOAK_SEED=S]
#   make notebooks  open a chapter in JupyterLab: make notebooks [CHAPTER=host] [WRITING=1]
#   make system  install the Debian packages the project needs (run as root; make test does it when they are missing)

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
BOOKOPTS ?= -W --keep-going

MEM ?= 32

.PHONY: setup system system-check book test tangle stitch check run guest bench profile soak clean notebooks

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(STAMP)

# Debian packages: a C compiler and binutils able to produce 32-bit x86 code
# (the Guest, the Switcher and the Host's brake), Chromium with its WebDriver,
# in which the tests open the rendered book the way a reader does, and GDB,
# which the tests and the Mastery chapter point at lguest run --gdb.
SYSTEM_PACKAGES := gcc binutils make chromium chromium-driver gdb

system:
	apt-get update
	apt-get install -y --no-install-recommends $(SYSTEM_PACKAGES)

# Before the tests: each Debian package they need, by the command that shows it
# is there. Missing ones are installed when we can (root, with apt-get);
# otherwise make stops with one line that says what to install.
MISSING = $(strip $(shell \
	command -v gcc >/dev/null || echo gcc; \
	{ command -v ld && command -v as; } >/dev/null || echo binutils; \
	{ command -v chromium || command -v chromium-browser; } >/dev/null || echo chromium; \
	{ command -v chromedriver || test -x /usr/lib/chromium/chromedriver; } >/dev/null \
	  || echo chromium-driver; \
	command -v gdb >/dev/null || echo gdb))
CAN_INSTALL = $(shell [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && echo yes)

system-check:
	@:
	$(if $(MISSING),$(if $(CAN_INSTALL),,$(error make test needs $(MISSING): on Debian, \
	  as root, apt-get install $(MISSING) (or make system))))
	$(if $(MISSING),apt-get update -qq)
	$(if $(MISSING),DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(MISSING))

tangle: $(STAMP)
	$(BIN)/lguest tangle

stitch: $(STAMP)
	$(BIN)/lguest stitch

check: $(STAMP)
	$(BIN)/lguest tangle --check

# Jupyter Book builds the book; it reads _config.yml and book/_toc.yml, which
# lguest book-config writes from conf.py and chapters.yml.
book: $(STAMP)
	$(BIN)/lguest tangle
	$(BIN)/lguest book-config
	$(BIN)/jupyter-book build book $(BOOKOPTS)
	@echo "The book is in _build/html/index.html"

test: $(STAMP) system-check
	$(BIN)/lguest tangle --check
	$(BIN)/lguest book-config --check
	$(BIN)/python -m pytest

# A chapter as a notebook in JupyterLab, paired with book/CHAPTER.md by jupytext
# (JupyterLab comes with the notebook extra, which the dev extra includes).
# WRITING=1 is for the book's author: its cells then record nothing in the
# reader's progress file, as in a book build.
notebooks: $(STAMP)
	$(if $(WRITING),LGUEST_BOOK_BUILD=1 )$(BIN)/lguest notebook $(CHAPTER)

run: $(STAMP)
	$(BIN)/lguest run $(MEM) $(GUEST)

guest: $(STAMP)
	$(BIN)/python -m lguest.guest

bench: $(STAMP)
	$(BIN)/python bench/run.py

profile: $(STAMP)
	$(BIN)/python bench/profiling.py hypercall bare exit

soak: $(STAMP)
	$(BIN)/python tests/soak.py

clean:
	rm -rf _build .pytest_cache .hypothesis
