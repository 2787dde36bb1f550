"""The documents hold together: every relative link resolves, README stays a short map, and its two
commands are there verbatim (.ci/run runs the second). Plain text only: no TensorFlow, fast."""
from __future__ import annotations

import pathlib
import re
import unicodedata
from urllib.parse import unquote

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
README_MAX_BYTES = 16 * 1024
COMMANDS = (
    "python3 -m venv .venv && . .venv/bin/activate && pip install -r requirements.txt "
    "&& python train_and_test.py --mode demo",
    'python -m pytest tests -m "not slow"',
)
# Documents that arrive with another branch: a link to one is skipped (with a message) while the
# file is not in this checkout, and checked like any other once it is.
ARRIVING: set[str] = set()

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$", re.M)


def documents() -> list[pathlib.Path]:
    """README.md and the other top-level documents, and the READMEs of the folders users fill."""
    return (sorted(ROOT.glob("*.md")) + sorted(ROOT.glob("docs/*.md")) + sorted(ROOT.glob("experiments/*.md"))
            + sorted(p for p in ROOT.glob("*/README.md") if p.parent.name != "tests"))


def prose(text: str) -> str:
    """The text without fenced code blocks and code spans, where a ``[x](y)`` is not a link."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: the rendered text (no code ticks, emphasis or link
    targets), lower case, punctuation other than '-' and '_' dropped, spaces turned into '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # [text](url) -> text
    text = text.replace("`", "")
    text = re.sub(r"(\*\*|__|\*)(.+?)\1", r"\2", text)
    text = unicodedata.normalize("NFC", text).lower()
    text = "".join(c for c in text if c.isalnum() or c in "-_ ")
    return text.replace(" ", "-")


def anchors(path: pathlib.Path) -> set[str]:
    """Every heading anchor of a Markdown file, duplicates numbered as GitHub does (-1, -2, ...)."""
    seen: dict[str, int] = {}
    result = set()
    for _, heading in HEADING.findall(FENCE.sub("", path.read_text(encoding="utf-8"))):
        slug = github_anchor(heading)
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f"{slug}-{count}")
    return result


def relative_links(path: pathlib.Path) -> list[str]:
    """The link targets of a document that point inside the repo (not http:, mailto:, ...)."""
    targets = LINK.findall(prose(path.read_text(encoding="utf-8")))
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t, re.I)]


def test_github_anchor_rules():
    assert github_anchor("Which number to publish") == "which-number-to-publish"
    assert github_anchor("The synthetic Human3.6M (`synthetic_h36m.py`)") == "the-synthetic-human36m-synthetic_h36mpy"
    assert github_anchor("GPU (Keras + JAX on an H200)") == "gpu-keras--jax-on-an-h200"
    assert github_anchor("Fusions: `concat` and `mean`") == "fusions-concat-and-mean"
    assert github_anchor("i.i.d. batches") == "iid-batches"


@pytest.mark.parametrize("document", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(document):
    broken, arriving = [], []
    for target in relative_links(document):
        file_part, _, anchor = unquote(target).partition("#")
        linked = (document.parent / file_part).resolve() if file_part else document
        if file_part and not linked.exists():
            if linked.name in ARRIVING and linked.parent == ROOT:
                arriving.append(target)
            else:
                broken.append(f"{target}: no such file")
            continue
        if anchor:
            if linked.suffix.lower() != ".md" or not linked.is_file():
                broken.append(f"{target}: an anchor into something that is not a Markdown file")
            elif anchor not in anchors(linked):
                broken.append(f"{target}: no heading of {linked.name} has the anchor #{anchor}")
    assert not broken, f"{document.name}: broken links:\n" + "\n".join(broken)
    if arriving:
        pytest.skip(f"{document.name} links to {', '.join(sorted(set(arriving)))}, which arrives with "
                    "another branch and is not in this checkout yet; every other link resolves.")


def test_readme_is_a_short_map():
    size = len(README.read_bytes())
    assert size < README_MAX_BYTES, (f"README.md is {size} bytes; keep it under {README_MAX_BYTES} (the first "
                                     "five minutes) and move the long parts into the linked documents.")


def test_readme_holds_the_two_commands_verbatim():
    lines = [line.strip() for line in README.read_text(encoding="utf-8").splitlines()]
    for command in COMMANDS:
        assert command in lines, f"README.md lost the command, verbatim on a line of its own: {command}"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert COMMANDS[1] in [line.strip() for line in ci], ".ci/run no longer runs README's test command"


# --------------------------------------------------------------------------- the documented commands

DOCUMENTED = (README, ROOT / "docs" / "INFERENCE.md")


def hub_commands(path: pathlib.Path) -> list[list[str]]:
    """The ``python train_and_test.py ...`` commands of a document's code blocks, continuation lines
    joined and ``[optional]`` parts dropped, as argument lists (without the program)."""
    import shlex
    commands = []
    for block in FENCE.finditer(path.read_text(encoding="utf-8")):
        text = re.sub(r"\\\n\s*", " ", block.group(0))
        for line in text.splitlines():
            line = re.sub(r"\[[^\]]*\]", "", line.strip())
            if line.startswith("python train_and_test.py"):
                commands.append(shlex.split(line)[2:])
    return commands


def test_the_documented_commands_parse_and_test_or_predict_name_no_other_config():
    """Every flag and value of the commands in README.md and INFERENCE.md exists (options.py's parser);
    a test or predict command names no config but the one README trains (the sidecar gives it)."""
    import options
    parser = options.build_parser()
    parsed = {path.name: [parser.parse_args(argv) for argv in hub_commands(path)] for path in DOCUMENTED}
    assert len(parsed["README.md"]) >= 3 and parsed["INFERENCE.md"], parsed
    trained = {args.config for args in parsed["README.md"] if args.mode == "train"}
    assert trained == {"paper"}
    for name, commands in parsed.items():
        for args in commands:
            if args.mode in ("test", "predict"):
                assert args.config in trained | {None}, (name, vars(args))
