"""Checks of deploy/ that no schema expresses; run by deploy/check with the
venv's python (PyYAML comes with kubernetes-validate).

  validate.py split RENDERED OUT_DIR     rendered YAML -> builtin.yaml + crd.yaml
  validate.py manifests OVERLAY RENDERED our rules for one rendered overlay
  validate.py containerfile FILE         the image's rules
  validate.py routes CONFIG_RS VS_YAML   the Istio routes cover the gateway's table
  validate.py metrics CRATES DASHBOARD ALERTS [RULES_OUT]
                                         the dashboard is a valid Grafana dashboard;
                                         every expression in it and in the alerts
                                         names only metrics the code exports
                                         (RULES_OUT: the dashboard's expressions as
                                         recording rules, for promtool to parse)
"""

import glob
import json
import re
import sys

import yaml

# Kinds kubernetes-validate has no schema for: checked here by shape only.
CRD_GROUPS = ("networking.istio.io/", "security.istio.io/", "monitoring.coreos.com/")
CRD_SPEC_KEYS = {
    "Gateway": {"selector", "servers"},
    "VirtualService": {"hosts", "http"},
    "DestinationRule": {"host", "trafficPolicy"},
    "ServiceMonitor": {"selector", "endpoints"},
    "PrometheusRule": {"groups"},
}
SECRETISH = re.compile(r"(SECRET|PASSWORD|PASSWD|TOKEN|API_?KEY|PRIVATE|CREDENTIAL)", re.I)

errors = []


def fail(message):
    errors.append(message)


def docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def is_crd(doc):
    return doc.get("apiVersion", "").startswith(CRD_GROUPS)


def split(rendered, out_dir):
    all_docs = docs(rendered)
    builtin = [d for d in all_docs if not is_crd(d)]
    crd = [d for d in all_docs if is_crd(d)]
    with open(f"{out_dir}/builtin.yaml", "w") as f:
        yaml.safe_dump_all(builtin, f)
    for d in crd:
        name = f"{d.get('kind')}/{d.get('metadata', {}).get('name')}"
        for key in ("apiVersion", "kind", "metadata", "spec"):
            if key not in d:
                fail(f"{name}: no {key}")
        if not d.get("metadata", {}).get("name"):
            fail(f"{name}: no metadata.name")
        missing = CRD_SPEC_KEYS.get(d.get("kind"), set()) - set(d.get("spec") or {})
        if d.get("kind") not in CRD_SPEC_KEYS:
            fail(f"{name}: a custom kind this check does not know")
        elif missing:
            fail(f"{name}: spec lacks {sorted(missing)}")
    print(f"    {len(builtin)} built-in objects, {len(crd)} custom ({', '.join(sorted({d['kind'] for d in crd})) or 'none'})")


