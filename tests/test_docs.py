"""The docs work as written: every fenced code block of README.md and docs/*.md runs as shown
in a test, or is marked as output (`text`); every relative link and #anchor resolves.

How each block runs is decided by its info string: see tests/docs_blocks.py and the section
"How the docs are tested" of docs/development.md.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
import requests
from docs_blocks import (
    DOCS_ADDRESS,
    PAGES,
    Block,
    Shell,
    ShellFailed,
    blocks,
    broken,
    docker_run,
    dockerfile,
    links,
    parts,
)
from support import ROOT, Server, free_port, nonconforming

ALL = [block for page in PAGES for block in blocks(page)]
PYTHON = [block for block in ALL if block.kind == "python"]
SHELL_PAGES = [
    page for page in PAGES if any(block.kind in ("shell", "docker") for block in blocks(page))
]
VENV = Path(sys.prefix)  # the environment running the tests: `.venv` in the docs' commands


def page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def clean_environment() -> dict[str, str]:
    """The test's environment without what would steer pytest or the server, the venv first
    on PATH (as if activated: `mockserver`, `python`)."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("PYTEST_", "MOCKSERVER_"))
    }
    env["PATH"] = f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def started(args: list[str], env: dict[str, str] | None = None) -> Server:
    """A running Server."""
    return Server(args, env or {}).start()


def tail(lines: list[str], count: int = 40) -> str:
    return "\n".join(lines[-count:])


def report(block: Block, problem: str, output: str = "", server: Server | None = None) -> str:
    text = f"{block.where}: {problem}\n--- the block ({block.info}) ---\n{block.text}"
    if output:
        text += f"--- its output ---\n{output.rstrip()}\n"
    if server is not None:
        text += f"--- the server's log (last lines) ---\n{tail(server.log)}\n"
    return text


def fail(block: Block, problem: str, output: str = "", server: Server | None = None) -> NoReturn:
    """Fail the test with the block, its output and its server's log."""
    pytest.fail(report(block, problem, output, server), pytrace=False)


def of_kind(kind: str) -> list[Block]:
    return [block for block in ALL if block.kind == kind]


# ---------------------------------------------------------------- every block is accounted for


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_block_is_run_or_marked_as_output(page: Path) -> None:
    unknown = [
        f"{block.where}: info string {block.info!r}" if block.info else f"{block.where}: none"
        for block in blocks(page)
        if block.kind is None
    ]
    assert not unknown, (
        "blocks that are neither run nor marked as output: mark output `text`, commands `sh`, "
        "scripts and test files `python` (tests/docs_blocks.py lists the info strings):\n"
        + "\n".join(unknown)
    )


def test_the_quick_start_has_its_two_commands() -> None:
    found = [(block.kind, block.page.name) for block in of_kind("install") + of_kind("ci")]
    assert found == [("install", "README.md"), ("ci", "README.md")], (
        "the README's quick start, and only it, has one `sh install` block (install and start) "
        "and one `sh ci` block (the test command)"
    )


# ---------------------------------------------------------------- links


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_relative_links_and_anchors_resolve(page: Path) -> None:
    problems = [
        f"{page_id(page)}:{line}: ({target}) {why}"
        for line, target in links(page)
        if (why := broken(page, target)) is not None
    ]
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_the_readme_links_every_docs_page() -> None:
    targets = {target.partition("#")[0] for _, target in links(ROOT / "README.md")}
    missing = [page_id(page) for page in PAGES[1:] if page_id(page) not in targets]
    assert not missing, f"README.md does not link {missing}"


# ---------------------------------------------------------------- sh blocks, page by page


