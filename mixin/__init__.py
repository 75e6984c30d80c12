"""The monitoring mixin: alert rules, recording rules and Grafana dashboards from one config.

`python -m mixin` (or `make generate`) writes every generated file; see mixin/generate.py.
"""