def manifests(overlay, rendered):
    all_docs = docs(rendered)
    by_kind = {}
    for d in all_docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    deployments = by_kind.get("Deployment", {})
    if not deployments:
        fail(f"{overlay}: no Deployment")
    for name, d in deployments.items():
        where = f"{overlay}: Deployment {name}"
        pod = d["spec"]["template"]["spec"]
        psc = pod.get("securityContext", {})
        if not psc.get("runAsNonRoot"):
            fail(f"{where}: runAsNonRoot is not set")
        if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            fail(f"{where}: seccomp profile is not RuntimeDefault")
        if pod.get("terminationGracePeriodSeconds") != 30:
            fail(f"{where}: terminationGracePeriodSeconds is not 30")
        annotations = d["spec"]["template"]["metadata"].get("annotations", {})
        if annotations.get("prometheus.io/scrape") != "true":
            fail(f"{where}: no Prometheus scrape annotation")
        for c in pod["containers"]:
            image = c.get("image", "")
            if ":" not in image or image.endswith(":latest"):
                fail(f"{where}: image {image!r} is not pinned to a tag")
            if "resources" not in c or not {"requests", "limits"} <= set(c["resources"]):
                fail(f"{where}: resources need requests and limits")
            for probe, path in (("startupProbe", "/health/ready"), ("livenessProbe", "/health/live")):
                got = c.get(probe, {}).get("httpGet", {}).get("path")
                if got != path:
                    fail(f"{where}: {probe} is on {got}, not {path}")
            if "readinessProbe" not in c:
                fail(f"{where}: no readinessProbe")
            csc = c.get("securityContext", {})
            if csc.get("capabilities", {}).get("drop") != ["ALL"]:
                fail(f"{where}: capabilities are not all dropped")
            if csc.get("allowPrivilegeEscalation") is not False:
                fail(f"{where}: privilege escalation is allowed")
            if not csc.get("readOnlyRootFilesystem"):
                fail(f"{where}: the root filesystem is writable")
            args = c.get("args", [])
            if args[:1] == ["serve"]:
                service = args[1]
                # Each served service: its Service, autoscaler, budget and policy.
                for kind in ("Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy"):
                    if service not in by_kind.get(kind, {}):
                        fail(f"{where}: no {kind} {service}")
            for e in c.get("env", []):
                if e["name"] == "BOXOFFICE_RESERVATION__GRPC_PORT":
                    grpc_port(f"{where}", c, int(e["value"]), args[1] if args[:1] == ["serve"] else name, by_kind)
                if SECRETISH.search(e["name"]) and "value" in e:
                    fail(f"{where}: {e['name']} has a literal value; use a Secret")
    for name, s in by_kind.get("Secret", {}).items():
        for key, value in (s.get("stringData") or {}).items():
            if "change-me" not in value:
                fail(f"{overlay}: Secret {name} holds a value for {key} that is not a change-me example")
    for name, c in by_kind.get("ConfigMap", {}).items():
        for key in c.get("data", {}):
            if SECRETISH.search(key):
                fail(f"{overlay}: ConfigMap {name} holds {key}; secrets belong in a Secret")
    monitors = by_kind.get("ServiceMonitor", {})
    for name, m in monitors.items():
        service_monitor(f"{overlay}: ServiceMonitor {name}", m, by_kind.get("Service", {}))
    print(f"    rules: {len(deployments)} Deployments (non-root, seccomp, caps, read-only root, probes, resources, pinned image)"
          + (f", {len(monitors)} ServiceMonitor(s) scraping every Service" if monitors else ""))


def grpc_port(where, container, port, service, by_kind):
    """A gRPC port that is served is also declared: the container's port
    (named), the Service's, and a NetworkPolicy rule that lets callers in."""
    named = [p["name"] for p in container.get("ports", []) if p.get("containerPort") == port and p.get("name")]
    if not named:
        fail(f"{where}: serves gRPC on {port} without a named containerPort for it")
        return
    svc = by_kind.get("Service", {}).get(service)
    if not svc or not any(p.get("targetPort") in (named[0], port) for p in svc["spec"]["ports"]):
        fail(f"{where}: the Service {service} has no port to gRPC's {named[0]}")
    policy = by_kind.get("NetworkPolicy", {}).get(service)
    if policy and not any(p.get("port") in (named[0], port)
                          for rule in policy["spec"].get("ingress", []) for p in rule.get("ports", [])):
        fail(f"{where}: the NetworkPolicy {service} lets nobody reach gRPC's {named[0]}")


DURATION = re.compile(r"^[0-9]+(ms|s|m|h)$")


def seconds(duration):
    value, unit = re.match(r"^([0-9]+)(ms|s|m|h)$", duration).groups()
    return int(value) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


