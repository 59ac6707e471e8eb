"""The docs' code runs: every ```python block of docs/*.md and README.md, in order, one namespace per file.

Rules (docs/README.md states them for writers):

- A ```python block runs from the repository root; the blocks of one file share their variables.
- A block fenced ```output right after a python block is that block's exact printed output.
- A python block whose first line is ``# <path of a repository file>`` quotes that file: the rest of the block
  must appear in it verbatim (it also runs).
- Anything that is not Python uses another fence (```text, ```bash, or none) and does not run.
- Every relative link of these Markdown files names a file that exists.
"""
import contextlib
import glob
import io
import os
import re
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = sorted(glob.glob(os.path.join(ROOT, "docs", "*.md"))) + [os.path.join(ROOT, "README.md")]
WITHOUT_CODE = {"docs/README.md", "docs/performance.md"}  # a reading order and measurements: nothing to run
LINKED = DOCS + [os.path.join(ROOT, "examples", "README.md")]
FENCE = re.compile(r"^(`{3,})([^`]*)$")  # CommonMark: no backtick in the info string


def blocks(path):
    """(info string, code, first line number) of every fenced block of a Markdown file."""
    found, info, fence, start, lines = [], None, None, 0, []
    with open(path) as file:
        for number, line in enumerate(file, 1):
            match = FENCE.match(line.rstrip("\n"))
            if info is None and match:
                fence, info, start, lines = match.group(1), match.group(2).strip(), number + 1, []
            elif info is not None and line.rstrip("\n").rstrip() == fence:
                found.append((info, "".join(lines), start))
                info = None
            elif info is not None:
                lines.append(line)
    assert info is None, f"{path}: the block opened at line {start - 1} is never closed"
    return found


def _normalise(text):
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


def check_quote(code, where):
    first, _, rest = code.partition("\n")
    quoted = os.path.join(ROOT, first[1:].strip())
    if not (first.startswith("# ") and os.path.isfile(quoted)):
        return
    with open(quoted) as file:
        assert rest.strip("\n") in file.read(), f"{where}: the block no longer matches {first[2:]}"


def run_file(path):
    name = os.path.relpath(path, ROOT)
    namespace = {"__name__": f"doc_{os.path.basename(path)[:-3]}"}
    found = blocks(path)
    previous_output = None
    ran = 0
    for index, (info, code, line) in enumerate(found):
        where = f"{name}:{line}"
        if info == "output":
            assert previous_output is not None, f"{where}: an output block must follow a python block"
            assert _normalise(previous_output) == _normalise(code), (
                f"{where}: the block above printed\n{previous_output}\nbut the doc shows\n{code}")
            previous_output = None
            continue
        previous_output = None
        if info.split(" ")[0] != "python":
            continue
        check_quote(code, where)
        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout):
            # padded so that a traceback names the Markdown file's own line numbers
            exec(compile("\n" * (line - 1) + code, name, "exec"), namespace)
        previous_output = stdout.getvalue()
        ran += 1
    return ran


@pytest.mark.parametrize("path", DOCS, ids=lambda p: os.path.relpath(p, ROOT))
def test_doc_code_runs_and_prints_what_the_doc_shows(path, monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    saved_path, saved_modules = list(sys.path), set(sys.modules)
    try:
        ran = run_file(path)
        assert ran > 0 or os.path.relpath(path, ROOT) in WITHOUT_CODE, f"{path}: no python block ran"
    finally:  # what a page imported from its own folders (docs/tiny/engine.py) does not leak into other tests
        sys.path[:] = saved_path
        docs_folder = os.path.join(ROOT, "docs") + os.sep
        for name in set(sys.modules) - saved_modules:
            if (getattr(sys.modules[name], "__file__", None) or "").startswith(docs_folder):
                del sys.modules[name]


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("path", LINKED, ids=lambda p: os.path.relpath(p, ROOT))
def test_relative_links_name_existing_files(path):
    with open(path) as file:
        text = file.read()
    missing = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        file_part = target.split("#")[0]
        if not os.path.exists(os.path.join(os.path.dirname(path), file_part)):
            missing.append(target)
    assert not missing, f"{os.path.relpath(path, ROOT)} links to files that do not exist: {missing}"


def test_the_runner_catches_a_wrong_output_and_a_stale_quote(tmp_path):
    """The rules above can fail: a doc whose output block is wrong, or whose quote left its file."""
    wrong = tmp_path / "wrong.md"
    wrong.write_text("```python\nprint(1 + 1)\n```\n\n```output\n3\n```\n")
    with pytest.raises(AssertionError, match="printed"):
        run_file(str(wrong))
    stale = tmp_path / "stale.md"
    stale.write_text("```python\n# docs/tiny/engine.py\nclass Mul(Function):\n    pass\n```\n")
    with pytest.raises(AssertionError, match="no longer matches"):
        run_file(str(stale))
    right = tmp_path / "right.md"
    right.write_text("```python\nx = 2\n```\n\n```text\nnot run\n```\n\n```python\nprint(x + 1)\n```\n"
                     "```output\n3\n```\n")
    assert run_file(str(right)) == 2
