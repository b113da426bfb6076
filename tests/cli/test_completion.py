"""`taskq completion bash|zsh|fish`: the printed script, loaded into the real shell, completes
commands, options and fixed option values. bash is always tested; zsh and fish when installed
(Debian's zsh and fish packages)."""

from __future__ import annotations

import shlex
import shutil
import subprocess

import pytest

#: (the words of a command line, the last one being completed) -> the completions expected.
CASES = [
    (["taskq", "qu"], ["queue"]),
    (["taskq", "queue", "p"], ["pause", "purge"]),
    (["taskq", "--json", "task", "l"], ["lease", "lease-modify", "list"]),
    (["taskq", "--server", "127.0.0.1:1", "--timeout", "5s", "ta"], ["task"]),
    (["taskq", "queue", "create", "q", "--type", ""], ["pull", "push"]),
    (["taskq", "task", "list", "q", "--state", "re"], ["ready"]),
    (["taskq", "task", "lease", "q", "--ol"], ["--oldest-tag"]),
    (["taskq", "queue", "purge", "q", "--y"], ["--yes"]),
    (["taskq", "completion", ""], ["bash", "fish", "zsh"]),
]


def script(taskq_bin: str, shell: str) -> str:
    completed = subprocess.run([taskq_bin, "completion", shell], capture_output=True, text=True, timeout=60, check=True)
    return completed.stdout


def run_shell(command: list[str], program: str) -> list[str]:
    completed = subprocess.run([*command, program], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == ""
    # fish prints "candidate<TAB>description"; the others print bare candidates.
    return sorted(line.split("\t")[0] for line in completed.stdout.splitlines() if line)


@pytest.mark.parametrize(("words", "expected"), CASES)
def test_bash_completes_commands_options_and_values(taskq_bin, words, expected):
    program = (f"{script(taskq_bin, 'bash')}\n"
               f"COMP_WORDS=({' '.join(shlex.quote(word) for word in words)}); COMP_CWORD={len(words) - 1}\n"
               f"COMP_LINE={shlex.quote(' '.join(words))}; COMP_POINT=${{#COMP_LINE}}\n"
               "$(complete -p taskq | sed 's/.*-F \\([^ ]*\\).*/\\1/')\n"
               'printf "%s\\n" "${COMPREPLY[@]}"')
    assert run_shell(["bash", "--norc", "--noprofile", "-c"], program) == expected


def test_bash_offers_file_names_for_values_without_fixed_choices(taskq_bin, tmp_path):
    (tmp_path / "payload.json").write_text("{}")
    program = (f"{script(taskq_bin, 'bash')}\n"
               "complete -p taskq\n"
               f"COMP_WORDS=(taskq task add q --payload-file {tmp_path}/pay); COMP_CWORD=5; _taskq\n"
               'echo "${#COMPREPLY[@]} replies"')
    lines = run_shell(["bash", "--norc", "--noprofile", "-c"], program)
    # No words of its own: `complete -o default` hands the value to bash's file-name completion.
    assert lines == sorted(["0 replies", "complete -o default -F _taskq taskq"])


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
@pytest.mark.parametrize(("words", "expected"), CASES)
def test_zsh_completes_commands_options_and_values(taskq_bin, words, expected):
    # Outside a completion widget compadd cannot run; these stand-ins print what it would offer
    # (the candidates that start with the word being completed).
    stubs = ("compdef() { : }\n"
             "compadd() { [[ $1 == -- ]] && shift; local w; for w in \"$@\"; do\n"
             "  [[ $w == ${words[CURRENT]}* ]] && print -r -- $w; done; return 0 }\n"
             "_files() { print -r -- '<files>' }\n"
             "compset() { : }\n")
    program = (f"{stubs}{script(taskq_bin, 'zsh')}\n"
               f"words=({' '.join(shlex.quote(word) for word in words)}); CURRENT={len(words)}\n"
               "_taskq")
    assert run_shell(["zsh", "--no-rcs", "-c"], program) == expected


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed")
@pytest.mark.parametrize(("words", "expected"), CASES)
def test_fish_completes_commands_options_and_values(taskq_bin, words, expected):
    line = " ".join(words)  # the last word is the one being completed ("" leaves a space)
    program = f"{script(taskq_bin, 'fish')}\ncomplete -C {shlex.quote(line)}"
    assert run_shell(["fish", "--no-config", "-c"], program) == expected
