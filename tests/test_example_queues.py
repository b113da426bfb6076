"""The README's CLI tour and each client's README use queues of their own, so that running the
examples in any order never hands one language's tasks to another language's handler."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
READMES = [ROOT / "README.md", *sorted((ROOT / "clients").glob("*/README.md"))]

#: Code blocks of the READMEs.
_BLOCK = re.compile(r"```[a-z]*\n(.*?)```", re.DOTALL)
#: A queue named in a call of any client: create_queue("q"), CreateTask(ctx, "q"),
#: NewWorker(client, "q"), Worker("127.0.0.1:50051", "q"), setParent("q"), ...
_CALL = re.compile(
    r"\b(?:\w*(?:queue|task|tasks|worker)\w*|setParent|setName)\s*\(\s*"
    r"(?:(?:ctx|client|\"[\d.]+:\d+\")\s*,\s*)?\"([a-z][a-z0-9-]*)\"",
    re.IGNORECASE,
)
#: A queue named on the command line: taskq queue create q, taskq task add q, ...
_COMMAND = re.compile(r"\btaskq (?:queue \w+|task (?:add|list|lease)) ([a-z][a-z0-9-]*)")


def queues_named(readme: Path) -> set[str]:
    code = "\n".join(_BLOCK.findall(readme.read_text()))
    return set(_CALL.findall(code)) | set(_COMMAND.findall(code))


def test_every_readme_names_queues_in_its_examples():
    for readme in READMES:
        assert queues_named(readme), f"no queue found in {readme.relative_to(ROOT)}: the patterns need updating"


def test_no_two_readmes_share_a_queue():
    named = {readme.relative_to(ROOT): queues_named(readme) for readme in READMES}
    for (one, ones), (other, others) in itertools.combinations(named.items(), 2):
        assert not ones & others, f"{one} and {other} both use {sorted(ones & others)}"
