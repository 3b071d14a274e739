"""The `mockserver` command: options, variables, logs, start-up errors, clean shutdown."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys

import pytest
import requests
from support import AUTH, MOCKSERVER, RECORDS, ROOT, free_port, new_record

from mockserver.settings import OPTIONS as SETTINGS_OPTIONS
from mockserver.settings import parser

OPTIONS = [
    "--host",
    "--port",
    "--spec",
    "--strict",
    "--auth",
    "--tokens",
    "--seed-records",
    "--faker-seed",
    "--max-records",
    "--max-body-bytes",
    "--threads",
    "--serving",
    "--check-responses",
    "--log-format",
    "--log-level",
]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The command with these arguments, on a free port unless they (or `env`) name one."""
    port = [] if "--port" in args or "MOCKSERVER_PORT" in (env or {}) else free_port_args()
    return subprocess.run(
        [str(MOCKSERVER), *port, *args], capture_output=True, text=True, timeout=60, env=env
    )


def free_port_args() -> list[str]:
    return ["--port", str(free_port())]


def test_help_explains_every_option():
    out = run("--help").stdout
    for option in OPTIONS:
        assert option in out
    assert "MOCKSERVER_SEED_RECORDS" in out


def test_version_and_module_entry_point():
    assert run("--version").stdout.startswith("mockserver 0.1.0")
    module = subprocess.run(
        [sys.executable, "-m", "mockserver", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert module.stdout == run("--version").stdout


def test_a_bad_spec_stops_start_up_naming_the_file(tmp_path):
    spec = tmp_path / "broken.yaml"
    spec.write_text("openapi: 3.0.3\ninfo: {title: t}\npaths: {}\n")
    done = run("--spec", str(spec))
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"mockserver: error: {spec}: not a valid OpenAPI document at info: "
        '"version" is a required property'
    )


def test_a_bad_tokens_file_stops_start_up(tmp_path):
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text("tokens: [{rights: [x]}]")
    done = run("--tokens", str(tokens))
    assert done.returncode == 1
    assert f"mockserver: error: {tokens}: invalid tokens file at tokens > 0" in done.stderr


def test_a_port_in_use_stops_start_up():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run("--port", str(port))
    assert done.returncode == 1
    assert done.stderr.strip() == f"mockserver: error: port {port} on 127.0.0.1 is already in use"


BEHIND_ON_MEMORY = "--journal-write-behind needs a shared store (--store redis://...)"


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--port", "abc"], {}, "--port: 'abc' is not a whole number"),
        ([], {"MOCKSERVER_PORT": "abc"}, "MOCKSERVER_PORT: 'abc' is not a whole number"),
        (["--seed-records", "-5"], {}, "--seed-records: -5 is not a whole number >= 0"),
        (["--auth", "maybe"], {}, "--auth: 'maybe' is not one of on/off, true/false, 1/0"),
        (["--port", "99999"], {}, "--port: 99999 is not a whole number from 1 to 65535"),
        (["--journal-write-behind"], {}, BEHIND_ON_MEMORY),
        ([], {"MOCKSERVER_JOURNAL_WRITE_BEHIND": "on"}, BEHIND_ON_MEMORY),
        (["--read-cache-bytes", "1000"], {}, "--read-cache-bytes needs a shared store"),
        (["--serving", "fibres"], {}, "--serving: 'fibres' is not one of auto, loop, threads"),
        ([], {"MOCKSERVER_SERVING": "fibres"}, "MOCKSERVER_SERVING: 'fibres' is not one of"),
    ],
)
def test_bad_options_are_usage_errors(args, env, message):
    import os

    done = run(*args, env={**os.environ, **env})
    assert done.returncode == 2
    assert message in done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr


def test_one_log_line_per_request_and_clean_sigterm(start_server):
    server = start_server()
    requests.post(f"{server.url}{RECORDS}", json=new_record(payload=1), headers=AUTH, timeout=5)
    requests.get(f"{server.url}{RECORDS}/AUD-0000-0000-0000-0000", headers=AUTH, timeout=5)
    requests.get(f"{server.url}{RECORDS}?limit=1&eq(event,'x')", headers=AUTH, timeout=5)
    assert server.stop() == 0
    lines = [line for line in server.log if "/public/v1/" in line]
    assert len(lines) == 3
    assert re.search(
        r"INFO  POST /public/v1/audit/records 201 \d+\.\dms record=AUD-\d{4}-", lines[0]
    )
    assert "warnings=\"unknown member 'payload' ignored\"" in lines[0]
    assert re.search(
        r"GET /public/v1/audit/records/AUD-0000-0000-0000-0000 404 [\d.]+ms "
        r"error=\"Audit record AUD-0000-0000-0000-0000 not found.\"",
        lines[1],
    )
    assert "GET /public/v1/audit/records?limit=1&eq(event,'x') 200" in lines[2]
    assert any("serving on http://127.0.0.1:" in line for line in server.log)


