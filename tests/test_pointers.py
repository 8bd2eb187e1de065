"""Pointers in the repository's own text resolve, wherever they are written: source, comments, manifests,
the Makefile, the tests and the docs' prose (tests/test_docs.py checks the docs' markdown links).

- Every path under docs/ names a file that exists, and every docs page with an anchor (`#...` after the
  page's name) a heading of that page (GitHub's heading slugs: tests/test_docs.py's `anchors`).
- Every README.md with an anchor names a heading of README.md, and nothing points at README as a whole
  ("see" it, "the" README's some section) or at a section by its quoted title without saying where: sections
  move, and a pointer without an anchor cannot be checked.
- A `make` command passes a command's flags as `ARGS="..."`: a flag after the target is read by make.
- Every JPEG a docs example sends is one the repository ships.

Each check is a pure function of a text; the table at the end shows that each kind of broken pointer is
found, against a small repository the test writes.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.test_docs import CODE_SPAN, FENCE, anchors

REPO = Path(__file__).resolve().parent.parent
AREAS = ["inference", "autoscaler", "loadtester", "k8s", "prometheus", "local", "sim", "bench", "comparison",
         "planning", "processes", "settings", "containers", ".ci", "docs", "tests", "top-level"]
TOP_LEVEL = re.compile(r"^(Makefile|Dockerfile[\w.-]*|README\.md|pyproject\.toml|pytest\.ini|requirements[\w-]*\.txt)$")
NOT_TEXT = {".png", ".jpg", ".jpeg", ".gif", ".pth", ".pt", ".onnx", ".gz", ".zip", ".pdf", ".whl"}

DOCS_PATH = re.compile(r"(?<![\w/.-])docs/([\w-]+(?:\.[\w-]+)*)(?:#([\w-]+))?")
README_ANCHOR = re.compile(r"(?<![\w/.-])README(?:\.md)?#([\w-]+)")
VAGUE_README = re.compile(r"\b(?:[Tt]he|[Ss]ee) README\b(?!(?:\.md)?#)")
QUOTED_TITLE = re.compile(r',? \(?"')  # a docs page's path, then a quoted heading
MARKDOWN_LINK = re.compile(r"!?\[[^\]\n]*\]\([^)\s]*\)")
MAKE_WITH_FLAG = re.compile(r"\bmake [a-z][\w-]*(?: [A-Z_]+=\S+)* --?[a-zA-Z]")
JPEG = re.compile(r"(?<![\w.-])([\w./-]*[\w-]\.jpe?g)\b", re.IGNORECASE)


def tracked_files() -> list[Path]:
    """The repository's files (tracked, or new and not ignored), as git lists them."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, text=True, check=True, timeout=60).stdout.splitlines()
    return [REPO / name for name in listed if (REPO / name).is_file() and Path(name).suffix.lower() not in NOT_TEXT]


def area(path: Path) -> str | None:
    relative = path.relative_to(REPO)
    if len(relative.parts) == 1:
        return "top-level" if TOP_LEVEL.match(relative.name) else None
    return relative.parts[0] if relative.parts[0] in AREAS else None


def files_of(name: str) -> list[Path]:
    return [path for path in tracked_files() if area(path) == name]


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def lines_of(text: str, pattern: re.Pattern) -> list[tuple[int, re.Match]]:
    return [(number, match) for number, line in enumerate(text.splitlines(), 1) for match in pattern.finditer(line)]


def docs_path_problems(text: str, repo: Path = REPO) -> list[str]:
    """A path under docs/ that does not exist; a docs page's anchor that is no heading of it."""
    problems = []
    for number, match in lines_of(text, DOCS_PATH):
        name, anchor = match.group(1), match.group(2)
        target = repo / "docs" / name
        if not target.is_file():
            problems.append(f"{number}: {match.group(0)}: no such file docs/{name}")
        elif anchor and target.suffix != ".md":
            problems.append(f"{number}: {match.group(0)}: an anchor into a file that is not markdown")
        elif anchor and anchor not in anchors(target):
            problems.append(f"{number}: {match.group(0)}: docs/{name} has no heading with anchor #{anchor}")
        elif not anchor and QUOTED_TITLE.match(match.string, match.end()):
            problems.append(f"{number}: {match.group(0)}: names a section by its title; write its anchor "
                            f"(docs/{name}#...), which this test checks")
    return problems


