"""Rendering the Helm chart with Helm's own engine (``helm-python-sdk`` binds Helm's Go SDK
through a C library shipped in its wheel: no helm binary, no download), and the two files
rendered from it: the plain manifests and the plain alert-rule file.

``python -m tests.ops.chart --write`` rewrites both after a chart change; the tests fail
while either differs from a fresh render.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import helm_python
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "kratos-hooks"
PLAIN_MANIFESTS = ROOT / "deploy" / "kubernetes" / "kratos-hooks.yaml"
PLAIN_RULES = ROOT / "deploy" / "prometheus" / "kratos-hooks-rules.yml"
RELEASE = "kratos-hooks"
NAMESPACE = "identity"

# The plain rules select job="kratos-hooks" only: a plain scrape config has no namespace label.
PLAIN_RULES_VALUES: dict[str, Any] = {
    "prometheusRule": {"enabled": True, "matchNamespace": False},
}


def render(
    values: dict[str, Any] | None = None, *, name: str = RELEASE, namespace: str = NAMESPACE
) -> dict[str, str]:
    """Template path → rendered text (Helm's ``template``, offline)."""
    with helm_python.Chart.load(str(CHART)) as chart:
        return chart.render(values or {}, name=name, namespace=namespace)


def objects(rendered: dict[str, str]) -> list[dict[str, Any]]:
    """Every Kubernetes object of a render, in template order (NOTES.txt is not one)."""
    found: list[dict[str, Any]] = []
    for path in sorted(rendered):
        if not path.endswith((".yaml", ".yml")):
            continue
        found.extend(doc for doc in yaml.safe_load_all(rendered[path]) if doc)
    return found


def lint(values: dict[str, Any] | None = None) -> dict[str, Any]:
    return helm_python.lint(str(CHART), values, strict=True)


class _Literal(str):
    """A multi-line string written as a YAML block scalar (readable PromQL)."""


def _literal(dumper: yaml.SafeDumper, text: _Literal) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|")


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Literal, _literal)


def _blocks(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: _blocks(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_blocks(item) for item in node]
    if isinstance(node, str) and "\n" in node:
        return _Literal(node.rstrip("\n") + "\n")
    return node


def plain_rules_text() -> str:
    """``deploy/prometheus/kratos-hooks-rules.yml`` as a fresh render would write it."""
    rule = next(o for o in objects(render(PLAIN_RULES_VALUES)) if o["kind"] == "PrometheusRule")
    header = (
        "# kratos-hooks alert rules for a Prometheus without the Operator (rule_files:).\n"
        "# Rendered from deploy/helm/kratos-hooks (templates/_alerts.tpl) by\n"
        "# `python -m tests.ops.chart --write`; edit the chart, not this file. The series are\n"
        '# selected by job="kratos-hooks": name your scrape job so. Each runbook annotation is\n'
        "# a section of RUNBOOK.md.\n"
    )
    body = yaml.dump(
        {"groups": _blocks(rule["spec"]["groups"])},
        Dumper=_Dumper,
        sort_keys=False,
        width=100,
        allow_unicode=True,
    )
    return header + body


def plain_manifests_text() -> str:
    """``deploy/kubernetes/kratos-hooks.yaml``: the chart with its defaults, as one file."""
    rendered = render()
    parts = [
        rendered[path].strip()
        for path in sorted(rendered)
        if path.endswith(".yaml") and rendered[path].strip()
    ]
    header = (
        "# kratos-hooks with the Helm chart's default values, for `kubectl apply -n identity`.\n"
        "# Rendered from deploy/helm/kratos-hooks by `python -m tests.ops.chart --write`;\n"
        "# prefer the chart (values.yaml documents every option). Create the Secret\n"
        '# "kratos-hooks" first (values.yaml, secrets).\n'
    )
    return header + "---\n" + "\n---\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="rewrite the rendered files")
    args = parser.parse_args(argv)
    stale = []
    rendered = ((PLAIN_RULES, plain_rules_text()), (PLAIN_MANIFESTS, plain_manifests_text()))
    for path, text in rendered:
        if args.write:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
        elif not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(str(path.relative_to(ROOT)))
    if stale:
        print("out of date: " + ", ".join(stale) + " (run with --write)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