def test_sigint_also_stops_cleanly(start_server):
    server = start_server()
    assert server.process is not None
    server.process.send_signal(signal.SIGINT)
    assert server.process.wait(timeout=20) == 0


def test_environment_variables_configure_the_server(start_server, tmp_path):
    server = start_server(
        env={
            "MOCKSERVER_SEED_RECORDS": "25",
            "MOCKSERVER_AUTH": "off",
            "MOCKSERVER_STRICT": "true",
            "MOCKSERVER_LOG_FORMAT": "json",
            "MOCKSERVER_MAX_RECORDS": "30",
        }
    )
    health = server.health()
    assert (health["records"], health["mode"], health["auth"]) == (25, "strict", "off")
    for _ in range(10):
        answer = requests.post(f"{server.url}{RECORDS}", json=new_record(), timeout=5)
        assert answer.status_code == 201
    assert server.health()["records"] == 30
    assert server.stop() == 0
    entries = [json.loads(line) for line in server.log if line.startswith("{")]
    posts = [e for e in entries if e.get("method") == "POST"]
    assert len(posts) == 10
    assert (posts[0]["status"], posts[0]["target"]) == (201, RECORDS)
    assert posts[0]["record"].startswith("AUD-")


def test_seeding_shows_progress(start_server):
    server = start_server("--seed-records", "10000", "--faker-seed", "3")
    assert server.health()["records"] == 10000
    server.stop()
    progress = [line for line in server.log if "seeding records:" in line]
    assert len(progress) == 10
    assert "seeding records: 10000/10000" in progress[-1]


def _table_rows(markdown: str) -> list[tuple[str, str, str]]:
    """(option, variable, default) of each row of the README's options table, as written
    (backticks and escapes left out)."""
    lines = markdown.split("| option | variable | default | meaning |\n", 1)[1].splitlines()
    rows = []
    for line in lines[1:]:
        if not line.startswith("|"):
            break
        cells = [c.strip().replace("`", "") for c in line.replace("\\|", "/").split("|")[1:4]]
        rows.append((cells[0], cells[1].removesuffix(" (comma-separated)"), cells[2]))
    return rows


def test_the_readme_options_table_is_the_settings_table():
    """The README's options, variables and defaults are those of `settings.OPTIONS`, which
    the command line and --help are made from, in the same order."""
    from mockserver.settings import OPTIONS

    expected = [("--version", "", "")]
    for option in OPTIONS:
        shown = " ".join(filter(None, [option.flag, option.metavar, "/".join(option.choices)]))
        expected.append((shown, option.variable, option.default))
    assert _table_rows((ROOT / "README.md").read_text()) == expected


def test_help_shows_each_options_variable_and_default():
    from mockserver.settings import OPTIONS

    shown = " ".join(run("--help").stdout.split())
    for option in OPTIONS:
        assert f"[{option.variable}; default: {option.default}]" in shown


def test_the_wsgi_entry_reads_the_variables_the_command_reads(monkeypatch):
    """`mockserver.wsgi:build()` (for other WSGI servers) is configured as the command is."""
    from mockserver import wsgi

    monkeypatch.setenv("MOCKSERVER_SEED_RECORDS", "3")
    monkeypatch.setenv("MOCKSERVER_STRICT", "yes")
    health = wsgi.build().test_client().get("/_mock/health").json
    assert (health["records"], health["mode"]) == (3, "strict")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MOCKSERVER_PORT": "abc"}, "MOCKSERVER_PORT: 'abc' is not a whole number"),
        ({"MOCKSERVER_SEED_RECORDS": "-1"}, "MOCKSERVER_SEED_RECORDS: -1 is not a whole number"),
        ({"MOCKSERVER_LOG_FORMAT": "xml"}, "MOCKSERVER_LOG_FORMAT: 'xml' is not one of text, json"),
        ({"MOCKSERVER_AUTH": "maybe"}, "MOCKSERVER_AUTH: 'maybe' is not one of on/off"),
    ],
)
def test_a_bad_variable_is_refused_by_name(env, message):
    from mockserver.settings import Settings, SettingsError

    with pytest.raises(SettingsError) as refusal:
        Settings.from_env(env)
    assert message in str(refusal.value)