class PageRunner:
    """Runs a page's `sh` and `sh docker` blocks in order in one bash (see docs_blocks.Shell).

    A block runs against the page's server (default options, started when a block first names
    127.0.0.1:8080). A block with a line that starts a server (`mockserver ...`, `docker run
    ...`) runs up to that line; then the test starts that server on a free loopback port, runs
    the rest of the block against it, and stops it (SIGTERM; it must exit 0).
    """

    def __init__(self, work: Path, state: Path) -> None:
        self.shell = Shell(work, state, clean_environment())
        self.default: Server | None = None

    def run(self, block: Block, text: str, docs: str, server: Server | None) -> None:
        """Run shell text with the docs' address `docs` replaced by the server's."""
        if not text.strip():
            return
        if server is not None:
            text = text.replace(docs, f"127.0.0.1:{server.port}")
        try:
            self.shell.run(text)
            return
        except ShellFailed as failure:
            status, _, output = str(failure).partition("\n")
        fail(block, f"the block failed ({status})", output, server)  # outside: no chained error

    def page_server(self, text: str) -> Server | None:
        """The page's server if the text names it (started when a text first does)."""
        if DOCS_ADDRESS not in text:
            return None
        if self.default is None:
            self.default = started([])
        return self.default

    def block(self, block: Block) -> None:
        if block.kind == "shell" and re.search(r"^\s*docker\s", block.text, re.MULTILINE):
            fail(block, "a `docker` command: fence the block `sh docker`")
        try:
            part = parts(block)
        except ValueError as error:
            fail(block, str(error))
        self.run(block, part.shell, DOCS_ADDRESS, self.page_server(part.shell))
        if part.server is None:
            return
        server, docs = self.start(block, part.server)
        try:
            self.run(block, part.after, docs, server)
        finally:
            status = server.stop()
        if status != 0:
            fail(block, f"its server exited with {status}", "", server)
        if nonconforming(server):
            fail(block, "answers that do not conform", "", server)

    def start(self, block: Block, command: str) -> tuple[Server, str]:
        """Start the server a block's command line asks for, on a free loopback port; the
        server, and the address the docs reach it at (127.0.0.1:8080 unless the line says
        otherwise)."""
        try:
            argv, env = self.shell.expand(command)
        except ShellFailed as failure:
            fail(block, f"cannot expand {command!r}", str(failure))
        while argv and re.match(r"^[A-Za-z_]\w*=", argv[0]):  # NAME=value before the command
            name, _, value = argv.pop(0).partition("=")
            env[name] = value
        port = env.get("MOCKSERVER_PORT", "8080")
        words = argv
        if argv[:2] == ["docker", "run"]:
            if block.kind != "docker":
                fail(block, "`docker run`: fence the block `sh docker`")
            image_env, image_command = dockerfile()
            run_env, ports, given_command = docker_run(argv, env)
            words = given_command or image_command
            env = {**env, **image_env, **run_env}
            inside = int(env.get("MOCKSERVER_PORT", "8080"))
            port = next((str(host) for host, to in ports.items() if to == inside), "unpublished")
        if not words or Path(words[0]).name != "mockserver":
            fail(block, f"not a mockserver command: {shlex.join(words)}")
        args: list[str] = []
        rest = words[1:]
        while rest:  # the test chooses the address
            word = rest.pop(0)
            name, given, value = word.partition("=")
            if name in ("--host", "--port"):
                value = value if given else rest.pop(0)
                port = value if name == "--port" else port
            else:
                args.append(word)
        env["MOCKSERVER_HOST"] = "127.0.0.1"
        env.pop("MOCKSERVER_PORT", None)
        try:
            server = started(args, env)
        except RuntimeError as error:
            fail(block, f"its server did not start: {error}")
        return server, f"127.0.0.1:{port}"

    def close(self, check: bool = True) -> None:
        """End bash and stop the page's server; with `check`, both must have ended well."""
        status = self.shell.close()
        stopped = self.default.stop() if self.default is not None else 0
        if not check:
            return
        assert status == 0, f"bash exited with {status}"
        if self.default is not None:
            assert stopped == 0, tail(self.default.log)
            assert not nonconforming(self.default), "\n".join(nonconforming(self.default))


@pytest.mark.parametrize("page", SHELL_PAGES, ids=page_id)
def test_shell_blocks_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work, state = tmp_path / "work", tmp_path / "state"
    work.mkdir()
    state.mkdir()
    (work / ".venv").symlink_to(VENV)
    monkeypatch.chdir(work)  # the servers a block starts read the files it wrote
    runner = PageRunner(work, state)
    try:
        for block in blocks(page):
            if block.kind in ("shell", "docker"):
                runner.block(block)
    except BaseException:
        runner.close(check=False)  # the block's failure is the one to see
        raise
    runner.close()


# ---------------------------------------------------------------- python blocks


