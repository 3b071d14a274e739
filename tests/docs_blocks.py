"""The docs' fenced code blocks, their links, and a shell that runs a page's blocks in order.

tests/test_docs.py uses this module; docs/development.md ("How the docs are tested") describes
the rules. In short, the info string of a block says what it is:

- `text`: output (an answer, a log excerpt, an error message); never run.
- `sh`: shell commands, run with bash (`set -euo pipefail`) against a server the test starts.
  Every `sh` block of a page runs in order in one bash process, so variables carry over.
- `sh docker`: the same, and its `docker build` / `docker run` are stood in for: no Docker
  daemon runs the tests, so the image's command runs on the host with the block's variables.
- `sh install`: the quick start's install-and-start command, run as shown in a copy of the
  checkout.
- `sh ci`: the quick start's test command, which must be the one `.ci/run` runs.
- `python`: a script, run against a started server; or, when it defines `test_...`
  functions, a test file run with pytest.

Anything else, and a block with no info string, is refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from support import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# What the docs write for the server they talk to; a test puts its own server's address there.
DOCS_ADDRESS = "127.0.0.1:8080"

KINDS = {
    "text": "output",
    "sh": "shell",
    "sh docker": "docker",
    "sh install": "install",
    "sh ci": "ci",
    "python": "python",
}

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    page: Path
    line: int  # of the opening fence, from 1
    info: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def kind(self) -> str | None:
        """What the runner does with the block (see KINDS), or None when it cannot tell."""
        return KINDS.get(" ".join(self.info.split()))

    @property
    def is_test_file(self) -> bool:
        """A python block that is a pytest file: it defines test functions."""
        return re.search(r"^def test_", self.text, re.MULTILINE) is not None


def blocks(page: Path) -> list[Block]:
    """Every fenced code block of a Markdown page, in order."""
    found: list[Block] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None or ("`" in opening["info"] and opening["fence"][0] == "`"):
            index += 1
            continue
        fence, start = opening["fence"], index
        body: list[str] = []
        index += 1
        while index < len(lines):
            closing = _FENCE.match(lines[index])
            if (
                closing is not None
                and closing["fence"][0] == fence[0]
                and len(closing["fence"]) >= len(fence)
                and not closing["info"].strip()
            ):
                break
            body.append(lines[index])
            index += 1
        found.append(Block(page, start + 1, opening["info"].strip(), "\n".join(body) + "\n"))
        index += 1
    return found


# ---------------------------------------------------------------- links and anchors


def prose(page: Path, blank_code: bool = True) -> list[tuple[int, str]]:
    """The page's lines outside fenced blocks, numbered from 1, inline code blanked out
    (unless `blank_code` is false)."""
    inside: set[int] = set()
    for block in blocks(page):
        inside.update(range(block.line, block.line + block.text.count("\n") + 2))
    lines = page.read_text(encoding="utf-8").splitlines()
    return [
        (number, re.sub(r"(`+)(?:(?!\1).)+?\1", "``", line) if blank_code else line)
        for number, line in enumerate(lines, start=1)
        if number not in inside
    ]


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading's text."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link counts by its text
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchors a page offers: its headings' (GitHub's numbering of repeats included) and
    explicit `id`/`name` attributes."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    text = page.read_text(encoding="utf-8")
    lines = [line for _, line in prose(page, blank_code=False)]
    for line in lines:
        heading = re.match(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            base = slug(heading[1])
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    found.update(re.findall(r"""<a\s[^>]*(?:id|name)=["']([^"']+)["']""", text))
    return found


_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:[ \t]*<?(\S+?)>?(?:\s|$)", re.MULTILINE)


def links(page: Path) -> list[tuple[int, str]]:
    """Every link target of a page, with its line (a link's text may span lines)."""
    kept = dict(prose(page))
    count = len(page.read_text(encoding="utf-8").splitlines())
    text = "\n".join(kept.get(number, "") for number in range(1, count + 1))
    found = [
        (text.count("\n", 0, match.start()) + 1, match[1])
        for pattern in (_LINK, _DEFINITION)
        for match in pattern.finditer(text)
    ]
    return sorted(found)


def broken(page: Path, target: str) -> str | None:
    """Why a relative link (with its #anchor) does not resolve, or None when it does."""
    if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # https:, mailto:
        return None
    path, _, anchor = target.partition("#")
    destination = (page.parent / path).resolve() if path else page
    if not destination.exists():
        return f"{path} does not exist"
    if ROOT not in destination.parents and destination != ROOT:
        return f"{path} is outside the repository"
    if anchor:
        if destination.suffix != ".md":
            return f"#{anchor}: only Markdown pages are checked for anchors ({path})"
        if anchor not in anchors(destination):
            return f"no heading gives #{anchor} in {destination.relative_to(ROOT)}"
    return None


# ---------------------------------------------------------------- a block's parts


def logical_lines(text: str) -> list[str]:
    """Lines, with backslash continuations joined (each logical line keeps its newlines)."""
    result: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        current += line
        if not line.rstrip("\n").endswith("\\"):
            result.append(current)
            current = ""
    if current:
        result.append(current)
    return result


_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_SHELL_OPERATORS = re.compile(r"[|;&<>]")


def command_words(command: str) -> list[str]:
    """A simple command's words without the `NAME=value` assignments before it (quotes
    removed, nothing expanded)."""
    try:
        words = shlex.split(command, comments=True)
    except ValueError:
        return []
    while words and _ASSIGNMENT.match(words[0]):
        words.pop(0)
    return words


def server_command(line: str) -> tuple[str, str] | None:
    """(what runs before it, the command) when a logical line starts a server in the
    foreground: a `mockserver ...` or `docker run ...` command (after `NAME=value`
    assignments, and after `... &&`).

    A line that pipes, redirects or chains the command after it (`mockserver --help | head`,
    `mockserver --spec bad.yaml || echo $?`) runs as shown instead, as do `--help`,
    `--version` and `mockserver diff`.
    """
    flat = line.replace("\\\n", " ").strip()
    before, _, last = flat.rpartition("&&")
    words = command_words(last)
    if not words:
        return None
    if Path(words[0]).name != "mockserver" and words[:2] != ["docker", "run"]:
        return None
    if _SHELL_OPERATORS.search(re.sub(r"\$\([^)]*\)", "", last)):
        return None
    if {"-h", "--help", "--version"} & set(words) or words[1:2] == ["diff"]:
        return None  # runs and exits (`mockserver diff` too)
    return before.strip(), last.strip()


@dataclass(frozen=True)
class Part:
    """A piece of a block: shell text, or (with `server` set) the command that starts a server,
    followed by the shell text to run against it."""

    shell: str
    server: str | None = None
    after: str = ""


def parts(block: Block) -> Part:
    """The block split at the first line that starts a server (the rest runs against it)."""
    lines = logical_lines(block.text)
    for index, line in enumerate(lines):
        found = server_command(line)
        if found is not None:
            before, command = found
            head = "".join(lines[:index]) + (before + "\n" if before else "")
            rest = "".join(lines[index + 1 :])
            if any(server_command(later) for later in logical_lines(rest)):
                raise ValueError(f"{block.where}: one block starts one server at most")
            return Part(head, command, rest)
    return Part(block.text)


# ---------------------------------------------------------------- the Dockerfile


def dockerfile() -> tuple[dict[str, str], list[str]]:
    """The image's environment (its ENV lines) and command (its CMD, exec form)."""
    env: dict[str, str] = {}
    command: list[str] = []
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    for line in text.splitlines():
        keyword, _, rest = line.strip().partition(" ")
        if keyword.upper() == "ENV":
            for pair in shlex.split(rest):
                name, _, value = pair.partition("=")
                env[name] = value
        elif keyword.upper() == "CMD":
            command = [str(word) for word in json.loads(rest)]
    return env, command


def docker_run(
    argv: list[str], environment: dict[str, str]
) -> tuple[dict[str, str], dict[int, int], list[str]]:
    """`docker run` options as (variables, host port -> container port, command); a bare
    `-e NAME` takes its value from `environment`, as docker takes it from the shell's."""
    env: dict[str, str] = {}
    ports: dict[int, int] = {}
    words = list(argv[2:])
    while words and words[0].startswith("-"):
        option = words.pop(0)
        if option in ("--rm", "-it", "-i", "-t"):
            continue
        name, has_value, value = option.partition("=")
        if name in ("-e", "--env", "-p", "--publish") and not has_value:
            value = words.pop(0)
        if name in ("-e", "--env"):
            key, given, setting = value.partition("=")
            if given:
                env[key] = setting
            elif key in environment:  # docker leaves out a variable the shell does not have
                env[key] = environment[key]
        elif name in ("-p", "--publish"):
            host, _, container = value.rpartition(":")
            ports[int(host.rpartition(":")[2])] = int(container)
        else:
            raise ValueError(f"docker run {option}: not supported by the docs test")
    if not words:
        raise ValueError("docker run: no image")
    return env, ports, words[1:]


# ---------------------------------------------------------------- one bash for a page

PRELUDE = r"""
set -euo pipefail
__docs_mark() { : > "$__DOCS_DIR/mark.$1"; }
__docs_argv() {  # the words of a command as bash expands them, and the exported variables
    local out=$1; shift
    printf '%s\0' "$@" > "$out"
    env -0 > "$out.env"
}
docker() {  # no Docker daemon here: the test runs the image's command for `docker run`
    if [[ ${1-} == build ]]; then
        echo "(docs test: 'docker $*' not run; the image's command runs on the host instead)"
        return 0
    fi
    echo "docs test: only docker build, and docker run in a 'sh docker' block" >&2
    return 1
}
"""


class ShellFailed(Exception):
    """A shell segment failed: exit status, or a timeout."""


class Shell:
    """One bash process that is fed a page's blocks piece by piece, so that variables and the
    working directory carry over from block to block, and the test can start or stop a server
    between two pieces."""

    def __init__(self, cwd: Path, state: Path, env: dict[str, str]) -> None:
        self.state = state  # bash's output and the marks; outside cwd
        self.output = state / "shell.log"
        self._count = 0
        read_end, write_end = os.pipe()
        with self.output.open("wb") as output:
            self.process = subprocess.Popen(
                ["bash", "--noprofile", "--norc", f"/dev/fd/{read_end}"],
                cwd=cwd,
                env={**env, "__DOCS_DIR": str(state)},
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                pass_fds=(read_end,),
                start_new_session=True,  # its own process group, so nothing is left behind
            )
        os.close(read_end)
        self._script = os.fdopen(write_end, "w", encoding="utf-8")
        self.run(PRELUDE)

    def run(self, text: str, timeout: float = 120.0) -> str:
        """Run shell text; its output, or ShellFailed with the output."""
        self._count += 1
        mark = self.state / f"mark.{self._count}"
        start = self.output.stat().st_size
        try:
            self._script.write(f"{text.rstrip()}\n__docs_mark {self._count}\n")
            self._script.flush()
        except BrokenPipeError:
            pass  # bash has exited: reported below
        deadline = time.monotonic() + timeout
        while not mark.exists():
            status = self.process.poll()
            if status is not None:
                raise ShellFailed(f"exit status {status}\n{self._since(start)}")
            if time.monotonic() > deadline:
                self.close()
                raise ShellFailed(f"still running after {timeout:.0f} s\n{self._since(start)}")
            time.sleep(0.01)
        return self._since(start)

    def expand(self, command: str) -> tuple[list[str], dict[str, str]]:
        """A command's words as bash expands them, and bash's exported variables."""
        self._count += 1
        out = self.state / f"argv.{self._count}"
        self.run(f"__docs_argv {shlex.quote(str(out))} {command}")
        argv = out.read_bytes().decode().split("\0")[:-1]
        pairs = [
            item.partition("=") for item in Path(f"{out}.env").read_bytes().decode().split("\0")
        ]
        return argv, {name: value for name, _, value in pairs if name}

    def _since(self, start: int) -> str:
        with self.output.open("rb") as output:
            output.seek(start)
            return output.read().decode(errors="replace")

    def close(self) -> int:
        """Let bash finish (or end it); its exit status."""
        if not self._script.closed:
            with contextlib.suppress(BrokenPipeError):
                self._script.close()
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait()