def test_the_wsgi_entry_raises_on_a_bad_variable_of_the_process(monkeypatch):
    """`Settings.from_env()` reads the process's variables and raises (it does not exit, as
    the command does): a WSGI server shows the error."""
    from mockserver.settings import Settings, SettingsError

    monkeypatch.setenv("MOCKSERVER_PORT", "abc")
    with pytest.raises(SettingsError, match="MOCKSERVER_PORT: 'abc' is not a whole number"):
        Settings.from_env()


def test_a_variable_that_is_not_a_choice_stops_the_command():
    """`MOCKSERVER_AUTH=maybe` turned auth off: nothing fails open."""
    import os

    done = run(env={**os.environ, "MOCKSERVER_AUTH": "maybe"})
    assert done.returncode == 2
    assert done.stderr == (
        "mockserver: error: MOCKSERVER_AUTH: 'maybe' is not one of on/off, true/false, 1/0, "
        "yes/no (any case) (see mockserver --help)\n"
    )


# ------------------------------------------------- configuration never fails open

YES = ("on", "ON", "True", "1", "yes", "Yes")
NO = ("off", "OFF", "false", "0", "no", "NO")


@pytest.mark.parametrize("spelling", YES + NO)
def test_every_yes_no_spelling_means_what_it_says(spelling):
    """`MOCKSERVER_AUTH=ON` turned auth off: every documented spelling, in any case, is read."""
    from mockserver.settings import Settings

    expected = spelling in YES
    for variable, field in (
        ("MOCKSERVER_AUTH", "auth"),
        ("MOCKSERVER_STRICT", "strict"),
        ("MOCKSERVER_CHECK_RESPONSES", "check_responses"),
    ):
        assert getattr(Settings.from_env({variable: spelling}), field) is expected, variable
    assert Settings.from_env({}).auth is True  # on unless turned off
    assert parser({}).parse_args(["--auth", spelling]).auth is expected


def _bad_values(option):
    """Values the option must refuse, by the kind of value it takes."""
    if option.switch or option.choices:
        return ["maybe", "enabled", "tru", "2", "", "verbose", f"{option.default}x"]
    if option.metavar in ("FILE", "PATH"):
        return [""]
    if option.metavar == "SECONDS":
        return ["abc", "0", "-1", "", "inf", "nan"]
    if option.metavar in ("N", "S") or option.flag == "--port":
        return ["abc", "1.5", "", "1e3", "0x10"] + (["-1"] if option.metavar == "N" else [])
    return []


CHECKED = [(option, bad) for option in SETTINGS_OPTIONS for bad in _bad_values(option)]


def test_every_option_with_a_kind_of_value_has_bad_values():
    """Only free text (an address, a token, an origin) takes any value."""
    free = {o.flag for o in SETTINGS_OPTIONS if not _bad_values(o)}
    assert free == {
        "--host",
        "--admin-token",
        "--cors-origin",
        "--upstream",
        "--store",
        "--store-prefix",
    }


@pytest.mark.parametrize(("option", "bad"), CHECKED, ids=[f"{o.flag}={b!r}" for o, b in CHECKED])
def test_every_bad_spelling_of_every_option_is_refused_by_name(option, bad):
    """As a variable and as a flag: one line, naming it, never a silent default."""
    from mockserver.settings import Settings, SettingsError

    with pytest.raises(SettingsError) as refusal:
        Settings.from_env({option.variable: bad})
    assert str(refusal.value).startswith(f"{option.variable}: ")
    assert "\n" not in str(refusal.value)
    if option.switch:
        return  # a flag without a value: nothing to misspell
    with pytest.raises(SettingsError) as refusal:
        parser({}).parse_args([option.flag, bad])
    assert str(refusal.value).startswith(f"{option.flag}: ")


def test_the_command_refuses_a_bad_level_in_one_line():
    """`MOCKSERVER_LOG_LEVEL=verbose` gave a traceback; `--port 99999` too."""
    import os

    for args, env in ((["--port", "99999"], {}), ([], {"MOCKSERVER_LOG_LEVEL": "verbose"})):
        done = run(*args, env={**os.environ, **env})
        assert done.returncode == 2
        assert len(done.stderr.splitlines()) == 1, done.stderr
        assert "Traceback" not in done.stderr
