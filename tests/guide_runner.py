"""Run the shell sessions of a role guide (docs/guide-*.md) exactly as a reader would type them.

A guide's commands live in ```console blocks: a line starting with ``$ `` is a command (a line
ending in ``\\`` continues on the next one), the lines after it up to the next command are output
the reader should see. The runner executes every command in order, in one working folder per
guide, with the real console scripts of this checkout's virtualenv first on PATH:

* each command runs in ``bash``; ``export`` and ``cd`` carry over to the next command (the
  environment and folder are captured after every command), like one terminal session;
* a command ending in `` &`` is a service: it is started in its own session with its output in
  ``logs/``, and the runner waits until the port named by its ``--port`` accepts connections;
  every service (and every process it spawned) is stopped when the guide ends, pass or fail;
* a command must exit 0, or the status its trailing comment names (``# exits 2``), for commands
  a guide shows failing on purpose;
* every output line shown under a command must be one of the lines it printed (``...`` stands
  for any text, spacing is free), so a guide never shows output the code does not produce.

Inputs a guide cannot create itself (a DICOM folder, free ports) are passed as environment
variables; each guide lists them in its "Before you start" table.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
COMMAND_TIMEOUT = 600.0
SERVICE_START_TIMEOUT = 120.0
SERVICE_STOP_TIMEOUT = 20.0
FENCE = re.compile(r"^```(\S*)\s*$")
EXITS = re.compile(r"\s+#\s*exits\s+(\d+)\s*$")
BACKGROUND = re.compile(r"^(?P<command>.*?)\s&\s*(#.*)?$")
VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")
EXPORTED = re.compile(r"(?:^|[;&|]\s*)export\s+((?:[A-Za-z_][A-Za-z0-9_]*=\S*\s*)+)")
PORT_OPTION = re.compile(r"--port\s+(\S+)")
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
ALWAYS_DEFINED = {"PWD", "HOME", "PATH", "OLDPWD"}
QUIET_ENV = {
    "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
    "FLWR_TELEMETRY_ENABLED": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "PYTHONUNBUFFERED": "1",
    "COLUMNS": "200",
}


@dataclass
class GuideCommand:
    """One ``$`` line (with its continuations) of a guide and the output shown under it."""

    line: int
    text: str
    expected_exit: int = 0
    background: bool = False
    shown_output: list[str] = field(default_factory=list)

    def where(self, guide: Path) -> str:
        return f"{guide.name}:{self.line}: $ {self.text}"


def parse_guide(path: Path) -> list[GuideCommand]:
    """Every command of every ```console block of ``path``, in order."""
    commands: list[GuideCommand] = []
    in_console = False
    in_other = False
    pending: GuideCommand | None = None
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        fence = FENCE.match(raw.strip())
        if fence and not in_console and not in_other:
            in_console = fence.group(1) == "console"
            in_other = not in_console
            continue
        if fence and (in_console or in_other):
            if pending is not None:
                raise ValueError(f"{path.name}:{pending.line}: command ends in '\\' at block end")
            in_console = in_other = False
            continue
        if not in_console:
            continue
        if pending is not None:
            pending.text += " " + raw.strip()
            if pending.text.endswith("\\"):
                pending.text = pending.text[:-1].rstrip()
            else:
                _finish(pending)
                commands.append(pending)
                pending = None
            continue
        if raw.startswith("$ "):
            command = GuideCommand(number, raw[2:].strip())
            if command.text.endswith("\\"):
                command.text = command.text[:-1].rstrip()
                pending = command
            else:
                _finish(command)
                commands.append(command)
        elif raw.strip() and commands:
            commands[-1].shown_output.append(raw.rstrip())
    return commands


def _finish(command: GuideCommand) -> None:
    exits = EXITS.search(command.text)
    if exits:
        command.expected_exit = int(exits.group(1))
    background = BACKGROUND.match(command.text)
    if background:
        command.background = True
        command.text = background.group("command").strip()


def code_blocks_outside_console(path: Path) -> list[tuple[int, str]]:
    """(line, language) of fenced blocks that hold ``$`` lines but are not ```console."""
    found, language, start, shell_lines = [], None, 0, False
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        fence = FENCE.match(raw.strip())
        if fence and language is None:
            language, start, shell_lines = fence.group(1), number, False
        elif fence:
            if language != "console" and shell_lines:
                found.append((start, language))
            language = None
        elif language is not None and raw.lstrip().startswith("$ "):
            shell_lines = True
    return found


def undefined_variables(commands: list[GuideCommand], inputs: set[str]) -> list[str]:
    """Variables a command uses before any input or earlier ``export`` defines them."""
    defined = set(inputs) | ALWAYS_DEFINED
    problems = []
    for command in commands:
        for name in VARIABLE.findall(command.text):
            if name not in defined:
                problems.append(f"line {command.line}: ${name}")
        for group in EXPORTED.findall(command.text):
            defined |= {item.split("=", 1)[0] for item in group.split()}
    return problems


def shown_line_pattern(shown: str) -> re.Pattern[str]:
    """A shown output line as a pattern: ``...`` is any text, the rest literal; any run of
    spaces matches any run of spaces (tables are aligned to the terminal's width)."""
    parts = [r"\s+".join(re.escape(word) for word in part.split(" ") if word)
             for part in shown.strip().split("...")]
    return re.compile(r"\s*" + ".*".join(parts) + r"\s*")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _expand(text: str, env: dict[str, str]) -> str:
    """``$NAME`` / ``${NAME}`` replaced from ``env`` (enough for a port option's value)."""
    return re.sub(r"\$(?:\{(\w+)\}|(\w+))",
                  lambda m: env.get(m.group(1) or m.group(2), m.group(0)), text)


@dataclass
class Service:
    command: GuideCommand
    process: subprocess.Popen
    log: Path
    port: int | None


@dataclass
class GuideRun:
    """The state of one guide's terminal session: folder, environment, running services."""

    guide: Path
    work: Path
    inputs: dict[str, str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    services: list[Service] = field(default_factory=list)
    transcript: list[str] = field(default_factory=list)
    check_output: bool = True
    """False only when recording a transcript to write a guide's shown output from."""

    def __post_init__(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        (self.work / "logs").mkdir(exist_ok=True)
        home = self.work / "home"
        home.mkdir(exist_ok=True)
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("FEDCODEC_", "FLWR_", "MLFLOW_"))}
        base.update(QUIET_ENV)
        base["PATH"] = f"{VENV_BIN}{os.pathsep}{base.get('PATH', '')}"
        base["HOME"] = str(home)
        base.update(self.inputs)
        self.env = base
        self.cwd = self.work

    def run_all(self, commands: list[GuideCommand]) -> None:
        try:
            for command in commands:
                if command.background:
                    self.start_service(command)
                else:
                    self.run_command(command)
        finally:
            self.stop_services()

    def run_command(self, command: GuideCommand) -> None:
        state = self.work / "logs" / ".state"
        script = (f"{command.text}\n__guide_rc=$?\n"
                  f"env -0 > '{state}.env'; pwd > '{state}.pwd'; exit $__guide_rc\n")
        started = time.monotonic()
        try:
            done = subprocess.run(["bash", "-c", script], check=False, cwd=self.cwd,
                                  env=self.env, capture_output=True, text=True,
                                  timeout=COMMAND_TIMEOUT, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{command.where(self.guide)}\ntook over {COMMAND_TIMEOUT:.0f} s") from None
        output = done.stdout + done.stderr
        self._record(f"$ {command.text}   [exit {done.returncode}, "
                     f"{time.monotonic() - started:.1f} s]\n{output}")
        if done.returncode != command.expected_exit:
            raise AssertionError(
                f"{command.where(self.guide)}\nexited {done.returncode}, the guide says "
                f"{command.expected_exit}; output:\n{output[-4000:]}")
        if self.check_output:
            self._check_shown_output(command, output)
        if Path(f"{state}.env").exists():
            pairs = Path(f"{state}.env").read_bytes().split(b"\0")
            self.env = dict(p.decode().split("=", 1) for p in pairs if b"=" in p)
            self.cwd = Path(Path(f"{state}.pwd").read_text().strip())
            for suffix in (".env", ".pwd"):
                Path(f"{state}{suffix}").unlink()

    def _record(self, entry: str) -> None:
        """Keep the transcript, and append it to logs/transcript.txt as the guide goes."""
        self.transcript.append(entry)
        with (self.work / "logs" / "transcript.txt").open("a") as log:
            log.write(entry + "\n")

    def _check_shown_output(self, command: GuideCommand, output: str) -> None:
        lines = ANSI_ESCAPE.sub("", output).splitlines()
        for shown in command.shown_output:
            pattern = shown_line_pattern(shown)
            if not any(pattern.fullmatch(line) for line in lines):
                raise AssertionError(
                    f"{command.where(self.guide)}\nthe guide shows the line\n  {shown.strip()}\n"
                    f"which the command did not print; it printed:\n{output[-4000:]}")

    def start_service(self, command: GuideCommand) -> None:
        if command.shown_output:
            raise AssertionError(f"{command.where(self.guide)}: a service shows no output")
        port_text = PORT_OPTION.search(command.text)
        port = int(_expand(port_text.group(1), self.env)) if port_text else None
        log = self.work / "logs" / f"service-{len(self.services) + 1}.log"
        process = subprocess.Popen(["bash", "-c", f"exec {command.text}"], cwd=self.cwd,
                                   env=self.env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        service = Service(command, process, log, port)
        self.services.append(service)
        self._record(f"$ {command.text} &   [pid {process.pid}]")
        if port is None:
            raise AssertionError(f"{command.where(self.guide)}: a service needs --port")
        deadline = time.monotonic() + SERVICE_START_TIMEOUT
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"{command.where(self.guide)}\nexited {process.returncode} "
                                     f"at start:\n{log.read_text()[-4000:]}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.3)
        raise AssertionError(f"{command.where(self.guide)}\nnot listening on {port} after "
                             f"{SERVICE_START_TIMEOUT:.0f} s:\n{log.read_text()[-4000:]}")

    def stop_services(self) -> None:
        """SIGTERM each service's session, then SIGKILL what is left, newest service first."""
        sessions = {s.process.pid for s in self.services}
        ports = {s.port for s in self.services if s.port}
        for service in reversed(self.services):
            _signal_group(service.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + SERVICE_STOP_TIMEOUT
        for service in self.services:
            try:
                service.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for pid in _leftover_processes(sessions, ports):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for service in self.services:
            if service.process.poll() is None:
                _signal_group(service.process.pid, signal.SIGKILL)
                service.process.wait(timeout=10)
        self.services.clear()


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def _leftover_processes(sessions: set[int], ports: set[int]) -> list[int]:
    """Processes still in a service's session, or Flower helpers detached onto its ports."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        session = int(stat.rsplit(")", 1)[1].split()[3])
        if session in sessions or (
                "flower-superexec" in cmdline and any(f":{p} " in cmdline + " " for p in ports)):
            found.append(int(entry.name))
    return found


def run_guide(guide: Path, work: Path, inputs: dict[str, str], *,
              check_output: bool = True) -> GuideRun:
    """Run every command of ``guide`` in ``work``; raises AssertionError on the first failure.

    The transcript (every command, its exit status, time and output) is left in
    ``work/logs/transcript.txt``.
    """
    run = GuideRun(guide, work, inputs, check_output=check_output)
    run.run_all(parse_guide(guide))
    return run