def service_monitor(where, monitor, services):
    """The fields of a ServiceMonitor (monitoring.coreos.com/v1) that a
    schema would check, and what it must reach: every boxoffice Service,
    on a port each of them has, at /metrics."""
    spec = monitor.get("spec", {})
    labels = spec.get("selector", {}).get("matchLabels") or {}
    if not labels:
        fail(f"{where}: spec.selector.matchLabels is empty (it would select nothing, or everything)")
    if spec.get("selector", {}).get("matchExpressions"):
        fail(f"{where}: matchExpressions are not checked here; select by matchLabels")
    ns = spec.get("namespaceSelector")
    if ns is not None and not (set(ns) <= {"any", "matchNames"}):
        fail(f"{where}: namespaceSelector has unknown fields {sorted(set(ns) - {'any', 'matchNames'})}")
    selected = {
        name: s for name, s in services.items()
        if all(s["metadata"].get("labels", {}).get(k) == v for k, v in labels.items())
    }
    missing = sorted(set(services) - set(selected))
    if missing:
        fail(f"{where}: does not select the Services {missing}")
    endpoints = spec.get("endpoints") or []
    if not endpoints:
        fail(f"{where}: no endpoints")
    known = {"port", "targetPort", "path", "scheme", "interval", "scrapeTimeout", "honorLabels",
             "honorTimestamps", "relabelings", "metricRelabelings", "params", "tlsConfig",
             "bearerTokenSecret", "authorization", "basicAuth", "followRedirects", "enableHttp2",
             "proxyUrl", "oauth2", "filterRunning", "trackTimestampsStaleness"}
    for n, e in enumerate(endpoints):
        at = f"{where}: endpoints[{n}]"
        unknown = set(e) - known
        if unknown:
            fail(f"{at}: unknown fields {sorted(unknown)}")
        port = e.get("port")
        if not isinstance(port, str) or not port:
            fail(f"{at}: needs a named port (port: http)")
        for name, s in selected.items():
            if port not in [p.get("name") for p in s["spec"].get("ports", [])]:
                fail(f"{at}: Service {name} has no port named {port!r}")
        if e.get("path") != "/metrics":
            fail(f"{at}: path is {e.get('path')!r}, not /metrics")
        if e.get("scheme", "http") not in ("http", "https"):
            fail(f"{at}: scheme {e.get('scheme')!r}")
        for key in ("interval", "scrapeTimeout"):
            if key in e and not DURATION.match(str(e[key])):
                fail(f"{at}: {key} {e[key]!r} is not a duration like 15s")
        if "interval" in e and "scrapeTimeout" in e and DURATION.match(str(e["interval"])) \
                and DURATION.match(str(e["scrapeTimeout"])) and seconds(e["scrapeTimeout"]) > seconds(e["interval"]):
            fail(f"{at}: scrapeTimeout is longer than interval")


def containerfile(path):
    lines = []
    with open(path) as f:
        # Join continuation lines, drop comments.
        current = ""
        for raw in f:
            line = raw.rstrip("\n")
            if line.lstrip().startswith("#"):
                continue
            if line.endswith("\\"):
                current += line[:-1] + " "
                continue
            current += line
            if current.strip():
                lines.append(current.strip())
            current = ""
    instructions = [(l.split(None, 1)[0].upper(), l.split(None, 1)[1] if " " in l else "") for l in lines]
    froms = [arg.split()[0] for op, arg in instructions if op == "FROM"]
    if len(froms) < 2:
        fail(f"{path}: not multi-stage ({len(froms)} FROM)")
    for image in froms:
        tag = image.split("@")[0].rsplit("/", 1)[-1]
        if ":" not in tag or tag.endswith(":latest"):
            fail(f"{path}: FROM {image} is not pinned to a tag")
    users = [arg.strip() for op, arg in instructions if op == "USER"]
    if not users:
        fail(f"{path}: no USER: the image would run as root")
    else:
        user = users[-1].split(":")[0]
        if not user.isdigit() or user == "0":
            fail(f"{path}: the last USER ({users[-1]}) is not a numeric non-root id")
    for op, arg in instructions:
        if op in ("ENV", "ARG"):
            for m in re.finditer(r"([A-Za-z_][A-Za-z0-9_]*)(=|\s+)(\S+)?", arg):
                if SECRETISH.search(m.group(1)) and m.group(3):
                    fail(f"{path}: {op} {m.group(1)} bakes a secret-looking value into the image")
    for op, want in (("ENTRYPOINT", '["boxoffice"]'), ("CMD", '["up"]'), ("EXPOSE", "8088")):
        got = [arg.strip() for o, arg in instructions if o == op]
        if got[-1:] != [want]:
            fail(f"{path}: {op} is {got[-1:] or 'missing'}, not {want}")
    print(f"    {path}: {len(froms)} stages ({', '.join(froms)}), USER {users[-1] if users else '-'}, no secrets in ENV/ARG")