def readme_problems(text: str, is_markdown: bool, repo: Path = REPO, vague: bool = True) -> list[str]:
    """README.md with an anchor that is no heading; with `vague`, README named without an anchor."""
    problems = []
    readme_anchors = anchors(repo / "README.md")
    for number, match in lines_of(text, README_ANCHOR):
        if match.group(1) not in readme_anchors:
            problems.append(f"{number}: {match.group(0)}: README.md has no heading with anchor #{match.group(1)}")
    prose = MARKDOWN_LINK.sub("link", text) if is_markdown else text  # a link's text is checked as a link
    for number, match in lines_of(prose if vague else "", VAGUE_README):
        problems.append(f"{number}: '{match.group(0)}' names no section: write README.md#<heading anchor>, or point "
                        "at the docs/ page that holds it")
    return problems


def make_flag_problems(text: str) -> list[str]:
    """`make TARGET --flag`: make reads the flag itself; the command gets it as ARGS="--flag"."""
    return [f"{number}: '{match.group(0)}...': make takes a command's flags as ARGS=\"...\""
            for number, match in lines_of(text, MAKE_WITH_FLAG)]


def example_jpegs(text: str) -> list[tuple[int, str]]:
    """(line, name) of every JPEG named in a fenced code block or in an inline `curl ...` of a markdown page."""
    found, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        if fenced:
            found += [(number, m.group(1)) for m in JPEG.finditer(line)]
        else:
            for span in CODE_SPAN.findall(line):
                if span.startswith("`curl "):
                    found += [(number, m.group(1)) for m in JPEG.finditer(span)]
    return found


def missing_jpegs(text: str, repo: Path = REPO) -> list[str]:
    return [f"{number}: {name}: the repository ships no such file (loadtester/images/ has photos)"
            for number, name in example_jpegs(text) if not (repo / name).is_file()]


def report(problems_by_file: dict[Path, list[str]]) -> str:
    return "\n".join(f"{path.relative_to(REPO)}:{problem}" for path, problems in problems_by_file.items()
                     for problem in problems)


@pytest.mark.parametrize("name", AREAS)
def test_docs_paths_and_anchors_resolve(name):
    broken = {path: docs_path_problems(read(path)) for path in files_of(name)}
    broken = {path: problems for path, problems in broken.items() if problems}
    assert not broken, "pointers into docs/ that do not resolve:\n" + report(broken)


@pytest.mark.parametrize("name", AREAS)
def test_readme_pointers_name_a_heading(name):
    # A test of the README talks about it as its subject, not as a place to read on: only its anchors count.
    broken = {path: readme_problems(read(path), path.suffix == ".md", vague=name != "tests") for path in files_of(name)
              if path.relative_to(REPO).as_posix() != "README.md"}
    broken = {path: problems for path, problems in broken.items() if problems}
    assert not broken, "pointers into README.md that do not resolve:\n" + report(broken)


@pytest.mark.parametrize("name", AREAS)
def test_make_commands_pass_flags_as_args(name):
    broken = {path: make_flag_problems(read(path)) for path in files_of(name)}
    broken = {path: problems for path, problems in broken.items() if problems}
    assert not broken, "make commands with a command's flags outside ARGS:\n" + report(broken)


PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(REPO)) for p in PAGES])
def test_examples_send_images_the_repository_ships(page):
    missing = missing_jpegs(read(page))
    assert not missing, f"{page.relative_to(REPO)}: examples name images that are not in the repository:\n" + \
        "\n".join(missing)


