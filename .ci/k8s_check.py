"""Checks what users deploy: `helm lint` on the charts (default, HA and admission-webhook values) through helm-sdkpy,
which embeds Helm's Go library, and the Kubernetes manifests in integrations/ against the
Kubernetes schemas (kubernetes-validate). Exits non-zero on any error.

helm-sdkpy's lint results carry a severity and a path but empty error texts, so failures are
reported as `severity path`; run `helm lint` locally for the full message.
"""

import asyncio
import copy
import pathlib
import shutil
import sys
import tempfile

import helm_sdkpy
import kubernetes_validate
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
SEVERITY = {0: "unknown", 1: "info", 2: "warning", 3: "error"}
K8S_VERSION = "1.30.0"
# Custom resources have no schema in kubernetes-validate; they are checked for shape only.
CRD_KINDS = {
    ("argoproj.io/v1alpha1", "Application"),
    ("argoproj.io/v1alpha1", "AnalysisTemplate"),
    ("argoproj.io/v1alpha1", "Rollout"),
}


def merge(base, overlay):
    out = copy.deepcopy(base)
    for k, v in overlay.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


async def lint(chart: pathlib.Path, overlay: pathlib.Path | None) -> list[str]:
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        target = pathlib.Path(tmp) / chart.name
        shutil.copytree(chart, target)
        label = str(chart.relative_to(ROOT))
        if overlay is not None:
            base = yaml.safe_load((chart / "values.yaml").read_text()) or {}
            extra = yaml.safe_load(overlay.read_text()) or {}
            (target / "values.yaml").write_text(yaml.safe_dump(merge(base, extra)))
            label += f" + {overlay.name}"
        result = await helm_sdkpy.Lint(helm_sdkpy.Configuration()).run(str(target))
        for m in result.get("Messages") or []:
            sev = m.get("Severity", 0)
            if sev >= 2:
                problems.append(f"{label}: {SEVERITY.get(sev, sev)} in {m.get('Path')}")
        print(f"helm lint {label}: {len(problems)} problem(s)")
    return problems


def validate_manifests() -> list[str]:
    problems = []
    for path in sorted((ROOT / "integrations").rglob("*.yaml")) + sorted((ROOT / "integrations").rglob("*.yml")):
        rel = path.relative_to(ROOT)
        # Chart sources are templates, linted above; only concrete manifests are validated here.
        if any(p in ("templates",) for p in rel.parts) or path.name in ("Chart.yaml", "values.yaml"):
            continue
        try:
            docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        except yaml.YAMLError as e:
            problems.append(f"{rel}: not valid YAML: {e}")
            continue
        for doc in docs:
            kind = (doc.get("apiVersion"), doc.get("kind"))
            if kind == (None, None):
                # Not a Kubernetes object (e.g. Orca's orca-local.yml): parsing it is the check.
                continue
            if kind in CRD_KINDS:
                if not doc.get("metadata", {}).get("name") or "spec" not in doc:
                    problems.append(f"{rel}: {kind[1]} needs metadata.name and spec")
                continue
            try:
                kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
            except kubernetes_validate.ValidationError as e:
                path_s = ".".join(str(p) for p in e.path)
                problems.append(f"{rel}: {kind[1]} at `{path_s}`: {e.message}")
            except kubernetes_validate.SchemaNotFoundError:
                problems.append(f"{rel}: no Kubernetes schema for {kind}")
        print(f"validated {rel}: {len(docs)} document(s)")
    return problems


async def refuses(chart: pathlib.Path, values: dict, why: str) -> list[str]:
    """The chart must fail to render with `values` (a guard in templates/_helpers.tpl)."""
    with tempfile.TemporaryDirectory() as tmp:
        overlay = pathlib.Path(tmp) / "overlay.yaml"
        overlay.write_text(yaml.safe_dump(values))
        found = await lint(chart, overlay)
    if found:
        print(f"helm lint refuses {why}: ok")
        return []
    return [f"{chart.relative_to(ROOT)} renders {why}, which it must refuse"]


async def renders(chart: pathlib.Path, values: dict, what: str) -> list[str]:
    """The chart must lint clean with `values` (an optional feature switched on)."""
    with tempfile.TemporaryDirectory() as tmp:
        overlay = pathlib.Path(tmp) / "overlay.yaml"
        overlay.write_text(yaml.safe_dump(values))
        found = await lint(chart, overlay)
    return [f"{what}: {p}" for p in found]


async def main() -> int:
    chart = ROOT / "helm" / "portcullis"
    problems = []
    problems += await lint(chart, None)
    problems += await lint(chart, chart / "values-ha.yaml")
    problems += await lint(chart, chart / "values-admission.yaml")
    problems += await refuses(
        chart,
        {"persistence": {"enabled": False}},
        "the SQLite store without persistence (decisions lost on restart)",
    )
    problems += await renders(
        chart,
        {"persistence": {"enabled": False, "ephemeral": True}},
        "an explicitly ephemeral SQLite store",
    )
    problems += await renders(
        chart,
        {"tls": {"secretName": "portcullis-tls", "clientCaSecretName": "pipelines-ca"}},
        "TLS with required client certificates",
    )
    problems += await lint(ROOT / "integrations" / "argocd" / "portcullis-gate", None)
    problems += validate_manifests()
    for p in problems:
        print(f"error: {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
