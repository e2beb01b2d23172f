#!/usr/bin/env python3
"""Write the client_python golden files of this directory again, or check them.

    python3 generate.py OUTDIR          write OUTDIR/mpdir, OUTDIR/mpdir-after-123-died,
                                        OUTDIR/merged.{prom,openmetrics} and
                                        OUTDIR/merged-after-123-died.{prom,openmetrics}
    python3 generate.py --check [DIR]   check the golden set in DIR (default: this directory)

Writing runs the real prometheus_client, version 0.18 or later (the current layout: every
entry holds a float64 value and a float64 timestamp). Debian 12's python3-prometheus-client is
0.16, which writes the legacy layout (no timestamp) and has no mostrecent gauges: the script
refuses it. Install the current one from PyPI in a virtualenv:

    python3 -m venv /tmp/pcenv && /tmp/pcenv/bin/pip install 'prometheus_client>=0.18'
    /tmp/pcenv/bin/python3 generate.py /tmp/golden

Two processes, ids 123 and 456, run one after the other, each in its own Python process with
PROMETHEUS_MULTIPROC_DIR set and prometheus_client's process identifier fixed to its id; each
performs the operations of PLAN. Then mpdir/ is copied to mpdir-after-123-died/ and
mark_process_dead(123) runs there, and client_python's MultiProcessCollector writes the
expositions of both directories. Finally the script checks what it wrote, as --check does.

Checking needs only python3. It decodes every .db file (the format of the mmap-format notes:
8-byte header with the used length, then entries of int32 key length, JSON key, spaces to an
8-byte boundary, float64 value, float64 timestamp) and every exposition, and compares them with
what PLAN makes client_python write and merge: the same table drives the writer and the check.
The mostrecent timestamps are the only values that differ from one run to the next.
"""

import inspect
import json
import math
import os
import shutil
import struct
import subprocess
import sys

INF = math.inf

# Process ids, in the order they run: 456 writes last, so its mostrecent gauges win.
PIDS = (123, 456)
DEAD = 123

REQUESTS = ("http_requests", "Requests served.")
ROUTES = (  # (code, method, route) of the labelled counter, in the order the series are made
    ("200", "GET", "/hello"),
    ("200", "GET", "/users/{id}"),
    ("500", "POST", '/caf\u00e9 "q" \\ <a&b>'),  # non-ASCII, quote, backslash, <>&
    ("404", "GET", "/emoji/\U0001F600"),  # astral: a surrogate pair in the key
)
BIG = ("big", "A help text that repeats in every entry.")
BIG_SERIES = 300
LATENCY = ("http_request_duration_seconds", "Latency.")
LATENCY_ROUTE = "/hello"
PAYLOAD = ("payload_bytes", "Payload sizes.")
GAUGE_MODES = ("all", "liveall", "min", "livemin", "max", "livemax",
               "sum", "livesum", "mostrecent", "livemostrecent")
# client_python's default histogram buckets.
DEFAULT_BUCKETS = (.005, .01, .025, .05, .075, .1, .25, .5, .75, 1.0, 2.5, 5.0, 7.5, 10.0, INF)

# What each process does. requests: one inc(amount) per route of ROUTES; big: series i gets
# inc(i + big_offset); latencies and payloads: observe() each, in order; gauge: every gauge
# (one per mode, label kind="x") is set to it.
PLAN = {
    123: {
        "requests": (10.0, 3.0, 1.0, 0.5),
        "big_offset": 1.0,
        "latencies": (0.001, 0.02, 0.3, 2.0, 20.0),
        "payloads": (7.0, 100.0),
        "gauge": 1.0,
    },
    456: {
        "requests": (20.0, 6.0, 2.0, 1.0),
        "big_offset": 2.0,
        "latencies": (0.002, 0.02, 0.3, 4.0, 20.0),
        "payloads": (7.0, 200.0),
        "gauge": 2.0,
    },
}

MPDIR = "mpdir"
AFTER = "mpdir-after-123-died"
MERGED = {MPDIR: "merged", AFTER: "merged-after-123-died"}

INSTALL_HINT = ("Install it from PyPI in a virtualenv: python3 -m venv /tmp/pcenv && "
                "/tmp/pcenv/bin/pip install 'prometheus_client>=0.18', then run "
                "/tmp/pcenv/bin/python3 generate.py OUTDIR")


def gauge_name(mode):
    return "g_" + mode


def gauge_help(mode):
    return "Gauge in mode %s." % mode


