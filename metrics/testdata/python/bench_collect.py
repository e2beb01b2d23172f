# Times client_python's MultiProcessCollector on the directory given as argument: for each
# line read from stdin, one collect() + generate_latest(), timed with time.perf_counter
# inside Python (wall time, and process_time for the CPU it used); prints
# "<seconds> <cpu seconds> <bytes of exposition>" per round.
import sys
import time

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

registry = CollectorRegistry()
MultiProcessCollector(registry, path=sys.argv[1])
for _ in sys.stdin:
    start, cpu = time.perf_counter(), time.process_time()
    out = generate_latest(registry)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    sys.stdout.write("%.9f %.9f %d\n" % (elapsed, cpu, len(out)))
    sys.stdout.flush()