def routes(config_rs, vs_yaml):
    with open(config_rs) as f:
        source = f.read()
    # The built-in table only (the tests build other tables).
    body = source[source.find("pub fn defaults()"):]
    body = body[: body.find("\n    }\n")]
    table = re.findall(r'RouteConfig::new\("([^"]+)"', body)
    if not table:
        fail(f"{config_rs}: no built-in routes found")
    vs = [d for d in docs(vs_yaml) if d["kind"] == "VirtualService"][0]
    prefixes = [m["uri"]["prefix"] for r in vs["spec"]["http"] for m in r["match"] if "prefix" in m["uri"]]
    for prefix in table:
        if not any(prefix.startswith(p) for p in prefixes):
            fail(f"{vs_yaml}: the gateway route {prefix} is not routed by the VirtualService")
    for r in vs["spec"]["http"]:
        for d in r["route"]:
            if d["destination"]["host"] != "gateway":
                fail(f"{vs_yaml}: a route bypasses the gateway (to {d['destination']['host']})")
    print(f"    the VirtualService routes all {len(table)} prefixes of the gateway's built-in table, all to the gateway")


def exported_metrics(crates):
    """The metric names the services export, from their source: every
    `metrics::counter!/gauge!/histogram!` call, whose name is a literal or
    a constant holding one. A histogram is exported as its _bucket, _sum
    and _count series."""
    sources = {}
    for path in glob.glob(f"{crates}/*/src/**/*.rs", recursive=True):
        with open(path) as f:
            sources[path] = f.read()
    constants = {}
    for text in sources.values():
        for name, value in re.findall(r'const\s+([A-Z_][A-Z0-9_]*)\s*:\s*&str\s*=\s*"(boxoffice_[a-z0-9_]+)"', text):
            constants[name] = value
    exported = {}
    for text in sources.values():
        for kind, arg in re.findall(r'metrics::(counter|gauge|histogram)!\(\s*([^,)\s]+)', text):
            literal = re.fullmatch(r'"(boxoffice_[a-z0-9_]+)"', arg)
            name = literal.group(1) if literal else constants.get(arg.split("::")[-1])
            if name is None:
                fail(f"a {kind} whose name {arg} cannot be resolved to a boxoffice_ literal")
                continue
            exported[name] = kind
    series = set()
    for name, kind in exported.items():
        if kind == "histogram":
            series |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        else:
            series.add(name)
    return series


def check_exprs(where, exprs, series):
    for label, expr in exprs:
        names = set(re.findall(r"\b(boxoffice_[a-z0-9_]+)\b", expr))
        if not names:
            fail(f"{where}: {label}: refers to no boxoffice metric: {expr}")
        for name in sorted(names - series):
            fail(f"{where}: {label}: {name} is not a metric the services export")


def dashboard_panels(dashboard):
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def metrics(crates, dashboard_json, alerts_yaml, rules_out=None):
    series = exported_metrics(crates)
    if not series:
        fail(f"{crates}: no exported metric found")
    with open(dashboard_json) as f:
        dashboard = json.load(f)
    for key in ("uid", "title", "schemaVersion", "panels"):
        if not dashboard.get(key):
            fail(f"{dashboard_json}: no {key}")
    variables = {v.get("name"): v for v in dashboard.get("templating", {}).get("list", [])}
    source = variables.get("datasource", {})
    if source.get("type") != "datasource" or source.get("query") != "prometheus":
        fail(f"{dashboard_json}: needs a Prometheus datasource variable named datasource")
    exprs, ids = [], set()
    for panel in dashboard_panels(dashboard):
        title = panel.get("title") or f"panel {panel.get('id')}"
        if panel.get("id") in ids or not isinstance(panel.get("id"), int):
            fail(f"{dashboard_json}: {title}: panel ids must be distinct integers")
        ids.add(panel.get("id"))
        grid = panel.get("gridPos", {})
        if not all(isinstance(grid.get(k), int) for k in ("h", "w", "x", "y")) or grid.get("x", 0) + grid.get("w", 0) > 24:
            fail(f"{dashboard_json}: {title}: gridPos needs h, w, x, y within 24 columns")
        if panel.get("type") == "row":
            continue
        if not panel.get("type") or not panel.get("title"):
            fail(f"{dashboard_json}: panel {panel.get('id')}: needs a type and a title")
        if panel.get("datasource", {}).get("uid") != "${datasource}":
            fail(f"{dashboard_json}: {title}: datasource is not the ${{datasource}} variable")
        targets = panel.get("targets") or []
        if not targets:
            fail(f"{dashboard_json}: {title}: no targets")
        refs = [t.get("refId") for t in targets]
        if len(set(refs)) != len(refs) or not all(refs):
            fail(f"{dashboard_json}: {title}: targets need distinct refIds")
        for t in targets:
            if not t.get("expr"):
                fail(f"{dashboard_json}: {title}: target {t.get('refId')} has no expr")
            else:
                exprs.append((f"{title} [{t.get('refId')}]", t["expr"]))
    check_exprs(dashboard_json, exprs, series)
    with open(alerts_yaml) as f:
        alerts = yaml.safe_load(f)
    alert_exprs = [(r["alert"], r["expr"]) for g in alerts["groups"] for r in g["rules"]]
    check_exprs(alerts_yaml, alert_exprs, series)
    if rules_out:
        # The expressions as recording rules: promtool parses them.
        rules = [{"record": f"dashboard:panel:{n}", "expr": e} for n, (_, e) in enumerate(exprs)]
        with open(rules_out, "w") as f:
            yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)
    print(f"    {len(exprs)} dashboard and {len(alert_exprs)} alert expressions checked against the {len(series)} series the code exports")


