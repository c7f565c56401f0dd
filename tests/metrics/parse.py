#!/usr/bin/env python3
"""Reads a Prometheus text exposition on stdin with prometheus_client's parser (the Python
client library of the Prometheus project) and prints what it understood, one tab-separated
line each, for tests/metrics.rs:

  family <name> <type> <help>
  sample <name> <label=value,... sorted> <value>

Family names are as the parser gives them (a counter's without `_total`). Exits 1 with the
parser's message when the text does not parse.
"""

import sys

from prometheus_client.parser import text_string_to_metric_families


def main():
    text = sys.stdin.read()
    out = []
    try:
        for family in text_string_to_metric_families(text):
            out.append("family\t%s\t%s\t%s" % (family.name, family.type, family.documentation))
            for s in family.samples:
                labels = ",".join("%s=%s" % kv for kv in sorted(s.labels.items()))
                out.append("sample\t%s\t%s\t%r" % (s.name, labels, float(s.value)))
    except Exception as e:  # the parser raises ValueError and others on bad input
        print("parse error: %s" % e, file=sys.stderr)
        return 1
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