def le(bound):
    """The le label value client_python writes for a default bucket bound."""
    return "+Inf" if bound == INF else repr(float(bound))


# ---------------------------------------------------------------------------------------------
# Writing (needs prometheus_client >= 0.18)


def require_current_client():
    """Exit 2 with one clear line unless the importable prometheus_client writes the current layout."""
    try:
        import prometheus_client
        from prometheus_client import mmap_dict
    except ImportError:
        print("generate.py: prometheus_client is not installed. " + INSTALL_HINT, file=sys.stderr)
        sys.exit(2)
    try:
        from importlib.metadata import version
        found = version("prometheus_client")
    except Exception:  # a source tree on PYTHONPATH has no metadata
        found = "(version unknown)"
    # MmapedDict.write_value takes the timestamp since 0.18.0, the release that introduced
    # the 16-byte layout and the mostrecent gauges; older releases write 8-byte entries.
    if "timestamp" not in inspect.signature(mmap_dict.MmapedDict.write_value).parameters:
        print("generate.py: prometheus_client %s at %s writes the legacy layout (8-byte entries, "
              "no timestamp, no mostrecent gauges); these golden files are the current layout of "
              "prometheus_client >= 0.18 (Debian's python3-prometheus-client 0.16 is too old). %s"
              % (found, os.path.dirname(prometheus_client.__file__), INSTALL_HINT), file=sys.stderr)
        sys.exit(2)
    return found


def write_process(pid, mpdir):
    """Performs PLAN[pid] as process pid, writing into mpdir. Runs in its own Python process."""
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = mpdir
    from prometheus_client import Counter, Gauge, Histogram, Summary, values
    values.ValueClass = values.MultiProcessValue(lambda: pid)
    plan = PLAN[pid]

    requests = Counter(REQUESTS[0], REQUESTS[1], ["code", "method", "route"], registry=None)
    for (code, method, route), amount in zip(ROUTES, plan["requests"]):
        requests.labels(code=code, method=method, route=route).inc(amount)
    big = Counter(BIG[0], BIG[1], ["i"], registry=None)
    for i in range(BIG_SERIES):
        big.labels(i=str(i)).inc(i + plan["big_offset"])
    latency = Histogram(LATENCY[0], LATENCY[1], ["route"], registry=None).labels(route=LATENCY_ROUTE)
    for seconds in plan["latencies"]:
        latency.observe(seconds)
    payload = Summary(PAYLOAD[0], PAYLOAD[1], registry=None)
    for size in plan["payloads"]:
        payload.observe(size)
    for mode in GAUGE_MODES:
        gauge = Gauge(gauge_name(mode), gauge_help(mode), ["kind"], multiprocess_mode=mode, registry=None)
        gauge.labels(kind="x").set(plan["gauge"])


def write_expositions(directory, stem):
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector
    from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    out = os.path.dirname(directory)
    with open(os.path.join(out, stem + ".prom"), "wb") as f:
        f.write(generate_latest(registry))
    with open(os.path.join(out, stem + ".openmetrics"), "wb") as f:
        f.write(generate_openmetrics(registry))


def generate(outdir):
    found = require_current_client()
    outdir = os.path.abspath(outdir)
    os.makedirs(outdir, exist_ok=True)
    targets = [MPDIR, AFTER] + [stem + ext for stem in MERGED.values() for ext in (".prom", ".openmetrics")]
    present = [t for t in targets if os.path.exists(os.path.join(outdir, t))]
    if present:
        sys.exit("generate.py: %s already holds %s; give a new or empty directory"
                 % (outdir, ", ".join(present)))
    mpdir = os.path.join(outdir, MPDIR)
    os.mkdir(mpdir)
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=mpdir)
    for pid in PIDS:  # one after the other: the later process has the later timestamps
        subprocess.run([sys.executable, os.path.abspath(__file__), "--write-process", str(pid), mpdir],
                       env=env, check=True)
    after = os.path.join(outdir, AFTER)
    shutil.copytree(mpdir, after)
    from prometheus_client import multiprocess
    multiprocess.mark_process_dead(DEAD, after)
    for directory, stem in MERGED.items():
        write_expositions(os.path.join(outdir, directory), stem)
    print("wrote %s with prometheus_client %s" % (outdir, found))
    return check(outdir)


# ---------------------------------------------------------------------------------------------
# Checking (python3 only)


class Bad(Exception):
    pass


