// Package mmapstore reads and writes the memory-mapped metric files of
// Python prometheus_client's multiprocess mode, byte for byte, so that herd's
// master can merge files written by Python and Python can read herd's.
//
// It knows bytes, keys and floats; it knows nothing of HTTP or of metric
// semantics (merging by type lives in package metrics). Linux only.
//
// (Work in progress: the full description of the format, the concurrency
// model and the tmpfs/fallocate trap follows with the rest of the package.)
package mmapstore
