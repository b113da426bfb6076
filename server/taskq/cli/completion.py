"""`taskq completion bash|zsh|fish`: prints a shell completion script for the taskq command.

The script is static: written from the command tree when it is printed, it holds every
command, option and fixed value, so pressing TAB runs no Python. It completes commands
(`taskq qu` -> `queue`), options (`--le` -> `--lease`, `--lease-token`) and option values with
fixed choices (`--type` -> `push`, `pull`); other values complete as file names. Options
that take a value are skipped with it when finding the command, so `taskq --server host:1 qu`
completes too. Queue and task names are not completed (that would take a call to a server).

    bash: source <(taskq completion bash)    (e.g. in ~/.bashrc)
    zsh:  source <(taskq completion zsh)     (after compinit), or save it as _taskq in $fpath
    fish: taskq completion fish > ~/.config/fish/completions/taskq.fish
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Callable

from taskq.cli import command_tree
from taskq.cli.command_tree import Command

SHELLS = ("bash", "zsh", "fish")


def add_parser(subparsers, root: argparse.ArgumentParser) -> None:
    """Adds `completion`; its scripts describe the tree under `root` as it is when run."""
    parser = subparsers.add_parser(
        "completion", help="print a shell completion script (bash, zsh or fish)",
        description="Print a completion script for the taskq command. bash: `source <(taskq completion bash)` "
                    "in ~/.bashrc; zsh: `source <(taskq completion zsh)` in ~/.zshrc after compinit; fish: "
                    "`taskq completion fish > ~/.config/fish/completions/taskq.fish`.",
    )
    parser.add_argument("shell", choices=SHELLS, help="the shell to complete in")
    parser.set_defaults(run=lambda arguments: _print(root, arguments.shell))


def _print(root: argparse.ArgumentParser, shell: str) -> int:
    print(script(root, shell), end="")
    return 0


def script(root: argparse.ArgumentParser, shell: str) -> str:
    commands = list(command_tree.walk(root))
    return {"bash": bash, "zsh": zsh, "fish": fish}[shell](commands)


# The tables every script holds, keyed by command path ("taskq queue create") ------------------


def _tables(commands: list[Command]) -> dict[str, dict[str, str]]:
    """words, options, valued (the options taking a value) per command; choices per
    "path --option"; each value a space-separated list."""
    tables: dict[str, dict[str, str]] = {"words": {}, "options": {}, "valued": {}, "choices": {}}
    for command in commands:
        tables["words"][command.path] = " ".join(command.words)
        tables["options"][command.path] = " ".join(name for option in command.options for name in option.names)
        tables["valued"][command.path] = " ".join(
            name for option in command.options if option.takes_value for name in option.names)
        for option in command.options:
            for name in option.names:
                if option.choices:
                    tables["choices"][f"{command.path} {name}"] = " ".join(option.choices)
    return tables


def _assignments(tables: dict[str, dict[str, str]], entry: Callable[[str, str], str]) -> str:
    """The tables as associative-array assignments (bash and zsh share the syntax)."""
    lines = []
    for table, rows in tables.items():
        lines.append(f"typeset -gA _taskq_{table}=(")
        lines += [f"    {entry(key, value)}" for key, value in rows.items()]
        lines.append(")")
    return "\n".join(lines)


# bash ------------------------------------------------------------------------------------------

# The walk over the words before the cursor, in the syntax bash and zsh share (their word arrays
# differ: @WORDS@ from @FIRST@ to before @CURRENT@): a command word deepens the path, an option
# that takes a value skips that value (skip stays 1 when the word being completed is one).
_WALK = r"""
    local command=taskq word skip=0 i
    for ((i = @FIRST@; i < @CURRENT@; i++)); do
        word="${@WORDS@[i]}"
        if ((skip)); then
            skip=0
        elif [[ $word == -* ]]; then
            [[ " ${_taskq_valued[$command]} " == *" $word "* ]] && skip=1
        elif [[ " ${_taskq_words[$command]} " == *" $word "* ]]; then
            command="$command $word"
        fi
    done
