"""Command line: parse flags and config, wire collectors, sampler and views.

``serve`` (the default) runs the HTTP server; ``check`` prints the verdicts
and exits 1 when one fails, 3 when none fails but a failed collector left one
unjudged; ``metrics`` prints one exposition. All three build the same sampler
and evaluate through the same renderer.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import sqlite3
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Callable, NoReturn

from . import __version__, collectors, config as cfg, log, progress
from .collectors import Context, Found
from .exposition import Renderer
from .report import as_json, as_table, exit_status, repositories_table
from .sampler import Job, Sampler

PROG = "dtr-sizing-exporter"
COMMANDS = ("serve", "check", "metrics")
FLAGS = tuple(s for s in cfg.SETTINGS if s.flag)  # the settings a flag can set; the rest only in the file
EXIT_STATUS = """exit status:
  serve     0 stopped cleanly by SIGTERM/SIGINT; 2 bad flags or config
  check     0 no check fails; 1 at least one check fails; 2 bad flags or config;
            3 no check fails, but one could not be judged because its collector failed
  metrics   0 printed; 2 bad flags or config"""


class UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    """argparse that says a bad flag in one line, with a suggestion, and exits 2."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments:"):
            unknown = message.split(":", 1)[1].split()[0].split("=")[0]
            known = [o for a in self._actions for o in a.option_strings]
            import difflib  # here: only a mistyped flag needs it (0.2 MiB resident for the life of serve)
            close = difflib.get_close_matches(unknown, known, n=1, cutoff=0.6)
            if not unknown.startswith("-"):
                message = f"unexpected argument {unknown!r}: give one command of {', '.join(COMMANDS)}"
            else:
                message = f"unknown flag {unknown}" + (f" (did you mean {close[0]}?)" if close else "") + \
                    "; see --help"
        raise UsageError(message)


def _typed(setting: cfg.Setting) -> Callable[[str], object]:
    """The setting's own parser on the flag's text, its ValueError as argparse's one-line error."""
    def convert(text: str) -> object:
        try:
            return setting.kind.parse(setting.kind.from_text(text))
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
    convert.__name__ = setting.flag
    return convert