def walk(data, used, value_size):
    """The entries (key, value, timestamp or None) between offset 8 and used, or None if entries
    of value_size bytes after the padded key do not end exactly at used."""
    pos, out = 8, []
    while pos < used:
        if pos + 4 > used:
            return None
        (klen,) = struct.unpack_from("<i", data, pos)
        pad = 8 - (klen + 4) % 8
        start = pos + 4
        end = start + klen + pad + value_size
        if klen <= 0 or end > used or data[start + klen:start + klen + pad] != b" " * pad:
            return None
        (value,) = struct.unpack_from("<d", data, start + klen + pad)
        stamp = struct.unpack_from("<d", data, start + klen + pad + 8)[0] if value_size == 16 else None
        try:
            key = data[start:start + klen].decode("ascii")
        except UnicodeDecodeError:
            return None
        out.append((key, value, stamp))
        pos = end
    return out


def decode(path):
    """Entries of one .db file in the current layout (little-endian, as written on amd64/arm64)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise Bad("%s: %d bytes, shorter than the 8-byte header" % (path, len(data)))
    (used,) = struct.unpack_from("<i", data, 0)
    if data[4:8] != b"\0\0\0\0" or not 8 <= used <= len(data):
        raise Bad("%s: bad header (used=%d, file %d bytes)" % (path, used, len(data)))
    entries = walk(data, used, 16)
    if entries is None:
        if walk(data, used, 8) is not None:
            raise Bad("%s: legacy layout (8-byte entries, client_python < 0.18)" % path)
        raise Bad("%s: entries do not end at used=%d" % (path, used))
    if any(data[used:]):
        raise Bad("%s: bytes after used are not zero" % path)
    return entries


def key(family, sample, labels, help_text):
    """The key client_python writes: json.dumps([family, sample, labels, help], sort_keys=True)."""
    return json.dumps([family, sample, labels, help_text], sort_keys=True)


def fsum(values):
    """Sum in order, as repeated inc() does."""
    total = 0.0
    for v in values:
        total += v
    return total


def bucket_counts(observations):
    """Per-bucket (not cumulative) counts: each observation goes into the first bound >= it."""
    counts = [0.0] * len(DEFAULT_BUCKETS)
    for x in observations:
        counts[next(i for i, b in enumerate(DEFAULT_BUCKETS) if x <= b)] += 1.0
    return counts


def expected_files(pid):
    """file name -> [(key, value, stamped)] that PLAN[pid] makes client_python write, entries in
    the order they are created; stamped: the entry has a non-zero timestamp."""
    plan = PLAN[pid]
    counter = []
    for (code, method, route), amount in zip(ROUTES, plan["requests"]):
        labels = {"code": code, "method": method, "route": route}
        counter.append((key(REQUESTS[0], REQUESTS[0] + "_total", labels, REQUESTS[1]), 0.0 + amount, False))
    for i in range(BIG_SERIES):
        counter.append((key(BIG[0], BIG[0] + "_total", {"i": str(i)}, BIG[1]), 0.0 + i + plan["big_offset"], False))
    histogram = [(key(LATENCY[0], LATENCY[0] + "_sum", {"route": LATENCY_ROUTE}, LATENCY[1]),
                  fsum(plan["latencies"]), False)]
    for bound, count in zip(DEFAULT_BUCKETS, bucket_counts(plan["latencies"])):
        histogram.append((key(LATENCY[0], LATENCY[0] + "_bucket", {"le": le(bound), "route": LATENCY_ROUTE},
                              LATENCY[1]), count, False))
    summary = [(key(PAYLOAD[0], PAYLOAD[0] + "_count", {}, PAYLOAD[1]), float(len(plan["payloads"])), False),
               (key(PAYLOAD[0], PAYLOAD[0] + "_sum", {}, PAYLOAD[1]), fsum(plan["payloads"]), False)]
    files = {"counter_%d.db" % pid: counter, "histogram_%d.db" % pid: histogram, "summary_%d.db" % pid: summary}
    for mode in GAUGE_MODES:
        name = gauge_name(mode)
        files["gauge_%s_%d.db" % (mode, pid)] = [
            (key(name, name, {"kind": "x"}, gauge_help(mode)), plan["gauge"], mode.endswith("mostrecent"))]
    return files


def expected_dir(dead):
    """Expected files of a directory after the processes in dead were marked dead."""
    files = {}
    for pid in PIDS:
        for name, entries in expected_files(pid).items():
            if pid in dead and name.startswith("gauge_live"):
                continue
            files[name] = entries
    return files


def check_dir(directory, dead, problems):
    """Compares every .db file of directory with the plan; returns the decoded entries by file."""
    want = expected_dir(dead)
    have = sorted(n for n in os.listdir(directory) if n.endswith(".db"))
    if have != sorted(want):
        problems.append("%s: files %s, want %s" % (directory, have, sorted(want)))
    decoded = {}
    for name in have:
        try:
            decoded[name] = decode(os.path.join(directory, name))
        except Bad as e:
            problems.append(str(e))
    for name, entries in decoded.items():
        expected = want.get(name)
        if expected is None:
            continue
        if [k for k, _, _ in entries] != [k for k, _, _ in expected]:
            problems.append("%s/%s: keys differ from the plan" % (directory, name))
            continue
        for (k, value, stamp), (_, want_value, stamped) in zip(entries, expected):
            if value != want_value:
                problems.append("%s/%s: %s = %r, plan says %r" % (directory, name, k, value, want_value))
            if (stamp != 0.0) != stamped:
                problems.append("%s/%s: %s has timestamp %r" % (directory, name, k, stamp))
    # The later process wrote its mostrecent gauges later.
    for mode in ("mostrecent", "livemostrecent"):
        stamps = [decoded.get("gauge_%s_%d.db" % (mode, pid)) for pid in PIDS]
        stamps = [s[0][2] for s in stamps if s]
        if stamps != sorted(stamps):
            problems.append("%s: gauge_%s timestamps %r do not follow the order of %r" % (directory, mode, stamps, PIDS))
    return decoded


def expected_merge(dead):
    """(families, samples) that client_python's MultiProcessCollector serves for the directory
    after the processes in dead died. families: name -> (type, help); samples:
    (sample name, sorted label pairs) -> value."""
    live = [p for p in PIDS if p not in dead]
    families, samples = {}, {}

    def put(name, labels, value):
        samples[(name, tuple(sorted(labels.items())))] = value

    families[REQUESTS[0]] = ("counter", REQUESTS[1])
    for i, (code, method, route) in enumerate(ROUTES):
        put(REQUESTS[0] + "_total", {"code": code, "method": method, "route": route},
            fsum(PLAN[p]["requests"][i] for p in PIDS))
    families[BIG[0]] = ("counter", BIG[1])
    for i in range(BIG_SERIES):
        put(BIG[0] + "_total", {"i": str(i)}, fsum(i + PLAN[p]["big_offset"] for p in PIDS))
    families[LATENCY[0]] = ("histogram", LATENCY[1])
    per_bucket = [fsum(c) for c in zip(*(bucket_counts(PLAN[p]["latencies"]) for p in PIDS))]
    cumulative = 0.0
    for bound, count in zip(DEFAULT_BUCKETS, per_bucket):
        cumulative += count
        put(LATENCY[0] + "_bucket", {"le": le(bound), "route": LATENCY_ROUTE}, cumulative)
    put(LATENCY[0] + "_count", {"route": LATENCY_ROUTE}, cumulative)
    put(LATENCY[0] + "_sum", {"route": LATENCY_ROUTE}, fsum(fsum(PLAN[p]["latencies"]) for p in PIDS))
    families[PAYLOAD[0]] = ("summary", PAYLOAD[1])
    put(PAYLOAD[0] + "_count", {}, fsum(float(len(PLAN[p]["payloads"])) for p in PIDS))
    put(PAYLOAD[0] + "_sum", {}, fsum(fsum(PLAN[p]["payloads"]) for p in PIDS))
    for mode in GAUGE_MODES:
        name = gauge_name(mode)
        families[name] = ("gauge", gauge_help(mode))
        pids = live if mode.startswith("live") else list(PIDS)
        values = [PLAN[p]["gauge"] for p in pids]
        base = mode[4:] if mode.startswith("live") else mode
        if base == "all":
            for p in pids:
                put(name, {"kind": "x", "pid": str(p)}, PLAN[p]["gauge"])
        elif base == "min":
            put(name, {"kind": "x"}, min(values))
        elif base == "max":
            put(name, {"kind": "x"}, max(values))
        elif base == "sum":
            put(name, {"kind": "x"}, fsum(values))
        elif base == "mostrecent":
            put(name, {"kind": "x"}, values[-1])  # the process that ran last
    return families, samples


def unescape(s, i, end_char):
    """Reads an escaped string from s[i:] up to an unescaped end_char; returns (text, index after it)."""
    out = []
    while i < len(s) and s[i] != end_char:
        if s[i] == "\\" and i + 1 < len(s):
            out.append({"n": "\n", "\\": "\\", '"': '"'}.get(s[i + 1], "\\" + s[i + 1]))
            i += 2
        else:
            out.append(s[i])
            i += 1
    if i >= len(s):
        raise Bad("unterminated string")
    return "".join(out), i + 1


def parse_exposition(text):
    """families name -> (type, help) and samples (name, sorted label pairs) -> value of a text
    exposition (format 0.0.4 or OpenMetrics), with duplicate samples reported."""
    types, helps, samples = {}, {}, {}
    for line in text.splitlines():
        if not line or line == "# EOF":
            continue
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            _, kind, name, rest = (line.split(" ", 3) + [""])[:4]
            if kind == "HELP":
                helps[name] = unescape(rest + "\n", 0, "\n")[0]
            else:
                types[name] = rest
            continue
        if line.startswith("#"):
            raise Bad("unexpected comment line %r" % line)
        i = 0
        while i < len(line) and line[i] not in "{ ":
            i += 1
        name, labels = line[:i], {}
        if i < len(line) and line[i] == "{":
            i += 1
            while line[i] != "}":
                eq = line.index("=", i)
                label = line[i:eq]
                if line[eq + 1] != '"':
                    raise Bad("bad label in %r" % line)
                labels[label], i = unescape(line, eq + 2, '"')
                if line[i] == ",":
                    i += 1
            i += 1
        value = float(line[i:].split()[0])
        sample = (name, tuple(sorted(labels.items())))
        if sample in samples:
            raise Bad("duplicate sample %r" % (sample,))
        samples[sample] = value
    families = {name: (types.get(name), helps.get(name)) for name in set(types) | set(helps)}
    return families, samples


def check_exposition(path, dead, problems):
    families, samples = expected_merge(dead)
    if path.endswith(".prom"):  # format 0.0.4 names counter families with their _total
        families = {(n + "_total" if t == "counter" else n): (t, h) for n, (t, h) in families.items()}
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if path.endswith(".openmetrics") and not text.endswith("# EOF\n"):
        problems.append("%s: does not end with # EOF" % path)
    try:
        have_families, have_samples = parse_exposition(text)
    except (Bad, ValueError, IndexError) as e:
        problems.append("%s: %s" % (path, e))
        return 0
    if have_families != families:
        problems.append("%s: families %r, want %r" % (path, have_families, families))
    for sample in sorted(set(samples) | set(have_samples)):
        if samples.get(sample) != have_samples.get(sample):
            problems.append("%s: %r = %r, plan says %r" % (path, sample, have_samples.get(sample), samples.get(sample)))
    return len(have_samples)


def check(root):
    """Checks the golden set under root against PLAN; prints what it checked; returns the exit status."""
    problems = []
    dirs = {MPDIR: set(), AFTER: {DEAD}}
    decoded = {}
    for directory, dead in dirs.items():
        path = os.path.join(root, directory)
        if not os.path.isdir(path):
            problems.append("%s: missing" % path)
            continue
        decoded[directory] = check_dir(path, dead, problems)
        entries = sum(len(e) for e in decoded[directory].values())
        print("%s: %d files, %d entries decoded" % (path, len(decoded[directory]), entries))
    # mark_process_dead only deletes files: what is left is byte for byte what was there.
    if MPDIR in decoded and AFTER in decoded:
        for name in decoded[AFTER]:
            with open(os.path.join(root, MPDIR, name), "rb") as a, open(os.path.join(root, AFTER, name), "rb") as b:
                if a.read() != b.read():
                    problems.append("%s/%s differs from %s/%s" % (AFTER, name, MPDIR, name))
    for directory, stem in MERGED.items():
        for ext in (".prom", ".openmetrics"):
            path = os.path.join(root, stem + ext)
            if not os.path.isfile(path):
                problems.append("%s: missing" % path)
                continue
            n = check_exposition(path, dirs[directory], problems)
            print("%s: %d samples parsed" % (path, n))
    for p in problems:
        print("MISMATCH " + p, file=sys.stderr)
    print("%s: %s" % (root, "agrees with the plan" if not problems else "%d mismatches" % len(problems)))
    return 1 if problems else 0


def main(argv):
    if len(argv) == 3 and argv[0] == "--write-process":
        write_process(int(argv[1]), argv[2])
        return 0
    if argv[:1] == ["--check"] and len(argv) <= 2:
        return check(argv[1] if len(argv) == 2 else os.path.dirname(os.path.abspath(__file__)))
    if len(argv) == 1 and not argv[0].startswith("-"):
        return generate(argv[0])
    print(__doc__.split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
