# gunicorn settings for the Python benchmark peer (see app.py).
from prometheus_client import multiprocess

worker_class = "uvicorn.workers.UvicornWorker"
keepalive = 75  # wrk keeps its connections open for the whole run
accesslog = None
loglevel = "warning"


def child_exit(server, worker):
    # prometheus_client's documented multiprocess bookkeeping.
    multiprocess.mark_process_dead(worker.pid)