def build_parser() -> Parser:
    # no abbreviations: --web.listen must not quietly mean --web.listen-address (kingpin allows none either)
    p = Parser(prog=PROG, description="Measures a DTR / Distribution registry node against the KB sizing rules.",
               epilog=EXIT_STATUS, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    p.add_argument("command", nargs="?", default="serve", choices=COMMANDS,
                   help="serve (default): HTTP server; check: print verdicts; metrics: print one exposition")
    p.add_argument("--config.file", dest="config_file", metavar="PATH", help="YAML configuration file")
    for s in FLAGS:
        text = s.flag_help().replace("%", "%%")
        if s.kind is cfg.BOOL:  # giving the flag means true; the file may still say so
            p.add_argument(s.flag, dest=s.attr, action="store_true", default=None, help=text)
        else:
            p.add_argument(s.flag, dest=s.attr, type=_typed(s), metavar=s.kind.metavar, help=text)
    p.add_argument("--output", choices=("table", "json"), help="check only: table (default) or json")
    p.add_argument("--repositories", action="store_true",
                   help="check only: also list the top repositories by bytes and what garbage collection frees")
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    for name, (on, _, _, reads) in collectors.DEFAULTS.items():
        group = p.add_mutually_exclusive_group()
        group.add_argument(f"--collector.{name}", dest=f"collector_{name}", action="store_true", default=None,
                           help=f"enable the {name} collector: {reads} (default {'on' if on else 'off'})")
        group.add_argument(f"--no-collector.{name}", dest=f"collector_{name}", action="store_false",
                           help=argparse.SUPPRESS)
    return p


def load_config(argv: list[str]) -> tuple[argparse.Namespace, cfg.Config]:
    """Flags over the config file over the defaults; raises UsageError or ConfigError."""
    args = build_parser().parse_args(argv)
    for flag, given in (("--output", args.output), ("--repositories", args.repositories)):
        if given and args.command != "check":
            raise UsageError(f"{flag}: applies to the check command only, not to {args.command}")
    config = cfg.load_file(args.config_file) if args.config_file else cfg.Config()
    for s in FLAGS:
        if getattr(args, s.attr) is not None:
            setattr(config, s.attr, getattr(args, s.attr))
    for name in collectors.DEFAULTS:
        chosen = getattr(args, f"collector_{name}")
        if chosen is not None:
            config.collectors[name].enabled = chosen
            config.collectors_chosen.add(name)
    if config.dtr_url and "dtr_api" not in config.collectors_chosen:
        config.collectors["dtr_api"].enabled = True  # giving the URL is asking for the API
    return args, config


def sqlite_temp_dir(config: cfg.Config) -> None:
    """SQLite's temporary files (the hot set's table, the garbage estimate's spilled sorts) go to the
    state directory when there is one: under a read-only root file system (the Helm chart's) /var/tmp
    and /tmp cannot take them. SQLite read SQLITE_TMPDIR when the sqlite3 module was loaded, so an
    operator's value stands; otherwise the process-wide temp_store_directory is set, before any
    database is opened."""
    if not config.state_dir or os.environ.get("SQLITE_TMPDIR"):
        return
    try:
        Path(config.state_dir).mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # the collectors that use the state directory say so
    quoted = str(config.state_dir).replace("'", "''")
    with closing(sqlite3.connect(":memory:")) as db:
        db.execute(f"PRAGMA temp_store_directory = '{quoted}'")


def build(config: cfg.Config) -> tuple[Sampler, Renderer, Context]:
    sqlite_temp_dir(config)
    ctx = Context(
        procfs=Path(config.procfs), sysfs=Path(config.sysfs), rootfs=Path(config.rootfs),
        docker_data_root=Path(config.docker_data_root), config=config,
    )
    jobs = {name: Job(collectors.create(name, ctx), s.interval, s.timeout)
            for name, s in config.collectors.items() if s.enabled}
    given = Found(storage_path=Path(config.storage_path) if config.storage_path else None)  # wins over discovery
    return Sampler(jobs, given=given), Renderer(config.thresholds_in_force()), ctx


def sample_once(sampler: Sampler) -> None:
    """One pass of every collector; rate-based ones get a second sample a moment later."""
    for name in collectors.DISCOVERERS:  # first: they tell the others where the store is and what drives it
        if name in sampler.jobs:
            sampler.run(name)
    with progress.shown(sampler):  # a first scan of a large store takes minutes
        sampler.run_all([n for n in sampler.jobs if n not in collectors.DISCOVERERS])
    windowed = [n for n, job in sampler.jobs.items() if getattr(job.collector, "window", None) is not None]
    if windowed:
        time.sleep(1.0)
        for name in windowed:
            sampler.run(name)


M_ARENA_MAX = -8  # glibc's mallopt() parameter number
ARENAS = 2


def _cap_malloc_arenas() -> None:
    """At most ``ARENAS`` glibc malloc arenas: by default each collector thread may get its own (up to
    8 per core), and each keeps the freed heap of its runs resident. The process environment's
    MALLOC_ARENA_MAX would do the same, but `make run` and bare hosts do not set it."""
    try:
        ctypes.CDLL(None).mallopt(M_ARENA_MAX, ARENAS)
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to do
        pass


def serve(config: cfg.Config, sampler: Sampler, renderer: Renderer) -> int:
    from . import web
    _cap_malloc_arenas()  # before the first collector thread starts
    watcher = None
    if config.web_config_file:
        from . import webconfig  # only then: bcrypt and its shared library stay out of a plain server's memory
        watcher = webconfig.Watcher(config.web_config_file)
    host, port = web.split_address(config.listen_address)
    app = web.App(sampler.snapshot, renderer, watcher)
    try:
        server = web.Server(app, host, port, watcher.ssl_context() if watcher else None)
    except OSError as err:  # the address is busy or not ours: one line, before anything starts
        print(f"{PROG}: error: cannot listen on {config.listen_address}: {err.strerror or err}", file=sys.stderr)
        return 2
    logging.getLogger(PROG).info("starting", extra={"version": __version__, "collectors": ",".join(sampler.jobs)})
    sampler.start()
    try:
        web.run(server)
    finally:
        sampler.stop()
    logging.getLogger(PROG).info("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args, config = load_config(argv)
        log.setup(config.log_level, config.log_format)
        if args.command == "serve" and config.web_config_file:
            from . import webconfig
            webconfig.load(config.web_config_file)  # fail now, with exit 2, not at the first request
        sampler, renderer, _ = build(config)
    except (UsageError, cfg.ConfigError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    if args.command == "serve":
        return serve(config, sampler, renderer)
    sample_once(sampler)
    snapshot = sampler.snapshot()
    verdicts, text = renderer.render(snapshot)
    if args.command == "metrics":
        sys.stdout.write(text.decode())
        return 0
    if args.output == "json":
        print(as_json(snapshot, verdicts, repositories=args.repositories))
    else:
        sys.stdout.write(as_table(snapshot, verdicts, color=sys.stdout.isatty()))
        if args.repositories:
            sys.stdout.write("\n" + repositories_table(snapshot))
    return exit_status(snapshot, verdicts)
