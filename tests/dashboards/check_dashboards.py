#!/usr/bin/env python3
"""Check the Grafana dashboard and the alert rules in dashboards/ against a
real Prometheus that scrapes a real gateway.

The test starts the gateway with stub backends, and Prometheus with
dashboards/prometheus.yml and dashboards/alerts.yml (its target and
intervals changed), both on loopback ports. It sends traffic that includes
a cold start, a failed start, an unknown model, a streamed response, a
client that leaves while held and an idle stop. Then:

- every expression of every dashboard panel, with the dashboard's variables
  substituted, must evaluate without error and return at least one series;
- every alert rule that Prometheus loaded must evaluate without error, must
  return a series once its threshold comparison is removed, and the rules
  whose condition the traffic provokes must return a series as they are;
- plot_metrics.py must draw its PNG from the same Prometheus.

So a renamed metric or label cannot silently break a panel or an alert.
Every wait polls with a deadline. Python's standard library only.
"""

import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

# Grafana's variables as the test sets them.
VARIABLES = {"deployment": ".*", "__rate_interval": "1m", "__interval": "15s", "__range": "1h"}

# Alerts whose condition the traffic below provokes, with the deployment
# that provokes it.
PROVOKED_ALERTS = {
    "ModelgateBackendFailingToStart": "broken",
    "ModelgateHighErrorRate": "broken",
    "ModelgateInstanceError": "broken",
}

# A trailing threshold comparison such as "> 0.05" or "== 0".
THRESHOLD = re.compile(r"\s*(?:>=|<=|==|!=|>|<)\s*(?:bool\s+)?[-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?\s*$")

GATEWAY_CONFIG = """\
gateway:
  listen: 127.0.0.1:@GATEWAY_PORT@
  log_dir: @DIR@/logs
  hold_timeout: 30s
workers:
  - name: local
    runtime: process
    ports: @PORTS@
backends:
  - backend_name: stub
    default_run_command: '@STUB@ --port {{port}} --model {{model_name}}'
deployments:
  - name: demo
    backend: stub
    backend_parameters: ["--startup-delay", "300", "--token-interval", "5"]
  - name: broken
    backend: stub
    backend_parameters: ["--exit-on-start", "3"]
  - name: slow
    backend: stub
    backend_parameters: ["--startup-delay", "1500"]
    idle_timeout: 2s
"""


class CheckFailed(Exception):
    pass


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port():
    """Return a loopback port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition, timeout, what, interval=0.25):
    """Poll `condition` until it returns a true value or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise CheckFailed(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def http(method, url, body=None, timeout=30):
    """Send one request; return (status, body text). Raises OSError when
    the connection fails."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


class Process:
    """A child process with its output in a file, stopped by its pid."""

    def __init__(self, argv, output_path):
        self.argv = argv
        self.output_path = output_path
        self.output = open(output_path, "wb")
        self.process = subprocess.Popen(argv, stdout=self.output, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)

    def running(self):
        return self.process.poll() is None

    def text(self):
        with open(self.output_path, errors="replace") as source:
            return source.read()

    def stop(self, timeout):
        """SIGTERM, then SIGKILL if it is still running after `timeout`."""
        if self.running():
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"{self.argv[0]} (pid {self.process.pid}) ignored SIGTERM; sending SIGKILL")
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.output.close()


class Prometheus:
    def __init__(self, url):
        self.url = url

    def query(self, expression):
        """Return (error or None, result list) of an instant query."""
        parameters = urllib.parse.urlencode({"query": expression})
        status, text = http("GET", f"{self.url}/api/v1/query?{parameters}")
        body = json.loads(text)
        if status != 200 or body.get("status") != "success":
            return body.get("error", f"HTTP {status}"), []
        return None, body["data"]["result"]

    def get(self, path):
        status, text = http("GET", f"{self.url}{path}")
        if status != 200:
            raise CheckFailed(f"GET {path} returned HTTP {status}: {text[:500]}")
        return json.loads(text)["data"]


def substitute(expression):
    """Replace $name and ${name} of Grafana's variables; fail on others."""
    def value(match):
        name = match.group(1) or match.group(2)
        if name not in VARIABLES:
            raise CheckFailed(f"unknown variable ${name} in {expression!r}")
        return VARIABLES[name]
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, expression)


