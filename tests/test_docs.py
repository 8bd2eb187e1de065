"""The documentation: README.md and docs/*.md.

Every relative link and image points to a file that exists, and every anchor to a heading of its target
(GitHub's heading slugs). Every configuration table is exactly what docs/tables.py generates from the
settings dataclass it documents, so a table cannot drift from the code; a failure names the first row that
differs and the command that prints the right table.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from itertools import zip_longest
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
PAGES = [REPO / "README.md", *sorted(DOCS.glob("*.md"))]
PARTS = ["service", "autoscaler", "loadtester", "kubernetes", "local-stack", "simulator", "benchmarks", "testing"]
README_MAX_LINES = 150


def _load_tables():
    spec = importlib.util.spec_from_file_location("docs_tables", DOCS / "tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tables = _load_tables()

FENCE = re.compile(r"^(```|~~~)")
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    out, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        if not fenced:
            out.append((number, line))
    return out


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text lowercased, punctuation other than '-' and '_'
    removed, each space turned into '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    text = text.replace("`", "").replace("*", "")
    text = re.sub(r"<[^>]+>", "", text)
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a markdown file, with GitHub's -1, -2 suffixes for repeated headings."""
    seen: dict[str, int] = {}
    result = set()
    for _, line in prose_lines(path.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def links(path: Path) -> list[tuple[int, str]]:
    """(line number, target) of every markdown link and image outside code."""
    found = []
    for number, line in prose_lines(path.read_text(encoding="utf-8")):
        for match in LINK.finditer(CODE_SPAN.sub("code", line)):
            found.append((number, match.group(1)))
    return found


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(REPO)) for p in PAGES])
def test_every_relative_link_and_anchor_resolves(page):
    broken = []
    for number, target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http(s), mailto: not checked here
            continue
        path_part, _, anchor = target.partition("#")
        resolved = (page.parent / path_part).resolve() if path_part else page
        where = f"{page.relative_to(REPO)}:{number}: ({target})"
        if not resolved.exists():
            broken.append(f"{where} no such file {resolved.relative_to(REPO) if REPO in resolved.parents else resolved}")
            continue
        if anchor:
            if resolved.suffix != ".md":
                broken.append(f"{where} an anchor into a file that is not markdown")
            elif anchor not in anchors(resolved):
                broken.append(f"{where} no heading with anchor #{anchor} in {resolved.relative_to(REPO)}")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_the_slugs_follow_github():
    assert slug("Finding a deployment's capacity: `--find-capacity`") == "finding-a-deployments-capacity---find-capacity"
    assert slug("The service (`bench/bench_service.py`)") == "the-service-benchbench_servicepy"
    assert slug("Own metrics and health (`METRICS_PORT`, default 9100)") == \
        "own-metrics-and-health-metrics_port-default-9100"
    assert slug("HPA baselines (50% and 90% CPU)") == "hpa-baselines-50-and-90-cpu"


def table_under(page: Path, heading: str) -> list[str]:
    """The first table after the heading `heading` of `page`, before the next heading."""
    lines = prose_lines(page.read_text(encoding="utf-8"))
    start = next((i for i, (_, line) in enumerate(lines)
                  if (m := HEADING.match(line)) and m.group(2) == heading), None)
    assert start is not None, f"{page.relative_to(REPO)} has no heading '{heading}'"
    table: list[str] = []
    for _, line in lines[start + 1:]:
        if HEADING.match(line):
            break
        if line.startswith("|"):
            table.append(line)
        elif table:
            break
    assert table, f"{page.relative_to(REPO)}: no table under '{heading}'"
    return table


@pytest.mark.parametrize("name", list(tables.TABLES), ids=list(tables.TABLES))
def test_configuration_tables_are_generated_from_the_dataclasses(name):
    page_name, heading, generate = tables.TABLES[name]
    page = REPO / page_name
    expected, found = generate(), table_under(page, heading)
    for row, (want, got) in enumerate(zip_longest(expected, found)):
        if want != got:
            first_cell = (want or got).split("|")[1].strip()
            which = {0: "the header", 1: "the separator"}.get(row, f"row {row - 1} ({first_cell})")
            pytest.fail(f"{page_name}, table under '{heading}': {which} differs from the code\n"
                        f"  generated: {want}\n  in page:   {got}\n"
                        f"Print the right table with `python docs/tables.py {name}` and paste it.")


def test_the_generators_read_every_field_in_order():
    from dataclasses import fields

    from autoscaler.config import Config
    from inference.config import ServiceConfig
    from loadtester.config import Options as LoadOptions
    from local.config import Options as LocalOptions

    def first_cells(lines):
        return [line.split(" | ")[0].lstrip("| ") for line in lines[2:]]

    assert first_cells(tables.service_table()) == [f"`{f.metadata['env']}`" for f in fields(ServiceConfig)]
    assert first_cells(tables.autoscaler_table()) == [f"`{f.name.upper()}` / `--{f.name.replace('_', '-')}`"
                                                      for f in fields(Config)]
    assert [c.split()[0].strip("`") for c in first_cells(tables.loadtester_table())] == \
        [f.metadata["flag"] for f in fields(LoadOptions)]
    assert [c.strip("`") for c in first_cells(tables.local_table())] == [f.metadata["flag"] for f in fields(LocalOptions)]
    assert len(tables.autoscaler_queries_table()) - 2 == sum(f.name.startswith("query_") for f in fields(Config))


def test_tables_script_prints_every_table():
    result = subprocess.run([sys.executable, str(DOCS / "tables.py")], cwd=DOCS, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    for name, (page, heading, generate) in tables.TABLES.items():
        assert "\n".join(generate()) in result.stdout, name


def test_readme_is_short_and_links_every_part():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= README_MAX_LINES, \
        f"README.md has {len(readme.splitlines())} lines; keep it under {README_MAX_LINES} and move detail to docs/"
    targets = {target.partition("#")[0] for _, target in links(REPO / "README.md")}
    missing = [part for part in PARTS if f"docs/{part}.md" not in targets]
    assert not missing, f"README.md links no page for {missing}"


@pytest.mark.parametrize("part", [*PARTS, "install"])
def test_each_page_opens_with_what_it_is(part):
    page = DOCS / f"{part}.md"
    lines = [line for line in page.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert lines[0].startswith("# "), f"{page.name} does not start with a title"
    assert not lines[1].startswith(("#", "|", "```", "-", "!")), \
        f"{page.name}: the title is not followed by a paragraph saying what this is"
