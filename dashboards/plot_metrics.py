#!/usr/bin/env python3
"""Plot series of modelgate's Grafana dashboard from Prometheus into a PNG.

Grafana is not packaged for Debian, so this draws six panels of
modelgate.json with gnuplot instead: requests per second, request duration
and time to first byte (95th percentile), held requests, instances by state,
and cold starts by result. It runs each panel's own expressions, with every
deployment selected and $__rate_interval set to 1m. Series that stay at 0
or have no value (a percentile without traffic) are left out, and
latencies have a logarithmic scale.

Usage:
  plot_metrics.py --prometheus http://127.0.0.1:9090 --out modelgate.png
                  [--start UNIX_TIME] [--end UNIX_TIME] [--step SECONDS]

The default range is the last 15 minutes. Needs gnuplot (Debian package
gnuplot-nox) and Python's standard library only.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

DASHBOARD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "modelgate.json")

# Panel titles to draw, each with the suffix that a target's legend must
# end with (empty: every target), so that percentile panels show p95 only.
PLOTS = [
    ("Requests per second", ""),
    ("Request duration", "p95"),
    ("Time to first byte", "p95"),
    ("Held requests", ""),
    ("Instances by state", ""),
    ("Cold starts by result", ""),
]

# y-axis labels for Grafana's units.
UNIT_LABELS = {"reqps": "requests/s", "s": "seconds", "percentunit": "share", "short": ""}

# Grafana's variables as the plot sets them.
VARIABLES = {"deployment": ".*", "__rate_interval": "1m", "__interval": "15s", "__range": "1h"}


def substitute(expression):
    """Replace $name and ${name} of the variables in VARIABLES."""
    def value(match):
        name = match.group(1) or match.group(2)
        if name not in VARIABLES:
            raise RuntimeError(f"unknown variable ${name} in {expression!r}")
        return VARIABLES[name]
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, expression)


def panel_queries(dashboard, title, legend_suffix):
    """Return the y-axis label and the (expression, legend) pairs of the
    panel named `title`."""
    for panel in dashboard["panels"]:
        if panel.get("title") == title and panel.get("type") != "row":
            unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
            queries = [(substitute(target["expr"]), target.get("legendFormat", ""))
                       for target in panel["targets"]
                       if target.get("legendFormat", "").endswith(legend_suffix)]
            return UNIT_LABELS.get(unit, unit), queries
    raise RuntimeError(f"no panel titled {title!r} in {DASHBOARD}")


def query_range(prometheus, expression, start, end, step):
    """Return the matrix result of a range query, raising on an error."""
    parameters = urllib.parse.urlencode(
        {"query": expression, "start": start, "end": end, "step": step})
    url = f"{prometheus}/api/v1/query_range?{parameters}"
    with urllib.request.urlopen(url, timeout=30) as response:
        body = json.load(response)
    if body.get("status") != "success":
        raise RuntimeError(f"query {expression!r} failed: {body.get('error')}")
    return body["data"]["result"]


def legend_of(template, labels):
    """Fill Grafana's {{label}} fields of `template` from a series' labels."""
    def value(match):
        text = labels.get(match.group(1).strip(), "")
        return text if text != "" else "(none)"
    return re.sub(r"\{\{([^}]*)\}\}", value, template)


def write_series(directory, index, result, template, start):
    """Write each series as a data file; return (path, legend) pairs."""
    files = []
    for number, series in enumerate(result):
        finite = [float(value) for _, value in series["values"]
                  if value not in ("NaN", "+Inf", "-Inf")]
        if not any(finite):
            continue  # no value, or 0 throughout
        path = os.path.join(directory, f"plot{index}_{number}.dat")
        with open(path, "w") as out:
            for timestamp, value in series["values"]:
                if value in ("NaN", "+Inf", "-Inf"):
                    out.write("\n")  # a gap in the line
                    continue
                out.write(f"{float(timestamp) - start:.3f} {value}\n")
        files.append((path, legend_of(template, series["metric"])))
    return files


def gnuplot_string(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def build_script(plots, out_path, start, end):
    lines = [
        "set terminal pngcairo size 1600,1000 font 'sans,10'",
        f"set output {gnuplot_string(out_path)}",
        "set multiplot layout 3,2 title " + gnuplot_string(
            "modelgate: " + time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(start)) +
            f" + {int(end - start)} s"),
        "set grid",
        "set key top left font ',8'",
        "set xlabel 'seconds since the start'",
        f"set xrange [0:{end - start:.0f}]",
        "set yrange [0:*]",
        "set offsets 0, 0, graph 0.1, 0",  # room above a line at the maximum
    ]
    for title, ylabel, files in plots:
        lines.append(f"set title {gnuplot_string(title)}")
        lines.append(f"set ylabel {gnuplot_string(ylabel)}")
        # Latencies span milliseconds to minutes.
        if ylabel == "seconds" and files:
            lines += ["set logscale y", "set yrange [*:*]"]
        else:
            lines += ["unset logscale y", "set yrange [0:*]"]
        if not files:
            lines.append("set label 1 'no data' at graph 0.5,0.5 center")
            lines.append("plot 0 notitle linecolor rgb '#cccccc'")
            lines.append("unset label 1")
            continue
        parts = [f"{gnuplot_string(path)} using 1:2 with lines linewidth 2 title {gnuplot_string(legend)}"
                 for path, legend in files]
        lines.append("plot " + ", ".join(parts))
    lines.append("unset multiplot")
    return "\n".join(lines) + "\n"


def plot(prometheus, out_path, start, end, step):
    """Query every plot's series and draw them into `out_path`."""
    with open(DASHBOARD) as source:
        dashboard = json.load(source)
    with tempfile.TemporaryDirectory(prefix="modelgate-plot-") as directory:
        plots = []
        for index, (title, legend_suffix) in enumerate(PLOTS):
            files = []
            ylabel, queries = panel_queries(dashboard, title, legend_suffix)
            for number, (expression, template) in enumerate(queries):
                result = query_range(prometheus, expression, start, end, step)
                files += write_series(directory, f"{index}_{number}", result, template, start)
            if legend_suffix:
                title += f" ({legend_suffix})"
            plots.append((title, ylabel, files))

        script = os.path.join(directory, "plot.gp")
        with open(script, "w") as out:
            out.write(build_script(plots, os.path.abspath(out_path), start, end))
        subprocess.run(["gnuplot", script], check=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus", required=True, help="Prometheus base URL")
    parser.add_argument("--out", required=True, help="PNG file to write")
    parser.add_argument("--start", type=float, help="range start, Unix seconds")
    parser.add_argument("--end", type=float, help="range end, Unix seconds (default: now)")
    parser.add_argument("--step", type=float, default=2, help="resolution in seconds")
    arguments = parser.parse_args()

    end = arguments.end or time.time()
    start = arguments.start or end - 15 * 60
    if start >= end:
        parser.error(f"--start {start} must be before --end {end}")
    try:
        plot(arguments.prometheus.rstrip("/"), arguments.out, start, end, arguments.step)
    except (OSError, RuntimeError, KeyError, subprocess.CalledProcessError) as error:
        print(f"plot_metrics.py: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
