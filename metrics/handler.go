package metrics

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/herdhttp/herd/internal/expo"
	dto "github.com/prometheus/client_model/go"
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
	// accepts gzip, at gzip.BestSpeed: for a scrape of 16 x 5,000 series, a body a tenth
	// larger than at the default level for a quarter of the CPU (BenchmarkScrapeGzip).
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
// (ending in "# EOF") and delimited protobuf; gzip (at gzip.BestSpeed) when the scraper
// accepts it. Every request gathers anew, and the body is written at once, with a
// Content-Length. Families come out in g's order (sorted, for herd's gatherers). A family
// that cannot be encoded in the negotiated format (OpenMetrics 1.0 has no histogram with a
// fractional count) is left out and logged.
//
// When g is a DirGatherer, or Gatherers holding one DirGatherer (as herd's master serves its
// workers' files beside its own families), text and OpenMetrics scrapes are rendered straight
// from the merged files, with each family's and series' names and labels rendered once and
// kept across scrapes: the same bytes as encoding the gathered families with expfmt, at a
// fraction of the cost. Protobuf goes through the gathered families. When g is a Renderer,
// text and OpenMetrics scrapes render the families of its Beside as above and append the
// Renderer's own, pre-rendered.
func Handler(g Gatherer, opts HandlerOpts) http.Handler {
	h := &handler{g: g, inner: g, opts: opts, free: make(chan *exposer, 2)}
	if r, ok := g.(Renderer); ok {
		h.r, h.inner = r, r.Beside()
	}
	h.dir, h.dirAt = fastGatherer(h.inner)
	return h
}

type handler struct {
	g     Gatherer
	r     Renderer // g, if it renders its own families
	inner Gatherer // g, or r's Beside (may be nil)
	opts  HandlerOpts
	dir   *DirGatherer // rendered directly, if not nil
	dirAt int          // its index in inner, a Gatherers; -1 if inner is dir
	free  chan *exposer
}

// fastGatherer returns the DirGatherer that a scrape of g renders directly, and its index in
// g (-1 if g is that DirGatherer), or nil.
func fastGatherer(g Gatherer) (*DirGatherer, int) {
	switch g := g.(type) {
	case *DirGatherer:
		return g, -1
	case Gatherers:
		var dir *DirGatherer
		at := -1
		for i, x := range g {
			if d, ok := x.(*DirGatherer); ok {
				if dir != nil {
					return nil, -1 // twice (or two): the general path
				}
				dir, at = d, i
			}
		}
		return dir, at
	}
	return nil, -1
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	format := expfmt.NegotiateAccept(r.Header, offered[:]...)
	e := h.exposer()
	defer h.release(e)
	e.reset(format)
	var err error
	switch ft := format.FormatType(); {
	case h.dir != nil && (ft == expfmt.TypeTextPlain || ft == expfmt.TypeOpenMetrics):
		err = h.renderFast(e, ft == expfmt.TypeOpenMetrics)
	case h.r != nil && (ft == expfmt.TypeTextPlain || ft == expfmt.TypeOpenMetrics):
		err = h.renderBeside(e)
	default:
		err = h.renderGathered(e)
	}
	if err != nil {
		http.Error(w, "metrics: gather failed: "+err.Error(), http.StatusInternalServerError)
		return
	}
	if format.FormatType() == expfmt.TypeOpenMetrics {
		e.b = append(e.b, "# EOF\n"...) // expfmt.FinalizeOpenMetrics
	}
	hdr := w.Header()
	hdr.Set("Content-Type", string(format))
	hdr.Add("Vary", "Accept-Encoding")
	body := e.b
	if !h.opts.DisableCompression && acceptsGzip(r.Header.Get("Accept-Encoding")) {
		body = e.gzip()
		hdr.Set("Content-Encoding", "gzip")
	}
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
}

// gathered reports a gather error: nil if the scrape goes on (with families, and
// ContinueOnError), else the error to answer with.
func (h *handler) gathered(err error, families int) error {
	if err == nil {
		return nil
	}
	if h.opts.Logger != nil {
		h.opts.Logger.Error("metrics: gather failed", "err", err)
	}
	if !h.opts.ContinueOnError || families == 0 {
		return err
	}
	return nil
}