def dashboard_panels(dashboard):
    """Yield every panel, including those inside collapsed rows."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def check_dashboard_structure(dashboard):
    """Check the variables and data sources that Grafana needs for an import."""
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    if variables.get("datasource", {}).get("type") != "datasource" or \
            variables["datasource"].get("query") != "prometheus":
        raise CheckFailed("the dashboard has no Prometheus data source variable 'datasource'")
    if variables.get("deployment", {}).get("type") != "query":
        raise CheckFailed("the dashboard has no query variable 'deployment'")

    for panel in dashboard_panels(dashboard):
        if panel["type"] == "row":
            continue
        sources = [panel.get("datasource")] + [target.get("datasource") for target in panel["targets"]]
        for source in sources:
            if source != {"type": "prometheus", "uid": "${datasource}"}:
                raise CheckFailed(f"panel {panel['title']!r} uses data source {source}, "
                                  "not the ${datasource} variable")


def panel_queries(dashboard):
    """Return (panel title, legend, expression) for every panel target."""
    queries = []
    for panel in dashboard_panels(dashboard):
        for target in panel.get("targets", []):
            queries.append((panel["title"], target.get("legendFormat", ""), target["expr"]))
    if not queries:
        raise CheckFailed("the dashboard has no panel queries")
    return queries


def failing_panels(prometheus, queries):
    """Return a description of each query that fails or returns no series."""
    failures = []
    for title, legend, expression in queries:
        error, result = prometheus.query(substitute(expression))
        if error:
            failures.append(f"panel {title!r} ({legend}): {error}: {expression}")
        elif not result:
            failures.append(f"panel {title!r} ({legend}): no series: {expression}")
    return failures


def start_gateway(args, directory):
    port = free_port()
    base = random.randint(21000, 29999 - 40)
    config = (GATEWAY_CONFIG.replace("@GATEWAY_PORT@", str(port))
              .replace("@DIR@", directory)
              .replace("@PORTS@", f"{base}-{base + 39}")
              .replace("@STUB@", args.stub))
    config_path = os.path.join(directory, "gateway.yaml")
    with open(config_path, "w") as out:
        out.write(config)
    gateway = Process([args.gateway, "--config", config_path], os.path.join(directory, "gateway.log"))

    def ready():
        if not gateway.running():
            raise CheckFailed(f"the gateway exited:\n{gateway.text()}")
        try:
            return http("GET", f"http://127.0.0.1:{port}/health", timeout=2)[0] == 200
        except OSError:
            return False
    wait_until(ready, 20, "the gateway's /health")
    return gateway, f"http://127.0.0.1:{port}", port


def start_prometheus(args, directory, gateway_port):
    """Start Prometheus on dashboards/prometheus.yml with the gateway as its
    target and 1 s intervals; alerts.yml is copied next to it."""
    with open(os.path.join(args.dashboards, "prometheus.yml")) as source:
        config = source.read()
    replaced = config.replace('"127.0.0.1:8080"', f'"127.0.0.1:{gateway_port}"')
    replaced = re.sub(r"(scrape_interval|evaluation_interval): 15s", r"\1: 1s", replaced)
    if replaced.count(str(gateway_port)) != 1 or replaced.count(": 1s") != 2:
        raise CheckFailed("dashboards/prometheus.yml no longer has the target 127.0.0.1:8080 "
                          "and 15s intervals that this test replaces")
    config_path = os.path.join(directory, "prometheus.yml")
    with open(config_path, "w") as out:
        out.write(replaced)
    shutil.copy(os.path.join(args.dashboards, "alerts.yml"), directory)

    port = free_port()
    prometheus = Process([args.prometheus, f"--config.file={config_path}",
                          f"--storage.tsdb.path={os.path.join(directory, 'tsdb')}",
                          f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                         os.path.join(directory, "prometheus.log"))
    url = f"http://127.0.0.1:{port}"

    def ready():
        if not prometheus.running():
            raise CheckFailed(f"Prometheus exited:\n{prometheus.text()}")
        try:
            return http("GET", f"{url}/-/ready", timeout=2)[0] == 200
        except OSError:
            return False
    wait_until(ready, 60, "Prometheus's /-/ready")
    return prometheus, Prometheus(url)


def chat(gateway_url, model, **fields):
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    body.update(fields)
    return http("POST", f"{gateway_url}/v1/chat/completions", body)[0]


def expect_status(what, status, expected):
    if status != expected:
        raise CheckFailed(f"{what} returned HTTP {status}, expected {expected}")


def leave_while_held(gateway_port, model):
    """Send a chat request and close the connection while it is held."""
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]})
    request = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}")
    with socket.create_connection(("127.0.0.1", gateway_port), timeout=10) as sock:
        sock.sendall(request.encode())
        time.sleep(0.3)


def send_first_traffic(gateway_url, gateway_port):
    """Traffic that reaches every series the dashboard and the alerts use."""
    expect_status("a cold-start chat request to demo", chat(gateway_url, "demo"), 200)
    expect_status("a streamed chat request to demo", chat(gateway_url, "demo", stream=True), 200)
    status, _ = http("POST", f"{gateway_url}/v1/embeddings", {"model": "demo", "input": "hi"})
    expect_status("an embeddings request to demo", status, 200)
    expect_status("a request for an unknown model", chat(gateway_url, "no-such-model"), 404)
    expect_status("a request to broken, whose backend exits", chat(gateway_url, "broken"), 502)
    expect_status("a second request to broken", chat(gateway_url, "broken"), 502)
    leave_while_held(gateway_port, "slow")
    expect_status("a cold-start chat request to slow", chat(gateway_url, "slow"), 200)


def send_steady_traffic(gateway_url, rounds=1):
    for _ in range(rounds):
        chat(gateway_url, "demo")
        chat(gateway_url, "demo", stream=True)


def send_concurrently(gateway_url, model, count):
    """Send `count` chat requests to `model` at once, as held requests."""
    threads = [threading.Thread(target=chat, args=(gateway_url, model)) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def send_varied_traffic(gateway_url, seconds):
    """Traffic for a plot: a varying load on demo, a burst of requests held
    by a cold start of slow every 30 s, and a failed start now and then."""
    until = time.monotonic() + seconds
    next_burst = time.monotonic() + 10
    while time.monotonic() < until:
        send_steady_traffic(gateway_url, rounds=random.randint(1, 8))
        if random.random() < 0.005:
            chat(gateway_url, "broken")
        if time.monotonic() >= next_burst:
            send_concurrently(gateway_url, "slow", random.randint(3, 12))
            next_burst = time.monotonic() + 30
        time.sleep(random.uniform(0.05, 0.5))


def check_panels(prometheus, dashboard, gateway_url, timeout):
    """Poll until every panel query returns a series, with light traffic
    so that rates have samples."""
    queries = panel_queries(dashboard)
    failures = []

    def all_pass():
        nonlocal failures
        send_steady_traffic(gateway_url)
        failures = failing_panels(prometheus, queries)
        return not failures
    try:
        wait_until(all_pass, timeout, "every dashboard panel to return series", interval=1)
    except CheckFailed as error:
        raise CheckFailed(f"{error}:\n  " + "\n  ".join(failures)) from None
    log(f"all {len(queries)} panel queries returned series")


def loaded_alert_rules(prometheus):
    rules = []
    for group in prometheus.get("/api/v1/rules")["groups"]:
        rules += [rule for rule in group["rules"] if rule["type"] == "alerting"]
    return rules


def check_alerts(prometheus, args, timeout):
    with open(os.path.join(args.dashboards, "alerts.yml")) as source:
        expected = len(re.findall(r"^\s*- alert:", source.read(), re.MULTILINE))
    rules = wait_until(lambda: loaded_alert_rules(prometheus), 30, "Prometheus to load alerts.yml")
    if len(rules) != expected:
        raise CheckFailed(f"Prometheus loaded {len(rules)} alert rules, alerts.yml has {expected}")

    # Every rule has been evaluated once without an error.
    def evaluated():
        current = loaded_alert_rules(prometheus)
        broken = [f"{rule['name']}: {rule.get('lastError')}" for rule in current
                  if rule.get("health") == "err"]
        if broken:
            raise CheckFailed("alert rules failed to evaluate:\n  " + "\n  ".join(broken))
        return all(rule.get("health") == "ok" for rule in current)
    wait_until(evaluated, timeout, "every alert rule to be evaluated")

    failures = []
    for rule in rules:
        name, expression = rule["name"], rule["query"]
        error, _ = prometheus.query(expression)
        if error:
            failures.append(f"{name}: {error}: {expression}")
            continue

        without_threshold = THRESHOLD.sub("", expression)
        if without_threshold == expression:
            failures.append(f"{name}: no threshold comparison at the end of: {expression}")
            continue
        error, result = prometheus.query(without_threshold)
        if error or not result:
            failures.append(f"{name}: {error or 'no series'} without its threshold: "
                            f"{without_threshold}")

        if name in PROVOKED_ALERTS:
            deployment = PROVOKED_ALERTS[name]
            _, result = prometheus.query(expression)
            if not any(series["metric"].get("deployment") == deployment for series in result):
                failures.append(f"{name}: no series for deployment {deployment!r}, whose "
                                f"traffic provokes it: {expression}")
    missing = set(PROVOKED_ALERTS) - {rule["name"] for rule in rules}
    failures += [f"{name}: not in alerts.yml" for name in sorted(missing)]
    if failures:
        raise CheckFailed("alert rules failed:\n  " + "\n  ".join(failures))
    log(f"all {len(rules)} alert rules evaluate, and the provoked ones fire")


def check_deployment_variable(prometheus, dashboard):
    """The deployment variable's label_values() query lists the config's
    deployments."""
    variable = next(v for v in dashboard["templating"]["list"] if v["name"] == "deployment")
    match = re.fullmatch(r"label_values\((\w+),\s*deployment\)", variable["definition"])
    if not match:
        raise CheckFailed(f"unexpected deployment variable query {variable['definition']!r}")
    parameters = urllib.parse.urlencode({"match[]": match.group(1)})
    values = set(prometheus.get(f"/api/v1/label/deployment/values?{parameters}"))
    if not {"demo", "broken", "slow"} <= values:
        raise CheckFailed(f"{variable['definition']} returns {sorted(values)}, "
                          "not every configured deployment")


def run(args, directory):
    with open(os.path.join(args.dashboards, "modelgate.json")) as source:
        dashboard = json.load(source)
    check_dashboard_structure(dashboard)

    gateway, gateway_url, gateway_port = start_gateway(args, directory)
    prometheus_process = None
    try:
        prometheus_process, prometheus = start_prometheus(args, directory, gateway_port)
        started = time.time()
        wait_until(lambda: prometheus.query('up{job="modelgate"} == 1')[1], 60,
                   "Prometheus to scrape the gateway")

        send_first_traffic(gateway_url, gateway_port)
        wait_until(lambda: prometheus.query('modelgate_idle_stops_total{deployment="slow"} > 0')[1],
                   60, "the idle stop of slow in Prometheus")
        check_panels(prometheus, dashboard, gateway_url, timeout=90)
        check_deployment_variable(prometheus, dashboard)
        check_alerts(prometheus, args, timeout=60)

        send_varied_traffic(gateway_url, args.traffic_seconds)

        plot_path = args.plot_out or os.path.join(directory, "modelgate.png")
        plotted = subprocess.run([sys.executable, os.path.join(args.dashboards, "plot_metrics.py"),
                                  "--prometheus", prometheus.url, "--out", plot_path,
                                  "--start", str(started), "--step", "1"])
        if plotted.returncode != 0:
            raise CheckFailed(f"plot_metrics.py failed with exit code {plotted.returncode}")
        with open(plot_path, "rb") as image:
            if image.read(8) != b"\x89PNG\r\n\x1a\n":
                raise CheckFailed(f"plot_metrics.py wrote no PNG to {plot_path}")
        log(f"plot_metrics.py drew {plot_path}")
    except CheckFailed:
        log(f"gateway log (last 4000 characters):\n{gateway.text()[-4000:]}")
        if prometheus_process is not None:
            log(f"Prometheus log:\n{prometheus_process.text()[-4000:]}")
        raise
    finally:
        if prometheus_process is not None:
            prometheus_process.stop(timeout=15)
        gateway.stop(timeout=30)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateway", required=True, help="the modelgate binary")
    parser.add_argument("--stub", required=True, help="the modelgate-stub binary")
    parser.add_argument("--dashboards", required=True, help="the dashboards/ directory")
    parser.add_argument("--prometheus", default="prometheus", help="the prometheus binary")
    parser.add_argument("--plot-out", help="where to write the PNG (default: a temporary file)")
    parser.add_argument("--traffic-seconds", type=float, default=0,
                        help="extra seconds of varied traffic before plotting")
    args = parser.parse_args()

    found = shutil.which(args.prometheus)
    if found is None:
        print(f"check_dashboards.py: {args.prometheus} not found; install the Debian package "
              "prometheus (bash .ci/run does)", file=sys.stderr)
        return 1
    args.prometheus = found

    with tempfile.TemporaryDirectory(prefix="modelgate-dashboards-") as directory:
        try:
            run(args, directory)
        except CheckFailed as error:
            print(f"FAILED: {error}", file=sys.stderr)
            return 1
    log("dashboards and alert rules pass")
    return 0


if __name__ == "__main__":
    sys.exit(main())
