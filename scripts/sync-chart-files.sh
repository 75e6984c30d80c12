#!/usr/bin/env bash
# Kept for muscle memory: the chart's copies of alerts/ and dashboards/ are now written with
# them by the mixin generator (`make generate`), from mixin/config.yml.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-.venv/bin/python}" -m mixin "$@"
