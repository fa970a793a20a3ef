"""The user docs name what the pack ships (every workflow, node category and node) and carry no machine paths."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
WORKFLOWS = sorted((ROOT / "workflows").glob("*.json"))
DOCS = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
# A path of the machine the docs were written on: /work/..., /tmp/..., /root/... (not ".../tmp/" inside a path).
MACHINE_PATH = re.compile(r"(?<![\w.~$-])/(?:work|tmp|root)/")


def readme_section(title: str) -> str:
    """The README's ``## title`` section, up to the next ``## `` heading."""
    parts = re.split(r"^## ", README, flags=re.MULTILINE)
    sections = [part for part in parts if part.split("\n", 1)[0].strip() == title]
    assert len(sections) == 1, f'README needs exactly one "## {title}" section'
    return sections[0]


def table_rows(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if line.lstrip().startswith("|"))


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_every_workflow_is_described_in_docs_and_named_in_the_readme(path: Path) -> None:
    workflows_doc = (ROOT / "docs" / "workflows.md").read_text(encoding="utf-8")
    assert f"### `{path.name}`" in workflows_doc, f"docs/workflows.md has no section for {path.name}"
    assert f"`{path.name}`" in table_rows(workflows_doc), f"the table of docs/workflows.md lacks {path.name}"
    assert f"`{path.name}`" in readme_section("Workflows"), f"the README's Workflows section lacks {path.name}"


@pytest.mark.parametrize("path", DOCS, ids=lambda path: path.name)
def test_docs_carry_no_machine_path(path: Path) -> None:
    lines = enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
    found = [f"{path.name}:{number}: {line.strip()}" for number, line in lines if MACHINE_PATH.search(line)]
    assert not found, "machine paths in the docs:\n" + "\n".join(found)


def test_machine_path_pattern_tells_machine_paths_from_repo_paths() -> None:
    assert all(MACHINE_PATH.search(text) for text in ("`/work/x`", "(/tmp/a.txt)", "cd /root/ComfyUI"))
    assert not any(MACHINE_PATH.search(text) for text in ("tests/tmp/a", "~/work/x", "$HOME/root/x", "a.tmp/b"))


def heading_anchors(text: str) -> set[str]:
    """The anchors GitHub gives a Markdown file's headings: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ (.+)$", text, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("path", DOCS, ids=lambda path: path.name)
def test_links_between_docs_resolve(path: Path) -> None:
    broken = []
    links = re.findall(r"\]\(([^)\s]+)\)", path.read_text(encoding="utf-8"))
    for link in (link for link in links if not link.startswith(("http://", "https://"))):
        file, _, anchor = link.partition("#")
        target = path.parent / file if file else path
        if not target.exists() or (anchor and anchor not in heading_anchors(target.read_text(encoding="utf-8"))):
            broken.append(link)
    assert not broken, f"{path.name} links to files or headings that do not exist: {broken}"


def test_readme_lists_every_node_category_and_node(comfy_host) -> None:
    """Every category the pack's nodes use is named in the README, every node's display name and ID in its
    node tables (as ComfyUI registered them, so a new or renamed node must be documented)."""
    registry = comfy_host.pack_module("nodes")
    categories = {node_class.CATEGORY for node_class in registry.NODE_CLASS_MAPPINGS.values()}
    assert len(categories) >= 8
    missing = sorted(category for category in categories if f"`{category}`" not in README)
    assert not missing, f"node categories the README does not name: {missing}"
    tables = table_rows(readme_section("Nodes"))
    undocumented = [
        f"{node_id} ({registry.NODE_DISPLAY_NAME_MAPPINGS[node_id]})"
        for node_id in registry.NODE_CLASS_MAPPINGS
        if f"**{registry.NODE_DISPLAY_NAME_MAPPINGS[node_id]}**" not in tables or f"`{node_id}`" not in tables
    ]
    assert not undocumented, f"nodes missing from the README's node tables: {undocumented}"
