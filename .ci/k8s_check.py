"""Checks what users deploy: `helm lint` on the charts (default, HA and admission-webhook values) through helm-sdkpy,
which embeds Helm's Go library; the chart rendered offline (helm-python-sdk, also Helm's Go
library) with the default values and with values-admission.yaml in both certificate modes, every
rendered object validated against the Kubernetes schemas and the webhook checked wired end to end
(webhook -> Service port -> container port -> the TLS listener in the rendered config, serving the
Secret whose CA is the caBundle); and the Kubernetes manifests in integrations/ against the
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

import helm_python
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
    ("cert-manager.io/v1", "Certificate"),
    ("cert-manager.io/v1", "Issuer"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
}
RELEASE = "portcullis"
NAMESPACE = "portcullis"


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


def validate_doc(label: str, doc: dict) -> list[str]:
    """One Kubernetes object against its schema (custom resources: shape only)."""
    kind = (doc.get("apiVersion"), doc.get("kind"))
    if kind in CRD_KINDS:
        if not doc.get("metadata", {}).get("name") or "spec" not in doc:
            return [f"{label}: {kind[1]} needs metadata.name and spec"]
        return []
    try:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        path_s = ".".join(str(p) for p in e.path)
        return [f"{label}: {kind[1]} at `{path_s}`: {e.message}"]
    except kubernetes_validate.SchemaNotFoundError:
        return [f"{label}: no Kubernetes schema for {kind}"]
    return []


def render(chart: pathlib.Path, overlays: list[dict]) -> list[dict]:
    """The chart rendered offline (as `helm template`) with the chart's values and `overlays`."""
    values = yaml.safe_load((chart / "values.yaml").read_text()) or {}
    for overlay in overlays:
        values = merge(values, overlay)
    manifests = helm_python.Chart.load(str(chart)).render(
        values=values, name=RELEASE, namespace=NAMESPACE, is_install=True
    )
    docs = []
    for path, text in sorted(manifests.items()):
        if not path.endswith((".yaml", ".yml")):
            continue
        docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


def find(docs: list[dict], kind: str, name: str | None = None) -> dict | None:
    for d in docs:
        if d.get("kind") == kind and (name is None or d["metadata"]["name"] == name):
            return d
    return None


def webhook_wiring(label: str, docs: list[dict], mode: str) -> list[str]:
    """The webhook reaches a port the pods serve over TLS with the certificate its caBundle trusts."""
    problems = []
    vwc = find(docs, "ValidatingWebhookConfiguration")
    if vwc is None:
        return [f"{label}: no ValidatingWebhookConfiguration rendered"]
    (hook,) = vwc["webhooks"]
    if hook.get("failurePolicy") != "Fail" or not 1 <= hook.get("timeoutSeconds", 0) <= 30:
        problems.append(f"{label}: failurePolicy must be Fail with timeoutSeconds 1-30")
    excluded = next(
        (e["values"] for e in hook["namespaceSelector"]["matchExpressions"]
         if e["key"] == "kubernetes.io/metadata.name" and e["operator"] == "NotIn"),
        [],
    )
    if not {"kube-system", NAMESPACE} <= set(excluded):
        problems.append(f"{label}: kube-system and the release namespace must be excluded, got {excluded}")
    svc_ref = hook["clientConfig"]["service"]
    svc = find(docs, "Service", svc_ref["name"])
    port = next((p for p in (svc or {}).get("spec", {}).get("ports", []) if p["port"] == svc_ref["port"]), None)
    if port is None:
        return problems + [f"{label}: the webhook calls Service port {svc_ref['port']}, which the Service lacks"]
    deploy = find(docs, "Deployment")
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    cport = next((p for p in container["ports"] if p["name"] == port["targetPort"]), None)
    if cport is None:
        return problems + [f"{label}: Service port targets `{port['targetPort']}`, which the container lacks"]
    config = yaml.safe_load(find(docs, "ConfigMap", RELEASE)["data"]["config.yaml"])
    listener = (config.get("admission") or {}).get("listener") or {}
    if not config["admission"].get("enabled"):
        problems.append(f"{label}: the rendered config does not enable admission")
    if listener.get("addr", "").rsplit(":", 1)[-1] != str(cport["containerPort"]):
        problems.append(f"{label}: container port {cport['containerPort']} is not admission.listener ({listener.get('addr')})")
    cert_file = (listener.get("tls") or {}).get("cert_file", "")
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    mount = next((n for path, n in mounts.items() if cert_file.startswith(path + "/")), None)
    volumes = {v["name"]: v for v in deploy["spec"]["template"]["spec"]["volumes"]}
    secret_name = volumes.get(mount, {}).get("secret", {}).get("secretName")
    if secret_name is None:
        return problems + [f"{label}: admission.listener's certificate `{cert_file}` is not a mounted Secret"]
    if mode == "helm":
        secret = find(docs, "Secret", secret_name)
        if secret is None or not hook["clientConfig"].get("caBundle"):
            problems.append(f"{label}: helm mode needs the Secret `{secret_name}` and a caBundle")
        elif secret["data"]["ca.crt"] != hook["clientConfig"]["caBundle"]:
            problems.append(f"{label}: the caBundle is not the CA of Secret `{secret_name}`")
    else:
        cert = next((d for d in docs if d.get("kind") == "Certificate" and d["spec"]["secretName"] == secret_name), None)
        inject = vwc["metadata"].get("annotations", {}).get("cert-manager.io/inject-ca-from")
        if cert is None or inject != f"{NAMESPACE}/{cert['metadata']['name']}":
            problems.append(f"{label}: cert-manager mode needs a Certificate into `{secret_name}` named by inject-ca-from")
        elif f"{svc_ref['name']}.{NAMESPACE}.svc" not in cert["spec"]["dnsNames"]:
            problems.append(f"{label}: the Certificate does not name the Service")
    return problems


