#!/usr/bin/env python3
"""Offline checks of MedLedger's deployment files (run through scripts/check-deploy).

No Docker engine and no Kubernetes cluster exist where this runs, so nothing is
started. Instead:

* the Helm chart is linted and rendered by Helm v4 itself (PyPI helm-python-sdk,
  which embeds Helm's Go SDK as a C library), its values.schema.json is shown to
  accept the defaults and to reject bad values, and every rendered manifest is
  validated against the Kubernetes OpenAPI-derived JSON schemas (PyPI
  kubernetes-validate, strict mode: unknown fields fail);
* docker-compose.yml is validated against the Compose Specification JSON schema
  as vendored by PyPI check-jsonschema (``vendor.compose-spec``), and that schema
  is shown to reject an unknown key;
* the distributed stack in docker-compose.yml is checked as a whole: the infrastructure
  is there (PostgreSQL, Kafka in KRaft mode, Kubo, two chain nodes, an OTLP collector),
  images are pinned, dependencies name existing services that can satisfy their
  condition, only the gateway publishes a port, the one-shot jobs' shell parses, the
  contract addresses agree between the deploy job and the ledger writer, and every
  MedLedger service's environment is loaded by that service's own configuration loader
  (``medledger config check SERVICE``), which rejects unknown keys and bad values;
* the compose healthcheck command is executed against a stub HTTP server on
  loopback (200 must pass, 503 and a closed port must fail);
* the Dockerfile is parsed with BuildKit's parser (PyPI dockerfile) and checked
  (stages, base images, cache mounts, uid, entrypoint, cmd, port, volume);
* the Dockerfile, docker-compose.yml and the rendered chart are cross-checked:
  same `dev --data-dir … --listen …` command, same port, same data dir, same uid.

Prints one PASS/FAIL line per check and ends with
``check-deploy: N passed, M failed``; exits 1 when anything failed.
"""

from __future__ import annotations

import copy
import http.server
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import dockerfile
import helm_python
import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "deploy" / "helm" / "medledger"
COMPOSE = ROOT / "docker-compose.yml"
OTEL_CONFIG = ROOT / "deploy" / "otel-collector.yaml"
# The built binary, for `medledger config check` (scripts/check-deploy sets it).
MEDLEDGER_BIN = os.environ.get("MEDLEDGER_BIN", "")
# MedLedger's service processes in compose, each run as `medledger <name>`.
COMPOSE_SERVICES = ["consent", "ledger-writer", "ingest", "query", "gateway"]
DEV_SERVICE = "medledger-dev"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

# Oldest Kubernetes minor the chart promises to work on; kubernetes-validate 1.37
# ships schemas for 1.25 … 1.37.
K8S_VERSION = os.environ.get("MEDLEDGER_K8S_VERSION", "1.30.0")
RELEASE = "medledger"
NAMESPACE = "medledger"

EXPECTED_UID = 10001
EXPECTED_BUILDER = "rust:1.95-bookworm"
EXPECTED_RUNTIME = "debian:bookworm-slim"

INGRESS_VALUES: dict[str, Any] = {
    "ingress": {
        "enabled": True,
        "className": "nginx",
        "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "16m"},
        "hosts": [{"host": "fhir.example.test", "paths": [{"path": "/", "pathType": "Prefix"}]}],
        "tls": [{"secretName": "medledger-tls", "hosts": ["fhir.example.test"]}],
    }
}

# Values the chart's values.schema.json must refuse (name -> override).
BAD_VALUES: dict[str, dict[str, Any]] = {
    "unknown top-level key": {"replicaCount": 3},
    "persistence.size not a quantity": {"persistence": {"size": "lots"}},
    "image.pullPolicy not an enum value": {"image": {"pullPolicy": "Sometimes"}},
    "service.type not ClusterIP": {"service": {"type": "LoadBalancer"}},
    "containerPort out of range": {"containerPort": 70000},
    "log.format unknown": {"log": {"format": "xml"}},
    "runAsNonRoot false": {"securityContext": {"runAsNonRoot": False}},
    "allowPrivilegeEscalation true": {"securityContext": {"allowPrivilegeEscalation": True}},
    "resources.limits.cpu garbage": {"resources": {"limits": {"cpu": "two"}}},
    "dataDir relative": {"dataDir": "data"},
    "extraEnv overrides a managed variable": {"extraEnv": [{"name": "MEDLEDGER_LISTEN", "value": "x"}]},
    "ingress.enabled without hosts": {"ingress": {"enabled": True, "hosts": []}},
}


class CheckError(Exception):
    """A check found a problem."""


class CheckSkipped(Exception):
    """A check could not run because one it depends on failed."""


def ensure(cond: bool, msg: str) -> None:
    if not cond:
        raise CheckError(msg)


class Runner:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0
        self.skipped = 0
        self.state: dict[str, Any] = {}

    def check(self, name: str, fn: Callable[[], str | None]) -> None:
        try:
            detail = fn()
        except CheckSkipped as e:
            self.skipped += 1
            print(f"SKIP {name}: {e}", flush=True)
        except CheckError as e:
            self.failed += 1
            print(f"FAIL {name}: {one_line(str(e))}", flush=True)
        except Exception as e:  # a crash in a check is a failed check, not a traceback
            self.failed += 1
            print(f"FAIL {name}: {type(e).__name__}: {one_line(str(e))}", flush=True)
        else:
            self.passed += 1
            print(f"PASS {name}" + (f" — {detail}" if detail else ""), flush=True)

    def need(self, key: str) -> Any:
        if key not in self.state:
            raise CheckSkipped(f"needs a result of an earlier check that failed ({key})")
        return self.state[key]


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def one_line(text: str) -> str:
    """Helm's multi-line errors folded onto the FAIL line."""
    return re.sub(r"\s*\n\s*", " | ", text.strip())


