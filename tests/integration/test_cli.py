"""The command line as a user meets it: exit codes, one-line errors, JSON, and serve's lifecycle."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import requests
import yaml

from exporter import cli, sizing
from exporter import config as cfg
from tests.conftest import foundation_only, profile_dir
from tests.support import ROOT, Exporter, exporter_cmd, free_port, run_exporter, unavailable, wait_for


# ---- check: 0 when nothing fails, 1 when something does, 3 when a failed collector left a check unjudged

@pytest.mark.parametrize("profile, status", [("large", 0), ("vm4g", 1), ("small", 1), ("container", 0)])
def test_check_exit_status(profile_run, profile, status):
    done = profile_run(profile, "check")
    assert done.returncode == status, done.stderr
    assert "Traceback" not in done.stderr
    # one pass cannot measure cpu_busy (needs two samples), page_cache_hit_ratio and storage_forecast
    # (their collectors are off), nor memory_hot_set (workload is off: 2 more) and storage_forecast_after_gc
    # (garbage is off: 2 more); without --storage.path, small cannot measure inodes_free either
    unknown = f"; {6 + 4 if profile == 'small' else 4 + 4} could not be measured"
    last = done.stdout.rstrip().splitlines()[-1]
    assert last == ("this node meets every sizing check it could measure" if status == 0
                    else f"{last.split()[0]} failing check(s)") + unknown


def test_check_json_schema(profile_run):
    done = profile_run("vm4g", "check", "--output", "json")
    data = json.loads(done.stdout)
    assert set(data) == {"ok", "judged", "checks", "collectors", "needs"} and data["ok"] is False and data["judged"] is True
    for c in data["checks"]:
        assert set(c) == {"check", "severity", "state", "unit", "observed", "threshold", "requirement",
                          "observed_text", "detail", "source", "collector_error"}
        assert c["collector_error"] is None
        assert c["check"] in sizing.CHECKS and c["severity"] in sizing.SEVERITIES and c["state"] in sizing.STATES
        assert c["observed"] is None or isinstance(c["observed"], (int, float))
        # a threshold scaled by a reading (memory_hot_set: a share of the hot set) is None while that is unknown
        scaled_and_unknown = c["check"] in sizing.SCALES and c["state"] == "unknown"
        assert (c["threshold"] is None if scaled_and_unknown else isinstance(c["threshold"], (int, float)))
        assert c["source"]
    assert set(data["collectors"]) == {"memory", "cpu", "filesystem", "diskio"}
    assert all(s["ok"] and s["error"] == "" and s["duration_seconds"] >= 0 for s in data["collectors"].values())


PASSABLE = """\
thresholds:
  memory_total: 1GB
  disk_free: {warning: 1MB, critical: 1MB}
  cpu_cores: 1
  cpu_busy: 100%
  inodes_free: {warning: 0%, critical: 0%}
"""


def broken_meminfo(tmp_path: Path, thresholds: str = PASSABLE) -> list[str]:
    """The large profile's /proc with meminfo a directory: the memory collector fails on a host that passes."""
    shutil.copytree(profile_dir("large") / "proc", tmp_path / "proc", symlinks=True)
    (tmp_path / "proc" / "meminfo").unlink()
    (tmp_path / "proc" / "meminfo").mkdir()
    config = tmp_path / "config.yml"
    config.write_text(thresholds)
    return ["--path.procfs", str(tmp_path / "proc"), "--path.sysfs", str(profile_dir("large") / "sys"),
            "--config.file", str(config), *foundation_only()]


def test_a_failed_collector_is_not_a_pass(tmp_path):
    flags = broken_meminfo(tmp_path)
    done = run_exporter("check", *flags)
    assert done.returncode == 3, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith("memory_total"))
    assert "(collector memory failed: IsADirectoryError:" in row and row.endswith("unknown")
    assert "\ncollector memory: IsADirectoryError:" in done.stdout
    assert "no failing check, but 1 could not be judged because a collector failed" in done.stdout.splitlines()[-1]
    data = json.loads(run_exporter("check", "--output", "json", *flags).stdout)
    assert data["ok"] is True and data["judged"] is False
    [memory] = [c for c in data["checks"] if c["check"] == "memory_total"]
    assert memory["state"] == "unknown" and memory["collector_error"].startswith("collector memory failed: ")
    # the same host with the collector working passes: the 3 came from the failure, not the thresholds
    working = [f if f != str(tmp_path / "proc") else str(profile_dir("large") / "proc") for f in flags]
    assert run_exporter("check", *working).returncode == 0


def test_a_failing_check_wins_over_an_unjudged_one(tmp_path):
    done = run_exporter("check", *broken_meminfo(tmp_path, PASSABLE.replace("cpu_cores: 1", "cpu_cores: 1000")))
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "at least 1000 usable CPUs" in done.stdout and "collector memory failed" in done.stdout


