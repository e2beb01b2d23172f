# Prints what client_python's MultiProcessCollector serves for PROMETHEUS_MULTIPROC_DIR,
# after mark_process_dead for every id given as an argument.
import sys

from prometheus_client import CollectorRegistry, generate_latest, multiprocess

for pid in sys.argv[1:]:
    multiprocess.mark_process_dead(pid)
registry = CollectorRegistry()
multiprocess.MultiProcessCollector(registry)
sys.stdout.write(generate_latest(registry).decode('utf-8'))