_INTERP = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


def interpolate(value: Any) -> Any:
    """Resolve compose `${VAR:-default}` to its default (ignores the caller's env,
    so the check is deterministic)."""
    if isinstance(value, str):
        return _INTERP.sub(lambda m: m.group(2) or "", value)
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    return value


def parse_dev_command(argv: list[str], where: str) -> dict[str, str]:
    """Check argv is `dev --data-dir DIR --listen HOST:PORT`; return the options."""
    ensure(bool(argv) and argv[0] == "dev", f"{where}: first argument must be the `dev` subcommand, got {argv!r}")
    opts: dict[str, str] = {}
    rest = argv[1:]
    i = 0
    while i < len(rest):
        arg = rest[i]
        if "=" in arg and arg.startswith("--"):
            k, v = arg.split("=", 1)
            opts[k] = v
            i += 1
        else:
            ensure(arg.startswith("--") and i + 1 < len(rest), f"{where}: cannot parse arguments {rest!r}")
            opts[arg] = rest[i + 1]
            i += 2
    ensure("--data-dir" in opts, f"{where}: `--data-dir` missing in {argv!r}")
    ensure("--listen" in opts, f"{where}: `--listen` missing in {argv!r}")
    ensure(opts["--data-dir"].startswith("/"), f"{where}: --data-dir must be absolute")
    m = re.fullmatch(r"(.+):(\d+)", opts["--listen"])
    ensure(m is not None, f"{where}: --listen must be HOST:PORT, got {opts['--listen']!r}")
    assert m is not None
    ensure(m.group(1) in ("0.0.0.0", "[::]"), f"{where}: --listen must bind all interfaces in a container, got {m.group(1)}")
    return {"data_dir": opts["--data-dir"], "listen": opts["--listen"], "port": m.group(2)}