# ---- flags: made from the settings declared in exporter/config.py

SAMPLES = {cfg.PATH: "/srv/x", cfg.TEXT: "tcp://127.0.0.1:2375", cfg.URL: "https://dtr.example.com",
           cfg.ADDRESS: "127.0.0.1:9100", cfg.RATE: "250", cfg.DURATION: "30s", cfg.TOP: "50"}


@pytest.mark.parametrize("setting", cli.FLAGS, ids=lambda s: s.flag)
def test_every_flag_sets_what_its_key_sets(tmp_path, setting):
    if setting.kind is cfg.BOOL:
        argv, value = [setting.flag], True
    else:
        text = SAMPLES.get(setting.kind) or setting.kind.metavar.split("|")[-1]  # a choice: its last one
        argv, value = [setting.flag, text], yaml.safe_load(text)
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump({setting.section: {setting.name: value}}))
    from_flag, from_file = cli.load_config(argv)[1], cli.load_config(["--config.file", str(path)])[1]
    assert from_flag == from_file != cfg.Config()


def test_help_shows_each_flag_with_its_default(monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # no wrapping: the help is on the flag's line or the next
    lines = cli.build_parser().format_help().splitlines()
    for s in cli.FLAGS:
        [at] = [i for i, line in enumerate(lines) if line.split()[:1] == [s.flag]]
        shown = " ".join(" ".join(lines[at:at + 2]).split())
        assert f"{s.help} [default: {s.shown_default().replace('`', '')}]" in shown, shown


def test_help_lists_the_exit_statuses():
    done = run_exporter("--help")
    assert done.returncode == 0
    assert "exit status:" in done.stdout
    assert "3 no check fails, but one could not be judged because its collector failed" in done.stdout


# ---- exit 2: one line on stderr, naming what is wrong and what is accepted, no traceback

def one_line_error(*args: str) -> str:
    done = run_exporter(*args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("dtr-sizing-exporter: error: ")
    return lines[0]


@pytest.mark.parametrize("args, expected", [
    (["check", "--web.listen-adress", ":1"],
     "unknown flag --web.listen-adress (did you mean --web.listen-address?)"),
    (["check", "--log.level", "loud"], "'loud' is not one of debug, info, warn, error"),
    (["check", "--web.listen-address", "nowhere"], "'nowhere' is not host:port"),
    (["check", "--output", "yaml"], "invalid choice: 'yaml'"),
    (["check", "--storage.scan-rate", "fast"], "--storage.scan-rate: expected files per second, 0 for no limit"),
    (["chekc"], "invalid choice: 'chekc' (choose from 'serve', 'check', 'metrics')"),
    (["check", "--collector.cpu", "--no-collector.cpu"], "not allowed with argument"),
    (["serve", "--web.listen-address", f"127.0.0.1:{free_port()}", "--web.config.file", "/nonexistent/web.yml"],
     "/nonexistent/web.yml"),
])
def test_bad_flags(args, expected):
    assert expected in one_line_error(*args)


@pytest.mark.parametrize("text, expected", [
    ("thresholds:\n  disk_fre: 1\n", "thresholds.disk_fre: unknown key (did you mean disk_free?)"),
    ("thresholds:\n  cpu_cores: -2\n", "thresholds.cpu_cores.warning: -2 is not a count"),
    ("web: [\n", "invalid YAML"),
    ("thresholds:\n  disk_free: {warning: 1GB}\n", "warning (1 GB) must not be below critical (20 GB)"),
])
@pytest.mark.parametrize("command", ["check", "metrics", "serve"])
def test_bad_config_files(tmp_path, command, text, expected):
    path = tmp_path / "config.yml"
    path.write_text(text)
    line = one_line_error(command, "--config.file", str(path), "--web.listen-address", f"127.0.0.1:{free_port()}")
    assert f"{path}: " in line and expected in line


def test_an_unreadable_config_file(tmp_path):
    line = one_line_error("check", "--config.file", str(tmp_path / "absent.yml"))
    assert line.endswith("absent.yml: cannot read the config file: No such file or directory")


def test_a_flag_wins_over_the_file(tmp_path):
    path = tmp_path / "config.yml"
    path.write_text("log: {level: nonsense}\n")
    assert "log.level" in one_line_error("check", "--config.file", str(path), "--log.level", "debug")
    path.write_text("thresholds:\n  cpu_cores: 1000\n")  # more CPUs than any host here has: check fails
    done = run_exporter("check", "--config.file", str(path), *foundation_only())
    assert done.returncode == 1 and "at least 1000 usable CPUs" in done.stdout


# ---- serve

@pytest.fixture
def exporter():
    running = Exporter(*foundation_only())
    yield running.start()
    running.stop()


def test_serve_endpoints(exporter):
    assert requests.get(exporter.url + "/-/healthy", timeout=5).status_code == 200
    assert requests.get(exporter.url + "/-/ready", timeout=5).status_code == 200
    metrics = requests.get(exporter.url + "/metrics", timeout=5)
    assert metrics.status_code == 200 and metrics.headers["Content-Type"].startswith("text/plain")
    assert 'dtr_exporter_collector_success{collector="memory"} 1.0' in metrics.text
    assert requests.get(exporter.url + "/nothing-here", timeout=5).status_code == 404
    post = requests.post(exporter.url + "/metrics", data=b"x", timeout=5)
    assert post.status_code == 405 and "GET" in post.headers["Allow"]
    page = requests.get(exporter.url + "/", timeout=5)
    assert page.status_code == 200 and "memory_total" in page.text and "/metrics" in page.text


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_stops_cleanly(exporter, sig):
    exporter.proc.send_signal(sig)
    assert exporter.proc.wait(timeout=15) == 0
    stderr = exporter.proc.stderr.read()
    assert "Traceback" not in stderr and "msg=stopped" in stderr


def test_sigterm_during_a_scan_stops_the_walk(tmp_path):
    """A first scan of a big store takes minutes; SIGTERM must not wait for it (the interpreter joins a
    ThreadPoolExecutor's workers at exit). Here the walk is held to 20 files a second over two prefixes of
    2,100 blobs (more than a worker lists at once, so its listing stays open while it stats)."""
    prefixes = tmp_path / "store/docker/registry/v2/blobs/sha256"
    for i in range(4200):
        digest = f"{i % 2:02x}{i:062x}"
        (prefixes / digest[:2] / digest).mkdir(parents=True)
        (prefixes / digest[:2] / digest / "data").write_bytes(b"x")
    flags = [f.replace("--no-collector.storage", "--collector.storage") for f in foundation_only()]
    running = Exporter(*flags, "--storage.path", str(tmp_path / "store"), "--storage.scan-rate", "20")
    try:
        running.start(ready=False)

        def walking() -> bool:  # a worker holds its prefix directory open while it stats the listing's first part
            return any(os.readlink(fd).startswith(str(prefixes) + "/") for fd in
                       Path(f"/proc/{running.proc.pid}/fd").iterdir() if fd.is_symlink())
        wait_for(walking, timeout=30, what="the storage walk under way")
        running.proc.send_signal(signal.SIGTERM)
        assert running.proc.wait(timeout=10) == 0, "SIGTERM waited for the walk"
        assert "Traceback" not in running.proc.stderr.read()
    finally:
        running.stop()


def test_ready_only_after_the_first_pass_and_a_hung_source_does_not_block_the_exit(tmp_path):
    """/proc/meminfo as a FIFO nobody writes: the memory collector hangs like a read on a dead NFS mount."""
    shutil.copytree(profile_dir("vm4g") / "proc", tmp_path / "proc", symlinks=True)
    (tmp_path / "proc" / "meminfo").unlink()
    os.mkfifo(tmp_path / "proc" / "meminfo")
    config = tmp_path / "config.yml"
    config.write_text("collectors:\n  memory: {timeout: 10s}\n")
    running = Exporter("--config.file", str(config), "--path.procfs", str(tmp_path / "proc"), *foundation_only())
    try:
        running.start(ready=False)
        assert requests.get(running.url + "/-/ready", timeout=5).status_code == 503

        def cpu_served() -> bool:  # the others' readings are served while one collector hangs
            text = requests.get(running.url + "/metrics", timeout=5).text
            return 'dtr_exporter_collector_success{collector="cpu"} 1.0' in text

        # on a loaded machine the cpu reading can come a moment after /-/healthy: polled, within the hang
        wait_for(cpu_served, timeout=8, what="the cpu collector's reading served")
        assert requests.get(running.url + "/-/ready", timeout=5).status_code == 503  # memory still hangs
        wait_for(lambda: requests.get(running.url + "/-/ready", timeout=5).status_code == 200, timeout=25,
                 what="ready once the hung collector timed out")
        text = requests.get(running.url + "/metrics", timeout=5).text
        assert 'dtr_exporter_collector_success{collector="memory"} 0.0' in text
        running.proc.send_signal(signal.SIGTERM)
        assert running.proc.wait(timeout=15) == 0
    finally:
        running.stop()


def test_metrics_command_prints_one_exposition():
    done = run_exporter("metrics", *foundation_only())
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("# HELP dtr_exporter_build_info")
    assert "dtr_sizing_check_ok" in done.stdout


def test_python_dash_m_and_the_console_script_agree():
    script = ROOT / ".venv" / "bin" / "dtr-sizing-exporter"
    if not script.exists():
        unavailable("console script not installed in .venv (make test installs it)")
    a = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=30)
    b = subprocess.run(exporter_cmd("--version"), capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert a.returncode == b.returncode == 0 and a.stdout == b.stdout and a.stdout.startswith("dtr-sizing-exporter ")
