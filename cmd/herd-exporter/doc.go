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
//	-dir DIR              the multiprocess directory to read (required unless set in the environment)
//	-bind ADDR            listen address (default 127.0.0.1:9095)
//	-log-format FMT       "text" (default) or "json"
//	-files-owner USERS    users (names or uids, comma-separated) who write DIR, trusted
//	                      besides the exporter's own user and root (default: none)
//	-max-files N          most metric files one scrape reads (default 10000)
//	-max-file-bytes N     most bytes in use of one file (default 268435456: 256 MiB)
//	-max-series N         most series entries one scrape reads, over all files (default 2000000)
//	-max-connections N    most open client connections (default 64)
//	-idle-timeout D       idle keep-alive connections are closed after D (default 120s)
//
// Routes:
//
//	GET /metrics   every file of DIR merged with client_python's rules
//	               (text 0.0.4, OpenMetrics or protobuf by Accept; gzip)
//	GET /healthz   200 while DIR is a readable directory that passes the rules below, else 503
//
// It reads both file layouts: the 16-byte entries of client_python 0.18 and
// later, and the 8-byte entries of 0.4 to 0.17 (Debian 12 ships 0.16). It
// never writes into DIR. Unlike Python's collector, a bad file (zero
// length, truncated, corrupt, a foreign *.db) is skipped, not a failed
// scrape; only files appended since the last scrape are parsed again.
//
// # Trust
//
// The exporter does not trust DIR more than herd's master trusts its
// -metrics-dir: DIR must be a real directory (not a symbolic link), owned by
// the exporter's user, root or a -files-owner user, and writable by nobody
// else unless it has the sticky bit; otherwise it exits with status 2 at
// start, and /metrics and /healthz answer errors if DIR becomes so later.
// Files owned by any other user are skipped, so that a user who may add
// files to a sticky directory cannot inject numbers. So are files that are
// sparse where they claim to hold data (reading their holes would cost
// memory), and whatever passes the -max-* limits. Each skipped file is
// counted in herd_metrics_files_skipped and, by reason, in
// herd_exporter_files_skipped{reason}; the log gets one line per reason for
// the files a scrape newly skips (how many, and the first three), never one
// line per file.
//
// Scrapes in the text and OpenMetrics formats are rendered straight from the
// merged files, as herd's master renders its /metrics. When it starts, the
// exporter reads the directory once in the background (the first scrape's
// work) and logs "metrics cache warmed" with the files and entries read, so
// that the first scrape costs what any scrape costs.
//
// The HTTP server has the timeouts of herd's admin listener (headers 10 s,
// request 30 s, response 60 s, idle -idle-timeout, headers at most 16 KiB)
// and serves at most -max-connections connections at once: one more is
// closed at once.
//
// Bad flags, a bad or unsafe directory or a port in use are reported as one
// line on stderr with exit status 2, before anything is served. SIGTERM or
// SIGINT stop it cleanly (exit status 0).
//
// Python's mark_process_dead still belongs in the app's gunicorn child_exit
// hook: it deletes the live* gauge files of a dead worker, and the exporter
// then stops reporting them.
package main
