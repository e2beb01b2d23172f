// Package expo appends the pieces of the Prometheus text and OpenMetrics
// exposition formats to byte slices, exactly as prometheus/common/expfmt
// writes them: sample values, escaped label values, a sample's name and
// labels. Package metrics renders herd's merged files with it, and package
// workermetrics the workers' client_golang families, so that both write
// what expfmt would, byte for byte.
package expo