@pytest.fixture
def python_server(request: pytest.FixtureRequest) -> Iterator[Server | None]:
    block: Block = request.param
    if DOCS_ADDRESS not in block.text:
        yield None
        return
    server = started([])
    yield server
    assert server.stop() == 0, tail(server.log)
    assert not nonconforming(server), "\n".join(nonconforming(server))


@pytest.mark.parametrize(
    ("block", "python_server"),
    [(block, block) for block in PYTHON],
    ids=[block.where for block in PYTHON],
    indirect=["python_server"],
)
def test_python_block_runs(block: Block, python_server: Server | None, tmp_path: Path) -> None:
    address = f"127.0.0.1:{python_server.port}" if python_server else DOCS_ADDRESS
    if block.is_test_file:  # a test file: pytest finds the `mock` fixture by its entry point
        path = tmp_path / "test_example.py"
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", path.name]
    else:
        path = tmp_path / "example.py"
        command = [sys.executable, path.name]
    path.write_text(block.text.replace(DOCS_ADDRESS, address), encoding="utf-8")
    done = subprocess.run(
        command,
        cwd=tmp_path,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        problem = f"{shlex.join(command[1:])} exited with {done.returncode}"
        fail(block, problem, done.stdout + done.stderr, python_server)


# ---------------------------------------------------------------- the quick start


def words(command: str) -> list[str]:
    """A command's words, `-q` (pip's quiet) left out."""
    return [word for word in shlex.split(command) if word != "-q"]


def test_the_test_command_is_what_ci_runs() -> None:
    [block] = of_kind("ci")
    lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.strip()]
    ci = lines[-1]
    assert words(block.text.strip()) == words(ci), (
        f"{block.where}: the README's test command is not the one .ci/run runs "
        f"(compared without -q):\n  README:  {block.text.strip()}\n  .ci/run: {ci}"
    )


def checkout_copy(destination: Path) -> None:
    """The files git knows (committed or new, not ignored), as a fresh clone would have them."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source, target = ROOT / name, destination / name
        if not source.is_symlink() and not source.is_file():
            continue  # deleted, not yet staged
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():  # as git keeps it (mockserver/openapi -> ../openapi)
            target.symlink_to(source.readlink())
        else:
            shutil.copy2(source, target)


def mockserver_process(pid: int) -> int | None:
    """The first process, from `pid` down its children, that runs `mockserver` (bash may have
    handed its process to the command, or forked it) (Linux)."""
    waiting = [pid]
    while waiting:
        current = waiting.pop(0)
        try:
            argv = Path(f"/proc/{current}/cmdline").read_bytes().split(b"\0")
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        if any(Path(word.decode(errors="replace")).name == "mockserver" for word in argv):
            return current
        waiting += [int(child) for child in children]
    return None


def test_the_install_and_start_command_runs(tmp_path: Path) -> None:
    """The quick start's first command, as shown, in a copy of the checkout (pip: ~40 s).

    The only change: MOCKSERVER_PORT moves the server to a free port. The server is then
    stopped as a user's Ctrl-C would stop it in a terminal, with a signal to the server (here
    SIGTERM), and the command must exit 0.
    """
    [block] = of_kind("install")
    checkout = tmp_path / "checkout"
    checkout_copy(checkout)
    assert (checkout / ".python-version").exists()
    port = free_port()
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("PYTEST_", "MOCKSERVER_", "VIRTUAL_ENV"))
    }
    env["MOCKSERVER_PORT"] = str(port)
    output = tmp_path / "output.log"
    with output.open("wb") as sink:
        shell = subprocess.Popen(
            ["bash", "-c", f"set -euo pipefail\n{block.text}"],
            cwd=checkout,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 600
        while True:
            if shell.poll() is not None:
                fail(block, f"it exited with {shell.returncode}", output.read_text())
            if time.monotonic() > deadline:
                fail(block, "no server after 600 s", output.read_text())
            try:
                health = requests.get(f"http://127.0.0.1:{port}/_mock/health", timeout=2)
                if health.status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.2)
        assert health.json()["records"] == 0
        server = mockserver_process(shell.pid)
        assert server is not None, "no mockserver process under the command's shell"
        os.kill(server, signal.SIGTERM)
        status = shell.wait(timeout=30)
        assert status == 0, report(block, f"stopped, it exited with {status}", output.read_text())
    finally:
        if shell.poll() is None:
            os.killpg(shell.pid, signal.SIGKILL)
            shell.wait()