PROMETHEUS_RULE = "deploy/k8s/components/prometheus-operator/prometheus-rule.yaml"
PROMETHEUS_RULE_HEAD = """\
# Generated from deploy/monitoring/alerts.yaml by
# `deploy/validate.py prometheus-rule --write`; deploy/check fails when the
# two differ. Edit alerts.yaml, then generate this again.
"""


class BlockDumper(yaml.SafeDumper):
    """Multi-line strings (PromQL) as literal blocks, as a person writes them."""


BlockDumper.add_representer(str, lambda dumper, s: dumper.represent_scalar(
    "tag:yaml.org,2002:str", s, style="|" if "\n" in s else None))


def prometheus_rule_doc(alerts_yaml):
    with open(alerts_yaml) as f:
        alerts = yaml.safe_load(f)
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "boxoffice",
            # What kube-prometheus-stack's Prometheus selects rules by, as
            # for the ServiceMonitor.
            "labels": {"release": "kube-prometheus-stack", "app.kubernetes.io/part-of": "boxoffice"},
        },
        "spec": {"groups": alerts["groups"]},
    }


def prometheus_rule(alerts_yaml, *args):
    """Writes (--write) or checks the PrometheusRule made of the alert rules;
    with a rendered overlay, also that the rule it deploys is that one."""
    wanted = prometheus_rule_doc(alerts_yaml)
    if args[:1] == ("--write",):
        with open(PROMETHEUS_RULE, "w") as f:
            f.write(PROMETHEUS_RULE_HEAD)
            yaml.dump(wanted, f, Dumper=BlockDumper, sort_keys=False, width=100)
        print(f"    wrote {PROMETHEUS_RULE}")
        return
    [committed] = docs(PROMETHEUS_RULE)
    if committed != wanted:
        fail(f"{PROMETHEUS_RULE} differs from {alerts_yaml}: run deploy/validate.py prometheus-rule {alerts_yaml} --write")
    for rendered in args:
        deployed = [d for d in docs(rendered) if d.get("kind") == "PrometheusRule"]
        if len(deployed) != 1 or deployed[0]["spec"] != wanted["spec"]:
            fail(f"{rendered}: does not deploy exactly the PrometheusRule of {alerts_yaml}")
    alerts = sum(len(g["rules"]) for g in wanted["spec"]["groups"])
    if not errors:
            print(f"    the PrometheusRule holds the {alerts} rules of {alerts_yaml}, unchanged")


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    {"split": split, "manifests": manifests, "containerfile": containerfile, "routes": routes,
     "metrics": metrics, "prometheus-rule": prometheus_rule}[command](*args)
    for e in errors:
        print(f"    FAIL {e}", file=sys.stderr)
    sys.exit(1 if errors else 0)