def test_every_area_has_files():
    """A renamed folder would otherwise leave its area silently unchecked."""
    assert [name for name in AREAS if not files_of(name)] == []


# A text, the check it goes through, and a part of the one problem it must report (None: no problem), against
# the repository `small_repo` writes.
DOCS = "docs/"
CASES = {
    "docs-page-and-anchor": (f"see {DOCS}service.md#metrics.", "docs", None),
    "docs-file-without-anchor": (f"({DOCS}tables.py builds them)", "docs", None),
    "docs-missing-file": (f"see {DOCS}nowhere.md#metrics", "docs", "no such file"),
    "docs-page-without-md": (f"see {DOCS}service#metrics", "docs", "no such file"),
    "docs-missing-anchor": (f"see {DOCS}service.md#the-readmes-metrics-table", "docs", "no heading with anchor"),
    "docs-anchor-into-python": (f"{DOCS}tables.py#main", "docs", "not markdown"),
    "docs-section-by-title": (f'{DOCS}service.md, "Metrics", lists them', "docs", "by its title"),
    "docs-in-a-url": ("https://prometheus.io/" + DOCS + "prometheus/latest/", "docs", None),
    "readme-anchor": ("README.md#" + "two-commands", "readme", None),
    "readme-anchor-without-md": ("README#" + "two-commands", "readme", None),
    "readme-missing-anchor": ("README.md#" + "production-notes", "readme", "no heading with anchor"),
    "readme-section-by-name": ("see the " + "README's metrics table", "readme", "names no section"),
    "readme-bare": ("(see the " + "README)", "readme", "names no section"),
    "readme-link-in-markdown": ("[Back to the " + "README](../README.md)", "readme-md", None),
    "another-readme": ("what its " + "README describes", "readme", None),
    "readme-as-a-test-subject": ("the " + "README names paths that do not exist", "readme-subject", None),
    "readme-as-a-test-subject-anchor": ("README.md#" + "production-notes", "readme-subject", "no heading"),
    "make-args": ('make compare ARGS="--policies hpa-50,slo"', "make", None),
    "make-flag": ("make compare " + "--policies hpa-50,slo", "make", "ARGS"),
    "make-variable-then-flag": ("make demo PYTHON=python3.12 " + "--quick", "make", "ARGS"),
    "curl-shipped-photo": ("```bash\ncurl -F file=@loadtester/images/chelsea.jpg URL\n```", "jpeg", None),
    "curl-missing-photo": ("```bash\ncurl -F file=@" + "cat.jpg URL\n```", "jpeg", "ships no such file"),
    "inline-curl-missing-photo": ("`curl --data-binary @" + "dog.jpeg URL`", "jpeg", "ships no such file"),
    "photo-named-in-prose": ("the photo " + "`kitten.jpg`", "jpeg", None),
}


@pytest.fixture
def small_repo(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("# Project\n\n## Two commands\n")
    (tmp_path / "docs" / "service.md").write_text("# The service\n\n## Metrics\n")
    (tmp_path / "docs" / "tables.py").write_text("")
    (tmp_path / "loadtester" / "images").mkdir(parents=True)
    (tmp_path / "loadtester" / "images" / "chelsea.jpg").write_bytes(b"")
    return tmp_path


@pytest.mark.parametrize("text, check, problem", list(CASES.values()), ids=list(CASES))
def test_the_checks_find_each_kind_of_broken_pointer(small_repo, text, check, problem):
    checks = {
        "docs": lambda: docs_path_problems(text, small_repo),
        "readme": lambda: readme_problems(text, False, small_repo),
        "readme-md": lambda: readme_problems(text, True, small_repo),
        "readme-subject": lambda: readme_problems(text, False, small_repo, vague=False),
        "make": lambda: make_flag_problems(text),
        "jpeg": lambda: missing_jpegs(text, small_repo),
    }
    problems = checks[check]()
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problem in problems[0], problems
