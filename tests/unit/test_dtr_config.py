"""Giving --dtr.url turns the dtr_api collector on, unless it was switched off explicitly."""

from __future__ import annotations

from exporter.cli import load_config


def enabled(argv: list[str]) -> tuple[bool, bool]:
    _, config = load_config(argv)
    return config.collectors["dtr_api"].enabled, config.collectors["docker"].enabled


def test_the_url_alone_enables_the_api_and_docker_is_on_by_default():
    assert enabled([]) == (False, True)
    assert enabled(["--dtr.url", "https://dtr.example.com"]) == (True, True)


def test_an_explicit_off_wins_over_the_url(tmp_path):
    assert enabled(["--dtr.url", "https://dtr.example.com", "--no-collector.dtr_api"])[0] is False
    config = tmp_path / "config.yml"
    config.write_text("dtr: {url: 'https://dtr.example.com'}\ncollectors: {dtr_api: {enabled: false}}\n")
    assert enabled(["--config.file", str(config)])[0] is False
    config.write_text("dtr: {url: 'https://dtr.example.com'}\ncollectors: {dtr_api: {interval: 5m}}\n")
    assert enabled(["--config.file", str(config)])[0] is True
