#!/usr/bin/python3
"""scrape_check.py -- read what the router's admin port served, with real parsers.

Usage: scrape_check.py metrics FILE   (a GET /metrics answer body)
       scrape_check.py tunnels FILE   (a GET /tunnels answer body)

metrics: parses FILE with prometheus_client's text parser (Debian's
python3-prometheus-client), checks each histogram (cumulative buckets
ending in +Inf equal to _count), and prints one line per sample,
"name{label="value",...} value", labels sorted by name, so that a C test
can look samples up by exact text. Families print as "# family NAME TYPE".

tunnels: parses FILE as JSON, checks it is a list of objects with the
documented keys, and prints one line per tunnel:
"id remote service open_streams requests bytes_in bytes_out age_seconds".

Exits 1 with a message on stderr when FILE does not parse or a check fails.
"""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

TUNNEL_KEYS = ("id", "remote", "service", "age_seconds", "open_streams",
               "in_flight", "queued", "requests", "bytes_in", "bytes_out")


def sample_key(name, labels):
    inner = ",".join('%s="%s"' % (k, labels[k]) for k in sorted(labels))
    return "%s{%s}" % (name, inner) if inner else name


def check_histogram(family):
    """Buckets of each label set must be cumulative and end at _count."""
    groups = {}
    for s in family.samples:
        rest = {k: v for k, v in s.labels.items() if k != "le"}
        key = tuple(sorted(rest.items()))
        groups.setdefault(key, {"buckets": [], "count": None})
        if s.name.endswith("_bucket"):
            groups[key]["buckets"].append((float(s.labels["le"]), s.value))
        elif s.name.endswith("_count"):
            groups[key]["count"] = s.value
    for key, g in groups.items():
        buckets = sorted(g["buckets"])
        if not buckets or buckets[-1][0] != float("inf"):
            raise ValueError("%s%s: no +Inf bucket" % (family.name, key))
        values = [v for _, v in buckets]
        if values != sorted(values):
            raise ValueError("%s%s: buckets not cumulative" % (family.name, key))
        if g["count"] != values[-1]:
            raise ValueError("%s%s: _count differs from +Inf" % (family.name, key))


def print_metrics(text):
    for family in text_string_to_metric_families(text):
        print("# family %s %s" % (family.name, family.type))
        if family.type == "histogram":
            check_histogram(family)
        for s in family.samples:
            value = s.value
            shown = "%d" % value if value == int(value) else repr(value)
            print("%s %s" % (sample_key(s.name, s.labels), shown))


def print_tunnels(text):
    tunnels = json.loads(text)
    if not isinstance(tunnels, list):
        raise ValueError("not a JSON list")
    for t in tunnels:
        missing = [k for k in TUNNEL_KEYS if k not in t]
        if missing:
            raise ValueError("tunnel without %s" % ", ".join(missing))
        print("%d %s %s %d %d %d %d %.3f" % (
            t["id"], t["remote"], t["service"] or "-", t["open_streams"],
            t["requests"], t["bytes_in"], t["bytes_out"], t["age_seconds"]))


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("metrics", "tunnels"):
        sys.stderr.write(__doc__)
        return 2
    with open(sys.argv[2], encoding="utf-8") as f:
        text = f.read()
    try:
        if sys.argv[1] == "metrics":
            print_metrics(text)
        else:
            print_tunnels(text)
    except Exception as e:  # any parse or check failure fails the test
        sys.stderr.write("scrape_check: %s: %s\n" % (sys.argv[1], e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