"""


def _walk(words: str, first: int, current: str) -> str:
    return _WALK.replace("@WORDS@", words).replace("@FIRST@", str(first)).replace("@CURRENT@", current).strip("\n")


_BASH = r"""
_taskq() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"
@WALK@
    # --option=value: bash splits it at the "=" (COMP_WORDBREAKS).
    if [[ $prev == = && $COMP_CWORD -gt 2 ]]; then
        prev="${COMP_WORDS[COMP_CWORD-2]}" skip=1
    fi
    if ((skip)); then
        # A value; none offered when any goes: `complete -o default` then offers file names.
        COMPREPLY=($(compgen -W "${_taskq_choices[$command $prev]}" -- "$cur"))
    elif [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "${_taskq_options[$command]}" -- "$cur"))
    else
        COMPREPLY=($(compgen -W "${_taskq_words[$command]}" -- "$cur"))
    fi
}
complete -o default -F _taskq taskq
"""


def bash(commands: list[Command]) -> str:
    tables = _assignments(_tables(commands), lambda key, value: f"[{shlex.quote(key)}]={shlex.quote(value)}")
    body = _BASH.replace("@WALK@", _walk("COMP_WORDS", 1, "COMP_CWORD")).lstrip()
    return f"# bash completion for taskq, written by `taskq completion bash`.\n{tables}\n{body}"


# zsh -------------------------------------------------------------------------------------------

_ZSH = r"""
_taskq() {
    local cur=${words[CURRENT]} prev=${words[CURRENT-1]}
@WALK@
    if ((skip)); then
        local choices=${_taskq_choices[$command $prev]}
        if [[ -n $choices ]]; then compadd -- ${=choices}; else _files; fi
    elif [[ $cur == --*=* ]]; then
        local option=${cur%%=*}
        compset -P '*='
        local choices=${_taskq_choices[$command $option]}
        if [[ -n $choices ]]; then compadd -- ${=choices}; else _files; fi
    elif [[ $cur == -* ]]; then
        compadd -- ${=_taskq_options[$command]}
    else
        compadd -- ${=_taskq_words[$command]}
    fi
}
if [[ ${zsh_eval_context[-1]} == loadautofunc ]]; then
    _taskq "$@"
else
    compdef _taskq taskq
fi
"""


def zsh(commands: list[Command]) -> str:
    tables = _assignments(_tables(commands), lambda key, value: f"{shlex.quote(key)} {shlex.quote(value)}")
    body = _ZSH.replace("@WALK@", _walk("words", 2, "CURRENT")).lstrip()
    return f"#compdef taskq\n# zsh completion for taskq, written by `taskq completion zsh`.\n{tables}\n{body}"


# fish ------------------------------------------------------------------------------------------

_FISH = r"""
function __taskq_complete
    set -l tokens (commandline -opc)
    set -l current (commandline -ct)
    set -l command taskq
    set -l skip 0
    for word in $tokens[2..-1]
        if test $skip = 1
            set skip 0
        else if string match -q -- '-*' $word
            contains -- $word (__taskq_table valued $command); and set skip 1
        else if contains -- $word (__taskq_table words $command)
            set command "$command $word"
        end
    end
    if test $skip = 1
        set -l choices (__taskq_table choices "$command $tokens[-1]")
        if set -q choices[1]
            printf '%s\n' $choices
        else
            __fish_complete_path $current
        end
    else if string match -q -- '--*=*' $current
        set -l option (string split -m 1 = -- $current)[1]
        for choice in (__taskq_table choices "$command $option")
            echo "$option=$choice"
        end
    else if string match -q -- '-*' $current
        __taskq_table options $command
    else
        __taskq_table words $command
    end
end
complete -c taskq -f -a '(__taskq_complete)'
"""


def fish(commands: list[Command]) -> str:
    lines = ["# fish completion for taskq, written by `taskq completion fish`.",
             "# __taskq_table TABLE KEY: the entries of one row of a table, one per line.",
             "function __taskq_table",
             "    switch \"$argv[1] $argv[2]\""]
    for table, rows in _tables(commands).items():
        for key, value in rows.items():
            if value:
                lines.append(f"        case {shlex.quote(f'{table} {key}')}")
                lines.append(f"            printf '%s\\n' {value}")
    lines += ["    end", "end"]
    return "\n".join(lines) + "\n" + _FISH