// renderGathered gathers g and encodes its families with expfmt.
func (h *handler) renderGathered(e *exposer) error {
	fams, err := h.g.Gather()
	if err := h.gathered(err, len(fams)); err != nil {
		return err
	}
	for _, mf := range fams {
		e.encode(mf, h.opts.Logger)
	}
	return nil
}

// renderBeside renders a Renderer's families and those its Beside gathers, when that holds
// no DirGatherer.
func (h *handler) renderBeside(e *exposer) error {
	var fams []family
	if h.inner != nil {
		mfs, err := h.inner.Gather()
		if err := h.gathered(err, len(mfs)); err != nil {
			return err
		}
		fams = dtoSource(h.inner, mfs, nil).fams
	}
	fams = appendRendered(h.r, e, fams)
	sortFamilyList(fams)
	for i := range fams {
		if f := &fams[i]; f.pre != nil {
			e.b = append(e.b, f.pre...)
		} else {
			e.encode(f.mf, h.opts.Logger)
		}
	}
	return nil
}

// renderFast renders the DirGatherer's families from its merged state, and those of the
// other gatherers (if inner is Gatherers) joined with them as Gatherers.Gather joins them,
// and a Renderer's own families.
func (h *handler) renderFast(e *exposer, om bool) error {
	var srcs []source
	gs, _ := h.inner.(Gatherers)
	if h.dirAt >= 0 {
		// The other gatherers first: one of them may hold the DirGatherer too.
		srcs = make([]source, len(gs))
		for i, g := range gs {
			if i != h.dirAt {
				fams, err := g.Gather()
				srcs[i] = dtoSource(g, fams, err)
			}
		}
	}
	start := time.Now()
	h.dir.mu.Lock()
	defer h.dir.mu.Unlock()
	fams, err := h.dir.familiesLocked(start)
	if srcs != nil {
		srcs[h.dirAt] = source{fams: fams, checked: true, err: err}
		j := joiner{log: gs.onceLog()}
		fams, err = j.join(srcs)
		fams = append(fams, family{name: familiesDroppedName, mf: j.droppedFamily()})
	}
	if err := h.gathered(err, len(fams)); err != nil {
		return err
	}
	if h.r != nil {
		fams = appendRendered(h.r, e, fams)
	}
	sortFamilyList(fams)
	for i := range fams {
		f := &fams[i]
		if f.pre != nil {
			e.b = append(e.b, f.pre...)
			continue
		}
		if f.fa != nil {
			var ok bool
			if e.b, ok = f.fa.render(e.b, f.gen, om, &h.dir.les); ok {
				continue
			}
		}
		if mf := f.dto(); mf != nil {
			e.encode(mf, h.opts.Logger)
		}
	}
	return nil
}

// exposer is the buffers of one response.
type exposer struct {
	b      []byte         // the body
	pre    []byte         // a Renderer's families
	format expfmt.Format  // of enc
	enc    expfmt.Encoder // appends to b
	z      bytes.Buffer   // the gzipped body
	zw     *gzip.Writer
}

func (h *handler) exposer() *exposer {
	select {
	case e := <-h.free:
		return e
	default:
		return &exposer{}
	}
}

// release keeps e for a later scrape (a few, unless very large).
func (h *handler) release(e *exposer) {
	if cap(e.b) > 64<<20 {
		return
	}
	select {
	case h.free <- e:
	default:
	}
}

func (e *exposer) reset(format expfmt.Format) {
	e.b = e.b[:0]
	if e.enc == nil || e.format != format {
		e.format, e.enc = format, expfmt.NewEncoder(expo.Appender{B: &e.b}, format)
	}
}

// encode appends mf encoded by expfmt, or logs why it cannot be and leaves it out.
func (e *exposer) encode(mf *dto.MetricFamily, log *slog.Logger) {
	start := len(e.b)
	if err := e.enc.Encode(mf); err != nil {
		e.b = e.b[:start]
		if log != nil {
			log.Error("metrics: encode failed; family left out", "family", mf.GetName(), "err", err)
		}
	}
}

// gzip returns the body gzipped.
func (e *exposer) gzip() []byte {
	e.z.Reset()
	if e.zw == nil {
		e.zw, _ = gzip.NewWriterLevel(&e.z, gzip.BestSpeed)
	} else {
		e.zw.Reset(&e.z)
	}
	e.zw.Write(e.b)
	e.zw.Close()
	return e.z.Bytes()
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
