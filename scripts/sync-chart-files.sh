#!/usr/bin/env bash
# Copies the alert rules and dashboards into the Helm chart, which cannot read
# outside its directory. alerts/ and dashboards/ are the source; the chart's
# files/ are copies, and tests/integration/test_helm_chart.py fails when they drift.
set -euo pipefail
cd "$(dirname "$0")/.."
chart=helm/dtr-sizing-exporter/files
rm -f "$chart"/alerts/*.rules.yml "$chart"/dashboards/*.json
mkdir -p "$chart/alerts" "$chart/dashboards"
cp alerts/*.rules.yml "$chart/alerts/"
cp dashboards/*.json "$chart/dashboards/"
echo "sync-chart-files: $(ls "$chart"/alerts | wc -l) rule file(s), $(ls "$chart"/dashboards | wc -l) dashboard(s) copied to $chart"
