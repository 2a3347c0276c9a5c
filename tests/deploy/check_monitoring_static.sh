#!/usr/bin/env bash
# Static checks for monitoring/: Prometheus config, rules and rule unit tests
# (promtool), YAML style (yamllint, strict), and the Grafana dashboard JSON.
# Needs no running service.  Usage: check_monitoring_static.sh REPO_ROOT
set -euo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 REPO_ROOT" >&2
  exit 2
fi
root=$(cd "$1" && pwd)
mon="$root/monitoring"

fail() {
  echo "check_monitoring_static: FAIL: $*" >&2
  exit 1
}

step() {
  echo "== $*"
}

# Missing tools are a failure, not a skip: `make test` installs them.
command -v promtool >/dev/null 2>&1 ||
  fail "promtool not found: install the 'prometheus' package (apt-get install prometheus)"
command -v yamllint >/dev/null 2>&1 ||
  fail "yamllint not found: install the 'yamllint' package (apt-get install yamllint)"
command -v python3 >/dev/null 2>&1 ||
  fail "python3 not found: install the 'python3' package"

[[ -d "$mon" ]] || fail "$mon does not exist"

step "promtool check config monitoring/prometheus/prometheus.yml"
promtool check config "$mon/prometheus/prometheus.yml" ||
  fail "promtool check config rejected monitoring/prometheus/prometheus.yml"

step "promtool check rules monitoring/prometheus/rules/*.yml"
shopt -s nullglob
rules=("$mon"/prometheus/rules/*.yml)
shopt -u nullglob
[[ ${#rules[@]} -gt 0 ]] || fail "no rule files in monitoring/prometheus/rules/"
promtool check rules "${rules[@]}" ||
  fail "promtool check rules rejected a file in monitoring/prometheus/rules/"

step "promtool test rules monitoring/prometheus/tests/tandem-rules.test.yml"
promtool test rules "$mon/prometheus/tests/tandem-rules.test.yml" ||
  fail "promtool rule unit tests failed (monitoring/prometheus/tests/tandem-rules.test.yml)"

step "yamllint -s monitoring/"
mapfile -t yamls < <(find "$mon" -type f \( -name '*.yml' -o -name '*.yaml' \) | sort)
[[ ${#yamls[@]} -gt 0 ]] || fail "no YAML files under monitoring/"
yamllint -s -c "$root/.yamllint" "${yamls[@]}" ||
  fail "yamllint (strict, config .yamllint) found problems in monitoring/"
echo "${#yamls[@]} YAML files clean"

step "dashboard monitoring/grafana/tandem.json"
python3 - "$mon/grafana/tandem.json" "$root/docs/metrics.md" "${rules[@]}" <<'PY' ||
import json
import re
import sys

dash_path, metrics_doc = sys.argv[1], sys.argv[2]
rule_paths = sys.argv[3:]


def die(msg):
    print(f"{dash_path}: {msg}", file=sys.stderr)
    sys.exit(1)


try:
    with open(dash_path) as f:
        dash = json.load(f)
except (OSError, ValueError) as e:
    die(f"does not parse as JSON: {e}")

if not isinstance(dash, dict):
    die("top level is not an object")
if not dash.get("uid"):
    die("no uid (provisioning needs a fixed one)")
if dash.get("id") is not None:
    die(f"top-level id is {dash['id']!r}; leave it out (or null) so Grafana assigns one")

variables = {v.get("name") for v in dash.get("templating", {}).get("list", [])}
for name in ("datasource", "model", "instance"):
    if name not in variables:
        die(f"template variable ${name} missing")


def flat(panels):
    for p in panels:
        yield p
        # Collapsed rows keep their panels inside.
        yield from flat(p.get("panels", []))


FILTER = 'instance=~"$instance"'
exprs = []
count = 0
for p in flat(dash.get("panels", [])):
    if p.get("type") == "row":
        continue
    count += 1
    title = p.get("title") or f"panel id {p.get('id')}"
    targets = [t for t in p.get("targets", []) if (t.get("expr") or "").strip()]
    if not targets:
        die(f'panel "{title}" has no target with a non-empty expr')
    for t in p.get("targets", []):
        expr = t.get("expr") or ""
        if FILTER not in expr:
            die(f'panel "{title}" target {t.get("refId")}: expr lacks {FILTER}: {expr}')
        exprs.append(expr)
if count == 0:
    die("no panels")

# Every tandem_* name used must be one the binaries export: the names in
# docs/metrics.md (histograms also as _bucket/_sum/_count) plus
# tandem_model_info.  Recording-rule names (level:tandem_...:op) are not
# metric names and are skipped by the lookbehind/lookahead.
with open(metrics_doc) as f:
    known = set(re.findall(r"^\| `(tandem_[a-z0-9_]+)` \|", f.read(), re.M))
if not known:
    die(f"no metric names found in {metrics_doc}")
known.add("tandem_model_info")
known |= {m + s for m in known for s in ("_bucket", "_sum", "_count")}

name_re = re.compile(r"(?<![:\w])tandem_[a-z0-9_]+(?![:\w])")
sources = [(dash_path, e) for e in exprs]
for rp in rule_paths:
    with open(rp) as f:
        sources.append((rp, f.read()))
used = set()
for src, text in sources:
    for name in name_re.findall(text):
        if name not in known:
            print(f"{src}: references {name}, which is not in docs/metrics.md", file=sys.stderr)
            sys.exit(1)
        used.add(name)
print(f"{count} panels, {len(exprs)} queries, all filtered by {FILTER}")
print(f"{len(used)} tandem metric names referenced, all in docs/metrics.md or tandem_model_info")
PY
  fail "monitoring/grafana/tandem.json failed validation"

echo "check_monitoring_static: OK"