def validate_rendered(chart: pathlib.Path, label: str, overlays: list[dict], mode: str | None) -> list[str]:
    try:
        docs = render(chart, overlays)
    except Exception as e:  # noqa: BLE001 - any render failure is a finding
        return [f"{label}: does not render: {e}"]
    problems = []
    for doc in docs:
        problems += validate_doc(f"{label} {doc.get('kind')}/{doc.get('metadata', {}).get('name')}", doc)
    if mode is not None:
        problems += webhook_wiring(label, docs, mode)
    print(f"rendered {label}: {len(docs)} object(s), {len(problems)} problem(s)")
    return problems


def render_refuses(chart: pathlib.Path, values: dict, why: str) -> list[str]:
    """The chart must fail to render (`helm template` / `install`) with `values`: a `fail` guard
    in templates/_helpers.tpl (helm lint only logs those)."""
    try:
        render(chart, [values])
    except helm_python.errors.HelmRenderError:
        print(f"helm template refuses {why}: ok")
        return []
    return [f"{chart.relative_to(ROOT)} renders {why}, which it must refuse"]


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
    problems += render_refuses(
        chart,
        {"admission": {"webhook": {"enabled": True}}},
        "the admission webhook without a way for the API server to authenticate",
    )
    admission = yaml.safe_load((chart / "values-admission.yaml").read_text())
    cert_manager = {"admission": {"webhook": {"certificate": {"mode": "cert-manager"}}}}
    problems += await renders(chart, merge(admission, cert_manager), "values-admission.yaml with cert-manager")
    problems += validate_rendered(chart, "chart (default values)", [], None)
    problems += validate_rendered(chart, "chart + values-ha.yaml", [yaml.safe_load((chart / "values-ha.yaml").read_text())], None)
    problems += validate_rendered(chart, "chart + values-admission.yaml (helm certificate)", [admission], "helm")
    problems += validate_rendered(chart, "chart + values-admission.yaml (cert-manager)", [admission, cert_manager], "cert-manager")
    problems += validate_rendered(
        chart,
        "chart + values-admission.yaml (cert-manager, own issuer)",
        [admission, merge(cert_manager, {"admission": {"webhook": {"certificate": {"issuerRef": {"name": "corp-ca", "kind": "ClusterIssuer"}}}}})],
        "cert-manager",
    )
    problems += await lint(ROOT / "integrations" / "argocd" / "portcullis-gate", None)
    problems += validate_manifests()
    for p in problems:
        print(f"error: {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
