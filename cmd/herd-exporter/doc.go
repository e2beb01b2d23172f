// Command herd-exporter serves the merged metrics of any prometheus_client
// multiprocess directory over HTTP, so that a Python app under gunicorn (or
// uWSGI, or anything that writes PROMETHEUS_MULTIPROC_DIR files) gets herd's
// scrape without a code change: no MultiProcessCollector in the app, no
// metrics route in a worker, one /metrics for the whole host.
//
// Usage:
//
//	herd-exporter -dir /run/myapp/metrics -bind 127.0.0.1:9095
//
// -dir defaults to $PROMETHEUS_MULTIPROC_DIR (or the older lowercase
// $prometheus_multiproc_dir), so the exporter can share the app's
// environment file. Flags:
//
//	-dir DIR          the multiprocess directory to read (required unless set in the environment)
//	-bind ADDR        listen address (default 127.0.0.1:9095)
//	-log-format FMT   "text" (default) or "json"
//
// Routes:
//
//	GET /metrics   every file of DIR merged with client_python's rules
//	               (text 0.0.4, OpenMetrics or protobuf by Accept; gzip)
//	GET /healthz   200 while DIR is a readable directory, else 503
//
// It reads both file layouts: the 16-byte entries of client_python 0.18 and
// later, and the 8-byte entries of 0.4 to 0.17 (Debian 12 ships 0.16). It
// never writes into DIR. Unlike Python's collector, a bad file (zero
// length, truncated, corrupt, a foreign *.db) is skipped and logged, not a
// failed scrape; only files appended since the last scrape are parsed again.
//
// Bad flags, a missing directory or a port in use are reported as one line
// on stderr with exit status 2, before anything is served. SIGTERM or
// SIGINT stop it cleanly (exit status 0).
//
// Python's mark_process_dead still belongs in the app's gunicorn child_exit
// hook: it deletes the live* gauge files of a dead worker, and the exporter
// then stops reporting them.
package main
