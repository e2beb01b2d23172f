package expo

import "math"

// AppendBucket appends a histogram bucket sample's name, its labels
// (rendered, without braces; empty: none) with the le label whose value is
// the rendered bound le, and the space before its value.
func AppendBucket(b []byte, name, labels, le string) []byte {
	b = append(b, name...)
	b = append(b, "_bucket{"...)
	if labels != "" {
		b = append(b, labels...)
		b = append(b, ',')
	}
	b = append(b, `le="`...)
	b = append(b, le...)
	return append(b, '"', '}', ' ')
}

// maxBounds bounds a Bounds cache: histograms share a few bounds, so more
// than this only comes from a hostile or churning source, and the cache
// starts again.
const maxBounds = 4096

// Bounds caches rendered histogram bounds by their float bits: formatting a
// fraction is the costly part of rendering a bucket, and histograms share a
// few bounds. The zero value is ready to use; it is not safe for concurrent
// use.
type Bounds struct {
	m map[uint64]*[2]string // [text, OpenMetrics]
}

// Texts returns the bound le rendered in the text format and in
// OpenMetrics (AppendFloat's two forms).
func (c *Bounds) Texts(le float64) *[2]string {
	bits := math.Float64bits(le)
	t := c.m[bits]
	if t == nil {
		if c.m == nil || len(c.m) >= maxBounds {
			c.m = make(map[uint64]*[2]string)
		}
		t = &[2]string{string(AppendFloat(nil, le, false)), string(AppendFloat(nil, le, true))}
		c.m[bits] = t
	}
	return t
}

// Get returns le rendered in OpenMetrics if om, else in the text format.
func (c *Bounds) Get(le float64, om bool) string {
	t := c.Texts(le)
	if om {
		return t[1]
	}
	return t[0]
}
