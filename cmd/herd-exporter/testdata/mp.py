"""Writes and reads a prometheus_client multiprocess directory: the oracle
of herd-exporter's tests. PROMETHEUS_MULTIPROC_DIR is set by the caller
before this module imports prometheus_client (trap 1 of the seed article).

    mp.py write ROLE    record ROLE's metrics in a process of its own; prints its pid
    mp.py collect       print what MultiProcessCollector serves (text 0.0.4)
    mp.py dead PID      mark_process_dead(PID)
"""
import os
import sys

if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    sys.exit("mp.py: PROMETHEUS_MULTIPROC_DIR is not set")

from prometheus_client import (  # noqa: E402  (after the env check on purpose)
    CollectorRegistry, Counter, Gauge, Histogram, Summary, generate_latest, multiprocess)

MODES = ["all", "liveall", "min", "livemin", "max", "livemax", "sum", "livesum"]


def write(role):
    req = Counter("req", "Requests served.", ["method", "route", "code"])
    plain = Counter("plain", "A counter without labels.")
    lat = Histogram("lat_seconds", "Latency.", ["route"])
    size = Summary("size_bytes", "Payload sizes.")
    gauges = {m: Gauge("g_" + m, "Gauge in mode " + m + ".", ["kind"], multiprocess_mode=m) for m in MODES}
    big = Counter("big", "Many series, so that the file grows past 64 KiB.", ["i"])
    if role == "a":
        req.labels("GET", "/hello", "200").inc(3)
        req.labels("POST", '/caf\u00e9 "q" \\ <a&b>', "500").inc(1.5)
        plain.inc()
        for v in (0.003, 0.7, 42):
            lat.labels("/x").observe(v)
        Histogram("custom", "Buckets differ per process.", buckets=[1, 2]).observe(1.5)
        size.observe(10)
        for m, g in gauges.items():
            g.labels("x").set(1)
        for i in range(2000):
            big.labels(str(i)).inc(i)
    elif role == "b":
        req.labels("GET", "/hello", "200").inc(4)
        req.labels("GET", "/emoji/\U0001F600", "404").inc()
        lat.labels("/x").observe(0.2)
        lat.labels("/y").observe(0)
        c = Histogram("custom", "Buckets differ per process.", buckets=[1, 5])
        c.observe(3)
        c.observe(0.5)
        size.observe(5)
        for m, g in gauges.items():
            g.labels("x").set(2)
        for i in range(0, 2000, 7):
            big.labels(str(i)).inc(2)
    elif role == "c":
        req.labels("GET", "/hello", "200").inc(10)
        req.labels("GET", "/new", "201").inc()
        lat.labels("/z").observe(7)
        for m, g in gauges.items():
            g.labels("x").set(-5)
    else:
        sys.exit("mp.py: unknown role " + role)
    print(os.getpid())


def main():
    cmd = sys.argv[1]
    if cmd == "write":
        write(sys.argv[2])
    elif cmd == "collect":
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        sys.stdout.write(generate_latest(registry).decode("utf-8"))
    elif cmd == "dead":
        multiprocess.mark_process_dead(int(sys.argv[2]))
    else:
        sys.exit("mp.py: unknown command " + cmd)


main()
