package metrics

import (
	"compress/gzip"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/common/expfmt"
)

// HandlerOpts configures Handler. The zero value works.
type HandlerOpts struct {
	// Logger receives gather and encoding errors. Zero: errors are only answered.
	Logger *slog.Logger
	// ContinueOnError serves whatever was gathered when the Gatherer returns families
	// together with an error. Zero: the scrape fails with status 500 (as client_golang's
	// promhttp.HTTPErrorOnError), so that a broken scrape is never mistaken for zeros.
	ContinueOnError bool
	// DisableCompression never gzips. Zero: the response is gzipped when the scraper
	// accepts gzip.
	DisableCompression bool
}

// offered lists the formats Handler serves, in order of preference when the scraper's
// Accept header ranks several equally.
var offered = [...]expfmt.Format{
	expfmt.FmtOpenMetrics_1_0_0,
	expfmt.FmtOpenMetrics_0_0_1,
	expfmt.FmtProtoDelim,
	expfmt.FmtText,
}

// Handler serves the families of g for Prometheus scrapes: content negotiation with
// expfmt.NegotiateAccept between the text format 0.0.4 (the default), OpenMetrics 1.0.0
// (ending in "# EOF") and delimited protobuf; gzip when the scraper accepts it. Every
// request gathers anew. Families come out in g's order (sorted, for herd's gatherers).
func Handler(g Gatherer, opts HandlerOpts) http.Handler {
	gzips := &sync.Pool{New: func() any { return gzip.NewWriter(nil) }}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fams, err := g.Gather()
		if err != nil {
			if opts.Logger != nil {
				opts.Logger.Error("metrics: gather failed", "err", err)
			}
			if !opts.ContinueOnError || len(fams) == 0 {
				http.Error(w, "metrics: gather failed: "+err.Error(), http.StatusInternalServerError)
				return
			}
		}
		format := expfmt.NegotiateAccept(r.Header, offered[:]...)
		h := w.Header()
		h.Set("Content-Type", string(format))
		h.Add("Vary", "Accept-Encoding")
		var out io.Writer = w
		if !opts.DisableCompression && acceptsGzip(r.Header.Get("Accept-Encoding")) {
			h.Set("Content-Encoding", "gzip")
			zw := gzips.Get().(*gzip.Writer)
			zw.Reset(w)
			defer func() {
				zw.Close()
				zw.Reset(nil)
				gzips.Put(zw)
			}()
			out = zw
		}
		enc := expfmt.NewEncoder(out, format)
		for _, mf := range fams {
			if err := enc.Encode(mf); err != nil {
				// The status is sent; all we can do is stop and say why.
				if opts.Logger != nil {
					opts.Logger.Error("metrics: encode failed", "family", mf.GetName(), "err", err)
				}
				return
			}
		}
		if c, ok := enc.(expfmt.Closer); ok {
			if err := c.Close(); err != nil && opts.Logger != nil {
				opts.Logger.Error("metrics: encode failed", "err", err)
			}
		}
	})
}

// acceptsGzip reports whether an Accept-Encoding header value allows gzip (q > 0).
func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		coding = strings.TrimSpace(coding)
		if !strings.EqualFold(coding, "gzip") && coding != "*" {
			continue
		}
		q := 1.0
		for _, p := range strings.Split(params, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					q = f
				}
			}
		}
		if q > 0 {
			return true
		}
	}
	return false
}

// WriteText writes the families of g in the text format 0.0.4, for tools and tests.
func WriteText(w io.Writer, g Gatherer) error {
	fams, err := g.Gather()
	if err != nil {
		return err
	}
	for _, mf := range fams {
		if _, err := expfmt.MetricFamilyToText(w, mf); err != nil {
			return fmt.Errorf("metrics: encode %s: %w", mf.GetName(), err)
		}
	}
	return nil
}
