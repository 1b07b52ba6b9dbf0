"""Every relative link in the docs leads somewhere: the file exists inside the repository and an `#anchor` is
the GitHub slug of a heading in the target (README, CONTRIBUTING, CHANGELOG, events/README and every page
under docs/). README stays a front door (at most 300 lines) that links every page of docs/. The checker
itself is tested on small documents first, so a broken anchor is known to fail.

GitHub's slug of a heading: its rendered text, lower-cased, every character that is not a letter, digit,
`_`, `-` or space removed, spaces turned into `-`; a repeated slug gets `-1`, `-2`... (github/markup's
table-of-contents filter, which github.com applies to Markdown files).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "CHANGELOG.md", ROOT / "events" / "README.md"]
DOCS = sorted([*PAGES, *(ROOT / "docs").glob("*.md")])
README_MAX_LINES = 300

_FENCE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", re.M | re.S)
_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)[ \t#]*$", re.M)
_LINK = re.compile(r"\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)


def prose(text: str) -> str:
    """The text without fenced code blocks and code spans, where nothing is a link or a heading."""
    return _CODE_SPAN.sub(" ", _FENCE.sub("", text))


def slug(heading: str) -> str:
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text is what shows
    text = text.replace("`", "").lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(text: str) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for heading in _HEADING.findall(_FENCE.sub("", text)):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def targets(text: str) -> list[str]:
    """Relative link targets (a page, a file, a directory, `#anchor` or `page#anchor`), in order."""
    return [target for target in _LINK.findall(prose(text)) if not _SCHEME.match(target)]


def problems(doc: Path, root: Path = ROOT) -> list[str]:
    """What is wrong with the relative links of `doc`: each as `target: why`."""
    found = []
    for target in targets(doc.read_text()):
        path_part, _, anchor = target.partition("#")
        destination = (doc.parent / path_part).resolve() if path_part else doc
        if not destination.is_relative_to(root.resolve()):
            found.append(f"{target}: outside the repository")
        elif not destination.exists():
            found.append(f"{target}: no such file")
        elif anchor and (destination.suffix != ".md" or anchor not in anchors(destination.read_text())):
            found.append(f"{target}: no heading with that anchor in {destination.name}")
    return found


# ---- the checker ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("heading", "expected"),
    [
        ("2. Deploy: staging, then production", "2-deploy-staging-then-production"),
        ("Limited Data Use (CCPA)", "limited-data-use-ccpa"),
        ("12. CI/CD with GitHub Actions", "12-cicd-with-github-actions"),
        ("4. Configure mParticle's webhook", "4-configure-mparticles-webhook"),
        ("mParticle → Facebook offline conversions forwarder", "mparticle--facebook-offline-conversions-forwarder"),
        ("`make run` and `EVENT_NAME_OVERRIDES`", "make-run-and-event_name_overrides"),
        ("The [deploy guide](docs/deploy.md)", "the-deploy-guide"),
        ("Île-de-France", "île-de-france"),
    ],
)
def test_a_heading_gets_githubs_slug(heading: str, expected: str) -> None:
    assert slug(heading) == expected


CHECKED = """# Page

## Section
## Section
See [one](#section), [two](#section-1), [there](other.md#far-away), [a file](data/x.json), [a dir](data/),
[the web](https://example.com/#nowhere), [mail](mailto:a@example.com) and `[code](#not-a-link)`.

```
## Not a heading
[not a link](#not-a-heading)
```
"""


@pytest.mark.parametrize(
    ("link", "problem"),
    [
        (None, None),
        ("[broken anchor](#sektion)", "#sektion: no heading with that anchor in page.md"),
        ("[third](#section-2)", "#section-2: no heading with that anchor in page.md"),
        ("[in code only](#not-a-heading)", "#not-a-heading: no heading with that anchor in page.md"),
        ("[far](other.md#far)", "other.md#far: no heading with that anchor in other.md"),
        ("[missing](missing.md)", "missing.md: no such file"),
        ("[missing too](docs/deploy.md#1-prerequisites)", "docs/deploy.md#1-prerequisites: no such file"),
        ("[anchor in data](data/x.json#key)", "data/x.json#key: no heading with that anchor in x.json"),
        ("[outside](../../etc/hosts)", "../../etc/hosts: outside the repository"),
    ],
)
def test_the_checker_finds_every_broken_link_and_only_those(tmp_path: Path, link: str | None, problem: str) -> None:
    repository = tmp_path / "repository"
    (repository / "data").mkdir(parents=True)
    (repository / "data" / "x.json").write_text("{}")
    (repository / "other.md").write_text("# Other\n\n### Far away\n")
    page = repository / "page.md"
    page.write_text(CHECKED + (f"\nAnd {link}.\n" if link else ""))
    assert problems(page, repository) == ([problem] if problem else [])


# ---- the repository's docs -----------------------------------------------------------------------------------


@pytest.mark.parametrize("doc", DOCS, ids=lambda doc: doc.relative_to(ROOT).as_posix())
def test_every_relative_link_and_anchor_resolves(doc: Path) -> None:
    assert problems(doc) == []


def test_readme_is_a_front_door_that_links_every_page() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= README_MAX_LINES
    linked = {(ROOT / target.partition("#")[0]).resolve() for target in targets(readme)}
    pages = {page.resolve() for page in DOCS if page.name != "README.md" or page.parent != ROOT}
    assert sorted(str(page.relative_to(ROOT)) for page in pages - linked) == []