def manifests(rendered: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    """(template, object) for every non-empty YAML document, NOTES.txt excluded."""
    out = []
    for template, text in sorted(rendered.items()):
        if template.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                ensure(isinstance(doc, dict), f"{template}: rendered document is not a mapping")
                out.append((template, doc))
    return out


def by_kind(objs: list[tuple[str, dict[str, Any]]], kind: str) -> list[dict[str, Any]]:
    return [o for _, o in objs if o.get("kind") == kind]


def render(values: dict[str, Any] | None) -> dict[str, str]:
    with helm_python.Chart.load(CHART) as chart:
        return chart.render(values=values, name=RELEASE, namespace=NAMESPACE, is_install=True)


# ---------------------------------------------------------------------------
# chart
# ---------------------------------------------------------------------------


def lint(values: dict[str, Any] | None) -> str:
    report = helm_python.lint(CHART, values, kube_version=f"v{K8S_VERSION}")
    errors: list[str] = []
    notes = []
    for m in report.get("messages") or []:
        sev = m.get("severity", 0)
        if sev >= 3:
            errors.append(f"{m.get('path')}: {m.get('error')}")
        elif sev == 2:
            notes.append(f"warning {m.get('path')}: {m.get('error')}")
    for n in notes:
        print(f"     {n}")
    ensure(report.get("total_charts_linted") == 1, f"expected 1 chart linted, got {report.get('total_charts_linted')}")
    # `errors` repeats the severity-3 messages; report it only if it says more.
    extra = [e for e in report.get("errors") or [] if not any(str(e) in x for x in errors)]
    errors += [str(e) for e in extra]
    ensure(not errors, "; ".join(errors))
    return f"{len(report.get('messages') or [])} message(s), 0 errors"


def check_chart_yaml() -> str:
    with helm_python.Chart.load(CHART) as chart:
        meta = chart.metadata
        ensure(chart.schema is not None, "values.schema.json missing")
    ensure(meta.get("apiVersion") == "v2", f"Chart.yaml apiVersion must be v2, got {meta.get('apiVersion')}")
    ensure(meta.get("appVersion") == "0.1.0", f"appVersion must be 0.1.0, got {meta.get('appVersion')}")
    ensure(meta.get("type", "application") == "application", "chart type must be application")
    return f"{meta['name']} {meta['version']} (app {meta['appVersion']})"


def check_schema_accepts_defaults() -> str:
    with helm_python.Chart.load(CHART) as chart:
        chart.validate_schema(None)
        chart.validate_schema(INGRESS_VALUES)
    return "defaults and ingress values"


def check_schema_rejects_bad_values() -> str:
    accepted = []
    with helm_python.Chart.load(CHART) as chart:
        for name, override in BAD_VALUES.items():
            try:
                chart.validate_schema(chart.merge_values(override))
            except helm_python.HelmValuesError:
                continue
            accepted.append(name)
    ensure(not accepted, "schema accepted bad values: " + ", ".join(accepted))
    return f"{len(BAD_VALUES)} bad value sets rejected"


def check_render(r: Runner, key: str, values: dict[str, Any] | None, kinds: set[str]) -> Callable[[], str]:
    def fn() -> str:
        rendered = render(values)
        objs = manifests(rendered)
        got = sorted(o["kind"] for _, o in objs)
        ensure(set(got) == kinds, f"rendered kinds {got}, expected {sorted(kinds)}")
        for _, o in objs:
            ensure(o.get("metadata", {}).get("namespace") == NAMESPACE, f"{o['kind']} without the release namespace")
        notes = rendered.get("medledger/templates/NOTES.txt", "")
        ensure("port-forward" in notes or "Ingress" in notes, "NOTES.txt tells neither port-forward nor ingress")
        ensure("medledger token --data-dir" in notes, "NOTES.txt does not show how to mint a token")
        ensure("kubectl --namespace" in notes and "exec" in notes, "NOTES.txt lacks the kubectl exec command")
        r.state[key] = objs
        r.state[key + ".notes"] = notes
        return f"{len(objs)} manifests: {', '.join(got)}"

    return fn


def check_kubernetes_schemas(r: Runner, key: str) -> Callable[[], str]:
    def fn() -> str:
        objs = r.need(key)
        problems = []
        for template, obj in objs:
            label = f"{template} {obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
            try:
                kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
            except kubernetes_validate.ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                problems.append(f"{label}: {path}: {e.message}")
            except kubernetes_validate.SchemaNotFoundError as e:
                problems.append(f"{label}: {e.message}")
        ensure(not problems, "; ".join(problems))
        return f"{len(objs)} manifests valid against Kubernetes {K8S_VERSION} (strict)"

    return fn


def check_chart_contract(r: Runner) -> str:
    objs = r.need("default")
    defaults = helm_python.Chart.load(CHART)
    with defaults as chart:
        values = chart.values

    sts_list = by_kind(objs, "StatefulSet")
    ensure(len(sts_list) == 1, "expected exactly one StatefulSet")
    sts = sts_list[0]
    spec = sts["spec"]
    ensure(spec.get("replicas") == 1, "StatefulSet must run exactly 1 replica")
    pod = spec["template"]["spec"]
    containers = pod["containers"]
    ensure(len(containers) == 1, "expected one container")
    c = containers[0]
    ensure("command" not in c, "container must keep the image entrypoint `medledger` (no command override)")
    dev = parse_dev_command(c.get("args") or [], "chart")
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    for var in ("MEDLEDGER_DATA_DIR", "MEDLEDGER_LISTEN", "RUST_LOG", "MEDLEDGER_LOG_FORMAT"):
        ensure(var in env, f"chart: env {var} missing")
    ensure(env["MEDLEDGER_DATA_DIR"] == dev["data_dir"], "chart: MEDLEDGER_DATA_DIR differs from --data-dir")
    ensure(env["MEDLEDGER_LISTEN"] == dev["listen"], "chart: MEDLEDGER_LISTEN differs from --listen")
    ensure(env["MEDLEDGER_LOG_FORMAT"] in ("json", "text"), "chart: MEDLEDGER_LOG_FORMAT must be json|text")

    ports = {p["name"]: p for p in c.get("ports", [])}
    ensure("http" in ports and str(ports["http"]["containerPort"]) == dev["port"],
           "chart: container port `http` must equal the --listen port")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/healthz")):
        ensure(probe in c, f"chart: {probe} missing")
        hg = c[probe].get("httpGet", {})
        ensure(hg.get("path") == path and hg.get("port") in ("http", int(dev["port"])),
               f"chart: {probe} must GET {path} on the http port, got {hg}")

    res = c.get("resources", {})
    ensure(res.get("requests") == values["resources"]["requests"] and res.get("limits") == values["resources"]["limits"],
           "chart: resources do not come from values")
    ensure(res.get("requests", {}).get("cpu") and res.get("limits", {}).get("memory"), "chart: requests/limits missing")

    sc = c.get("securityContext", {})
    psc = pod.get("securityContext", {})
    ensure(sc.get("runAsNonRoot") is True and psc.get("runAsNonRoot") is True, "runAsNonRoot must be true")
    ensure(sc.get("runAsUser") == EXPECTED_UID and psc.get("runAsUser") == EXPECTED_UID, f"runAsUser must be {EXPECTED_UID}")
    ensure(sc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem must be true")
    ensure(sc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation must be false")
    ensure(sc.get("capabilities", {}).get("drop") == ["ALL"], "capabilities must drop ALL")
    ensure(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault"
           and sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", "seccomp must be RuntimeDefault")

    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
    ensure(dev["data_dir"] in mounts, "chart: the data dir is not mounted")
    vcts = {v["metadata"]["name"]: v for v in spec.get("volumeClaimTemplates", [])}
    ensure(mounts[dev["data_dir"]] in vcts, "chart: the data dir is not backed by a volumeClaimTemplate")
    size = vcts[mounts[dev["data_dir"]]]["spec"]["resources"]["requests"]["storage"]
    ensure(size == values["persistence"]["size"], "chart: PVC size does not come from values.persistence.size")
    ensure("/tmp" in mounts, "chart: /tmp must be a writable volume (read-only root filesystem)")

    svcs = {s["metadata"]["name"]: s for s in by_kind(objs, "Service")}
    ensure(spec.get("serviceName") in svcs, "chart: StatefulSet serviceName names no rendered Service")
    ensure(svcs[spec["serviceName"]]["spec"].get("clusterIP") == "None", "chart: governing Service must be headless")
    main = [s for s in svcs.values() if s["spec"].get("clusterIP") != "None"]
    ensure(len(main) == 1, "chart: expected one client Service")
    svc = main[0]["spec"]
    ensure(svc.get("type") == "ClusterIP", "chart: Service must be ClusterIP")
    sp = {p["name"]: p for p in svc.get("ports", [])}
    ensure("http" in sp and sp["http"]["port"] == 8080 and sp["http"]["targetPort"] == "http",
           "chart: Service must expose port 8080 named http targeting the http container port")
    sel = svc.get("selector", {})
    labels = spec["template"]["metadata"]["labels"]
    ensure(sel and all(labels.get(k) == v for k, v in sel.items()), "chart: Service selector does not match the pod")
    ensure(spec["selector"]["matchLabels"] == sel, "chart: StatefulSet selector differs from the Service selector")

    image = c["image"]
    ensure(image == f"{values['image']['repository']}:0.1.0", f"chart: image should default to appVersion, got {image}")
    ensure(c.get("imagePullPolicy") == values["image"]["pullPolicy"], "chart: pullPolicy does not come from values")

    r.state["chart.dev"] = dev
    r.state["chart.uid"] = sc.get("runAsUser")
    return f"dev --data-dir {dev['data_dir']} --listen {dev['listen']}, uid {EXPECTED_UID}, PVC {size}"


def check_ingress_contract(r: Runner) -> str:
    objs = r.need("ingress")
    ing = by_kind(objs, "Ingress")
    ensure(len(ing) == 1, "expected one Ingress")
    spec = ing[0]["spec"]
    ensure(spec.get("ingressClassName") == "nginx", "ingressClassName not from values")
    ensure(spec.get("tls", [{}])[0].get("secretName") == "medledger-tls", "tls not from values")
    svc_names = {s["metadata"]["name"] for s in by_kind(objs, "Service") if s["spec"].get("clusterIP") != "None"}
    for rule in spec["rules"]:
        for p in rule["http"]["paths"]:
            b = p["backend"]["service"]
            ensure(b["name"] in svc_names and b["port"]["number"] == 8080, f"Ingress backend {b} is not the http Service")
    ensure("https://fhir.example.test/fhir" in r.need("ingress.notes"), "NOTES.txt does not show the ingress URL")
    return f"host {spec['rules'][0]['host']} -> Service port 8080"


# ---------------------------------------------------------------------------
# compose
# ---------------------------------------------------------------------------


def compose_schema() -> dict[str, Any]:
    ref = resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json")
    return json.loads(ref.read_text(encoding="utf-8"))


def compose_errors(doc: Any, schema: dict[str, Any]) -> list[str]:
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    v = cls(schema)
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
            for e in sorted(v.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))]


def check_compose_schema(r: Runner) -> str:
    schema = compose_schema()
    doc = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    ensure(isinstance(doc, dict), "docker-compose.yml is not a mapping")
    errs = compose_errors(doc, schema)
    ensure(not errs, "; ".join(errs))
    r.state["compose"] = doc
    return f"valid against the Compose Specification schema ({schema.get('$schema', '?').rsplit('/', 2)[-2]})"


def check_compose_schema_is_strict() -> str:
    schema = compose_schema()
    doc = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    bad: dict[str, Any] = {}
    mutations: dict[str, Callable[[dict[str, Any]], None]] = {
        "unknown service key": lambda d: d["services"]["gateway"].__setitem__("bulid", {"context": "."}),
        "unknown top-level key": lambda d: d.__setitem__("service", {}),
        "healthcheck.test not a list/string": lambda d: d["services"]["ingest"]["healthcheck"].__setitem__("test", 42),
        "misspelt port key": lambda d: d["services"]["gateway"].__setitem__("ports", [{"target": 8080, "publised": "8080"}]),
        "volumes not a list": lambda d: d["services"][DEV_SERVICE].__setitem__("volumes", "medledger-data:/data"),
    }
    for name, mutate in mutations.items():
        d = copy.deepcopy(doc)
        mutate(d)
        if not compose_errors(d, schema):
            bad[name] = True
    ensure(not bad, "compose schema accepted: " + ", ".join(bad))
    return f"{len(mutations)} broken variants rejected"


def check_compose_contract(r: Runner) -> str:
    doc = interpolate(r.need("compose"))
    ensure(DEV_SERVICE in doc["services"], f"expected a service `{DEV_SERVICE}`")
    svc = doc["services"][DEV_SERVICE]
    ensure(svc.get("profiles") == ["dev"], f"{DEV_SERVICE} must sit in the `dev` profile (the default stack is distributed)")
    build = svc.get("build")
    ensure(isinstance(build, dict) and build.get("context") == ".", "build.context must be the repo root")
    ensure((ROOT / build.get("dockerfile", "Dockerfile")).resolve() == DOCKERFILE.resolve(), "build.dockerfile must be ./Dockerfile")
    ensure("entrypoint" not in svc, "compose must keep the image entrypoint `medledger`")
    cmd = svc.get("command")
    if isinstance(cmd, str):
        cmd = shlex.split(cmd)
    dev = parse_dev_command(cmd or [], "compose")
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env)
    for var in ("MEDLEDGER_DATA_DIR", "MEDLEDGER_LISTEN", "RUST_LOG", "MEDLEDGER_LOG_FORMAT"):
        ensure(var in env, f"compose: environment {var} missing")
    ensure(env["MEDLEDGER_DATA_DIR"] == dev["data_dir"], "compose: MEDLEDGER_DATA_DIR differs from --data-dir")
    ensure(env["MEDLEDGER_LISTEN"] == dev["listen"], "compose: MEDLEDGER_LISTEN differs from --listen")
    ensure(env["MEDLEDGER_LOG_FORMAT"] in ("json", "text"), "compose: MEDLEDGER_LOG_FORMAT must be json|text")

    targets = []
    for p in svc.get("ports", []):
        if isinstance(p, dict):
            targets.append(str(p["target"]))
        else:
            targets.append(str(p).split("/")[0].rsplit(":", 1)[-1])
    ensure(targets == [dev["port"]], f"compose: ports must publish exactly the --listen port {dev['port']}, got {targets}")

    vols = svc.get("volumes", [])
    data = [v for v in vols if (v.get("target") if isinstance(v, dict) else str(v).split(":")[1]) == dev["data_dir"]]
    ensure(len(data) == 1, "compose: the data dir must be one mounted volume")
    v = data[0]
    src = v.get("source") if isinstance(v, dict) else str(v).split(":")[0]
    ensure((v.get("type", "volume") if isinstance(v, dict) else "volume") == "volume" and src in (doc.get("volumes") or {}),
           "compose: the data dir must be a named volume declared under top-level volumes")

    hc = svc.get("healthcheck") or {}
    test = hc.get("test")
    ensure(isinstance(test, list) and test[:1] == ["CMD"], "compose: healthcheck.test must be an exec-form CMD list")
    joined = " ".join(test)
    ensure("/healthz" in joined, "compose: healthcheck must hit /healthz")
    ensure(f"/dev/tcp/127.0.0.1/{dev['port']}" in joined, "compose: healthcheck must probe the --listen port")
    ensure("curl" not in joined and "wget" not in joined, "compose: the image has no curl/wget; probe with bash /dev/tcp")
    ensure(svc.get("restart") == "unless-stopped", "compose: restart must be unless-stopped")
    ensure(str(svc.get("user", "")).split(":")[0] == str(EXPECTED_UID), f"compose: user must be {EXPECTED_UID}")
    r.state["compose.dev"] = dev
    r.state["compose.healthcheck"] = test
    return f"dev --data-dir {dev['data_dir']} --listen {dev['listen']}, volume {src}, healthcheck on /healthz"


def env_of(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def check_compose_stack(r: Runner) -> str:
    doc = interpolate(r.need("compose"))
    services: dict[str, Any] = doc["services"]
    default = {n: s for n, s in services.items() if not s.get("profiles")}
    images = {n: str(s.get("image", "")) for n, s in services.items()}
    for n, image in images.items():
        ensure(":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), f"{n}: image {image!r} is not pinned to a tag")
    infra = {
        "postgres": lambda i: i.startswith("postgres:"),
        "kafka": lambda i: i.startswith("apache/kafka:"),
        "ipfs": lambda i: i.startswith("ipfs/kubo:"),
        "private-chain": lambda i: "foundry" in i,
        "public-chain": lambda i: "foundry" in i,
        "otel-collector": lambda i: "opentelemetry-collector" in i,
    }
    for n, ok in infra.items():
        ensure(n in default, f"the default stack lacks `{n}`")
        ensure(ok(images[n]), f"{n}: unexpected image {images[n]}")
    kafka = env_of(services["kafka"])
    ensure("controller" in kafka.get("KAFKA_PROCESS_ROLES", ""), "kafka must run in KRaft mode (KAFKA_PROCESS_ROLES with controller)")
    ensure("KAFKA_ZOOKEEPER_CONNECT" not in kafka, "kafka must not use ZooKeeper")
    chains = {n: services[n]["command"] for n in ("private-chain", "public-chain")}
    chain_ids = {n: c[c.index("--chain-id") + 1] for n, c in chains.items()}
    ensure(len(set(chain_ids.values())) == 2, f"the two chains need distinct chain ids, got {chain_ids}")

    for n in COMPOSE_SERVICES:
        ensure(n in default, f"the default stack lacks MedLedger's `{n}`")
        s = services[n]
        ensure(s.get("command") == [n], f"{n}: command must be [{n!r}] (the image entrypoint is medledger)")
        ensure(images[n] == images[DEV_SERVICE], f"{n}: must run the image built from ./Dockerfile")
        ensure(str(s.get("user", "")).split(":")[0] == str(EXPECTED_UID), f"{n}: user must be {EXPECTED_UID}")
        ensure(s.get("read_only") is True, f"{n}: root filesystem must be read-only")
        test = " ".join((s.get("healthcheck") or {}).get("test") or [])
        ensure("/readyz" in test and "/dev/tcp/127.0.0.1/9090" in test, f"{n}: healthcheck must probe /readyz on the admin port 9090")
    for n, s in default.items():
        deps = s.get("depends_on") or {}
        for dep, cond in (deps.items() if isinstance(deps, dict) else ((d, {}) for d in deps)):
            ensure(dep in default, f"{n} depends on `{dep}`, which is not in the default stack")
            c = (cond or {}).get("condition", "service_started")
            if c == "service_healthy":
                ensure("healthcheck" in services[dep], f"{n} waits for `{dep}` to be healthy, but it has no healthcheck")
            if c == "service_completed_successfully":
                ensure(services[dep].get("restart") == "no", f"{n} waits for `{dep}` to complete, but it restarts")
        published = s.get("ports") or []
        # Clients reach FHIR through the gateway only; HL7 v2 feeds reach ingest's MLLP port.
        if n == "ingest":
            targets = [str(p.get("target")) for p in published]
            ensure(targets in ([], ["2575"]), f"ingest may publish MLLP (2575) only, not {targets}")
            ensure(all(p.get("host_ip") == "127.0.0.1" for p in published),
                   "ingest's MLLP port is published on loopback by default (MLLP has no authentication)")
        else:
            ensure(not published or n == "gateway", f"{n} publishes a port; only the gateway faces clients")
    gw_ports = services["gateway"].get("ports") or []
    ensure(len(gw_ports) == 1 and str(gw_ports[0]["target"]) == "8080", "the gateway must publish FHIR on 8080")
    ensure(gw_ports[0].get("host_ip") == "127.0.0.1", "the gateway is published on loopback by default")

    # One-shot jobs: their scripts parse, and the deploy job checks the addresses the writer uses.
    for job in ("keys", "deploy"):
        script = services[job]["command"]
        ensure(services[job].get("entrypoint") == ["bash", "-c"] and len(script) == 1, f"{job}: expected a bash -c script")
        check = subprocess.run(["bash", "-n", "-c", script[0]], capture_output=True, text=True)
        ensure(check.returncode == 0, f"{job}: script does not parse: {check.stderr.strip()}")
    writer = env_of(services["ledger-writer"])
    deploy = services["deploy"]["command"][0]
    for var, key in (("MEDLEDGER_LEDGER_WRITER_CHAIN__RECORD_LOG_ADDRESS", "record_log_address"),
                     ("MEDLEDGER_LEDGER_WRITER_ANCHOR__ANCHOR_ADDRESS", "anchor_address")):
        ensure(f'"{key}":"{writer.get(var)}"' in deploy, f"deploy job does not check {key} = {writer.get(var)}")
    for var, host in (("MEDLEDGER_LEDGER_WRITER_CHAIN__RPC_URL", "private-chain"),
                      ("MEDLEDGER_LEDGER_WRITER_ANCHOR__RPC_URL", "public-chain")):
        ensure(f"//{host}:" in writer.get(var, ""), f"{var} must point at `{host}`")

    otel = yaml.safe_load(OTEL_CONFIG.read_text(encoding="utf-8"))
    http_ep = (((otel.get("receivers") or {}).get("otlp") or {}).get("protocols") or {}).get("http") or {}
    ensure(str(http_ep.get("endpoint", "")).endswith(":4318"), "otel collector must receive OTLP/HTTP on 4318")
    ensure("traces" in ((otel.get("service") or {}).get("pipelines") or {}), "otel collector needs a traces pipeline")
    r.state["compose.stack"] = services
    return f"{len(default)} services; infra {', '.join(infra)}; chain ids {', '.join(chain_ids.values())}; only the gateway is published"


def check_compose_env_loads(r: Runner) -> str:
    services = r.need("compose.stack")
    ensure(MEDLEDGER_BIN and Path(MEDLEDGER_BIN).is_file(), f"MEDLEDGER_BIN={MEDLEDGER_BIN!r} is not the built binary")
    loaded = []
    for n in COMPOSE_SERVICES:
        env = {k: v for k, v in env_of(services[n]).items() if k.startswith("MEDLEDGER_")}
        prefix = "MEDLEDGER_" + n.upper().replace("-", "_") + "_"
        stray = [k for k in env if not k.startswith(prefix) and k not in ("MEDLEDGER_LOG_FORMAT",)]
        ensure(not stray, f"{n}: variables of another service: {stray}")
        run = subprocess.run([MEDLEDGER_BIN, "config", "check", n], capture_output=True, text=True, timeout=30,
                             env={"PATH": os.environ.get("PATH", ""), **env})
        ensure(run.returncode == 0, f"{n}: its config loader refuses the compose environment: {one_line(run.stderr)}")
        cfg = json.loads(run.stdout)
        # Each variable must have reached the loaded configuration (not been ignored).
        for k, v in env.items():
            if not k.startswith(prefix):
                continue
            path = [p.lower() for p in k[len(prefix):].split("__")]
            node: Any = cfg
            for part in path:
                ensure(isinstance(node, dict) and part in node, f"{n}: {k} does not name a configuration key")
                node = node[part]
            # `config check` shows URLs with their password redacted.
            shown = re.sub(r"^([a-z]+://[^:@/]+):[^@/]*@", r"\1:<redacted>@", v)
            ensure(str(node).lower() == shown.lower(), f"{n}: {k}={v!r} loaded as {node!r}")
            if shown != v:
                ensure(v not in run.stdout, f"{n}: `config check` printed the password of {k}")
        loaded.append(f"{n} ({len([k for k in env if k.startswith(prefix)])})")
    # And the loader is the strict one: a misspelt variable is refused.
    run = subprocess.run([MEDLEDGER_BIN, "config", "check", "ingest"], capture_output=True, text=True, timeout=30,
                         env={"PATH": os.environ.get("PATH", ""), "MEDLEDGER_INGEST_POSTGRES__ULR": "x"})
    ensure(run.returncode != 0, "a misspelt MEDLEDGER_INGEST_ variable was accepted")
    return "loaded by each service's config loader: " + ", ".join(loaded)


class _StubHandler(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:  # noqa: N802
        code = type(self).status if self.path == "/healthz" else 404
        body = b"ok\n" if code == 200 else b"no\n"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def check_compose_healthcheck_runs(r: Runner) -> str:
    test = list(r.need("compose.healthcheck"))
    dev = r.need("compose.dev")
    needle = f"/dev/tcp/127.0.0.1/{dev['port']}"
    argv = test[1:]
    ensure(sum(a.count(needle) for a in argv) == 1, "healthcheck must name the port exactly once")

    class Handler(_StubHandler):
        status = 200

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    probe = [a.replace(needle, f"/dev/tcp/127.0.0.1/{port}") for a in argv]

    def run() -> int:
        return subprocess.run(probe, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=10).returncode

    try:
        ok = run()
        Handler.status = 503
        unavailable = run()
    finally:
        server.shutdown()
        server.server_close()
    closed = run()  # nothing listens on the port any more
    ensure(ok == 0, f"probe failed against a healthy server (exit {ok})")
    ensure(unavailable != 0, "probe passed although /healthz answered 503")
    ensure(closed != 0, "probe passed although nothing listens")
    return "200 -> healthy, 503 -> unhealthy, closed port -> unhealthy"


# ---------------------------------------------------------------------------
# Dockerfile
# ---------------------------------------------------------------------------


def check_dockerfile(r: Runner) -> str:
    # Parsed by BuildKit's own Dockerfile parser (PyPI `dockerfile`), so a syntax
    # error the builder would reject fails here too.
    try:
        instrs = dockerfile.parse_file(str(DOCKERFILE))
    except dockerfile.GoParseError as e:
        raise CheckError(f"Dockerfile does not parse: {e}") from e
    args: dict[str, str] = {}
    for ins in instrs:
        if ins.cmd == "ARG":
            for a in ins.value:
                if "=" in a:
                    k, v = a.split("=", 1)
                    args.setdefault(k, v)

    def expand(text: str) -> str:
        return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: args.get(m.group(1), m.group(0)), text)

    from_idx = [i for i, ins in enumerate(instrs) if ins.cmd == "FROM"]
    ensure(len(from_idx) >= 2, "Dockerfile must be multi-stage")
    builder = expand(instrs[from_idx[0]].value[0])
    runtime = expand(instrs[from_idx[-1]].value[0])
    ensure(builder == EXPECTED_BUILDER, f"builder must be {EXPECTED_BUILDER}, got {builder}")
    ensure(runtime == EXPECTED_RUNTIME, f"runtime must be {EXPECTED_RUNTIME}, got {runtime}")

    runs = [ins for ins in instrs if ins.cmd == "RUN"]
    build = [ins for ins in runs if "cargo build" in " ".join(ins.value)]
    ensure(len(build) == 1, "expected one `cargo build` RUN")
    ensure(re.search(r"(^|&&|;)\s*cargo build --release --locked -p medledger(\s|$)", " ".join(build[0].value)) is not None,
           "builder must run `cargo build --release --locked -p medledger`")
    mounts = [f for f in build[0].flags if f.startswith("--mount=") and "type=cache" in f]
    for target in ("/usr/local/cargo/registry", "/target"):
        ensure(any(re.search(r"target=[^,]*" + re.escape(target) + r"(,|$)", m) for m in mounts),
               f"cargo build must use a cache mount for {target}")
    ensure(any("ca-certificates" in " ".join(ins.value) for ins in runs), "runtime must install ca-certificates")
    ensure(not any(re.search(r"\b(curl|wget)\b", " ".join(ins.value)) for ins in runs),
           "image installs curl/wget although the probes need neither")

    stage = instrs[from_idx[-1]:]

    def last(name: str) -> Any:
        found = [ins for ins in stage if ins.cmd == name]
        ensure(bool(found), f"runtime stage has no {name}")
        return found[-1]

    user = last("USER").value[0].split(":")[0]
    ensure(user == str(EXPECTED_UID), f"USER must be numeric {EXPECTED_UID}, got {user}")
    ep = last("ENTRYPOINT")
    ensure(ep.json and list(ep.value) == ["medledger"], 'ENTRYPOINT must be ["medledger"] (exec form)')
    cmd_ins = last("CMD")
    ensure(cmd_ins.json, "CMD must be in exec (JSON) form")
    cmd = list(cmd_ins.value)
    dev = parse_dev_command(cmd, "Dockerfile CMD")
    exposed = [p.split("/")[0] for ins in stage if ins.cmd == "EXPOSE" for p in ins.value]
    ensure(exposed == [dev["port"]], f"EXPOSE must be exactly {dev['port']}, got {exposed}")
    vols = [v for ins in stage if ins.cmd == "VOLUME" for v in ins.value]
    ensure(vols == [dev["data_dir"]], f"VOLUME must be the data dir {dev['data_dir']}, got {vols}")
    env: dict[str, str] = {}
    for ins in stage:
        if ins.cmd == "ENV":
            env.update(zip(ins.value[0::2], ins.value[1::2]))
    ensure(env.get("MEDLEDGER_DATA_DIR") == dev["data_dir"], "ENV MEDLEDGER_DATA_DIR differs from CMD --data-dir")
    ensure(env.get("MEDLEDGER_LISTEN") == dev["listen"], "ENV MEDLEDGER_LISTEN differs from CMD --listen")
    ensure(not any(ins.cmd == "HEALTHCHECK" for ins in stage), "no HEALTHCHECK in the image (the probes do it)")
    r.state["docker.dev"] = dev
    r.state["docker.cmd"] = cmd
    return f"{builder} -> {runtime}, USER {user}, EXPOSE {exposed[0]}, CMD {' '.join(cmd)}"


def dockerignore_matcher(text: str) -> Callable[[str], bool]:
    """Return `excluded(path)` following .dockerignore rules: patterns are
    filepath.Match globs relative to the context root (`*` and `?` stop at `/`,
    `**` spans directories), a pattern that matches a directory excludes what is
    below it, `!` re-includes, and the last matching line wins."""
    rules: list[tuple[bool, re.Pattern[str]]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pat = line[1:].strip() if negate else line
        pat = os.path.normpath(pat.strip("/")) if pat.strip("/") else "."
        rx = ""
        i = 0
        while i < len(pat):
            if pat.startswith("**/", i):
                rx += "(?:.*/)?"
                i += 3
            elif pat.startswith("**", i):
                rx += ".*"
                i += 2
            elif pat[i] == "*":
                rx += "[^/]*"
                i += 1
            elif pat[i] == "?":
                rx += "[^/]"
                i += 1
            else:
                rx += re.escape(pat[i])
                i += 1
        rules.append((negate, re.compile(rx + "(?:/.*)?")))

    def excluded(path: str) -> bool:
        result = False
        for negate, rx in rules:
            if rx.fullmatch(path):
                result = not negate
        return result

    return excluded


def check_dockerignore() -> str:
    excluded = dockerignore_matcher(DOCKERIGNORE.read_text(encoding="utf-8"))
    must_exclude = ["target/release/medledger", ".git/HEAD", "contracts/out/RecordLog.sol/RecordLog.json",
                    "contracts/cache/solidity-files-cache.json", "node_modules/x/package.json",
                    "load-tests/node_modules/x/package.json"]
    # Build inputs: the workspace, the committed contract artifacts that
    # crates/chain binds, the .proto files, and sqlx's offline query data.
    must_keep = ["Cargo.toml", "Cargo.lock", "bin/medledger/Cargo.toml", "bin/medledger/src/main.rs",
                 "crates/chain/src/lib.rs", "services/ingest/Cargo.toml", "load-tests/Cargo.toml",
                 "contracts/artifacts/RecordLog.json", "proto/medledger/v1/records.proto",
                 ".sqlx/query-0000.json", "crates/storage-sqlx/.sqlx/query-0000.json",
                 "crates/storage-sqlx/migrations/0001_init.sql"]
    leaked = [p for p in must_exclude if not excluded(p)]
    dropped = [p for p in must_keep if excluded(p)]
    ensure(not leaked, f".dockerignore lets these into the build context: {leaked}")
    ensure(not dropped, f".dockerignore drops build inputs: {dropped}")
    return f"{len(must_exclude)} paths excluded, {len(must_keep)} build inputs kept"


def check_consistency(r: Runner) -> str:
    chart = r.need("chart.dev")
    compose = r.need("compose.dev")
    docker = r.need("docker.dev")
    ensure(chart == compose == docker,
           f"chart {chart}, compose {compose} and Dockerfile CMD {docker} disagree")
    ensure(r.need("compose")["services"][DEV_SERVICE]["command"] == r.need("docker.cmd"),
           "compose command differs from the Dockerfile CMD")
    return f"all run `dev --data-dir {chart['data_dir']} --listen {chart['listen']}` (port {chart['port']})"


# ---------------------------------------------------------------------------


def main() -> int:
    started = time.monotonic()
    print(f"check-deploy: Helm SDK {helm_python.helm_sdk_version()} (helm-python-sdk {helm_python.__version__}), "
          f"kubernetes-validate {kubernetes_validate.__version__ if hasattr(kubernetes_validate, '__version__') else '?'}, "
          f"Kubernetes schemas {K8S_VERSION}")
    r = Runner()
    r.check("chart: Chart.yaml", check_chart_yaml)
    r.check("chart: helm lint (default values)", lambda: lint(None))
    r.check("chart: helm lint (ingress enabled)", lambda: lint(INGRESS_VALUES))
    r.check("chart: values.schema.json accepts valid values", check_schema_accepts_defaults)
    r.check("chart: values.schema.json rejects bad values", check_schema_rejects_bad_values)
    r.check("chart: render (default values)",
            check_render(r, "default", None, {"ServiceAccount", "Service", "StatefulSet"}))
    r.check("chart: render (ingress enabled)",
            check_render(r, "ingress", INGRESS_VALUES, {"ServiceAccount", "Service", "StatefulSet", "Ingress"}))
    r.check("chart: kubernetes-validate (default values)", check_kubernetes_schemas(r, "default"))
    r.check("chart: kubernetes-validate (ingress enabled)", check_kubernetes_schemas(r, "ingress"))
    r.check("chart: StatefulSet/Service contract", lambda: check_chart_contract(r))
    r.check("chart: Ingress contract", lambda: check_ingress_contract(r))
    r.check("compose: Compose Specification schema", lambda: check_compose_schema(r))
    r.check("compose: schema rejects broken variants", check_compose_schema_is_strict)
    r.check("compose: dev service contract", lambda: check_compose_contract(r))
    r.check("compose: distributed stack", lambda: check_compose_stack(r))
    r.check("compose: every service's environment loads", lambda: check_compose_env_loads(r))
    r.check("compose: healthcheck command against a stub server", lambda: check_compose_healthcheck_runs(r))
    r.check("Dockerfile: stages, user, entrypoint, cmd", lambda: check_dockerfile(r))
    r.check(".dockerignore", check_dockerignore)
    r.check("consistency: chart = compose = Dockerfile", lambda: check_consistency(r))
    print(f"check-deploy: took {time.monotonic() - started:.1f}s")
    summary = f"check-deploy: {r.passed} passed, {r.failed} failed"
    if r.skipped:
        summary += f", {r.skipped} skipped"
    print(summary)
    return 1 if r.failed or r.skipped else 0


if __name__ == "__main__":
    sys.exit(main())
