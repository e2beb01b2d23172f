package expo

import (
	"bytes"
	"math"
	"strconv"
	"unicode/utf8"
)

// AppendFloat appends f as expfmt writes a sample value: in the text format
// as strconv's shortest 'g' form; in OpenMetrics (om) the same with ".0"
// added to what looks like an integer. Integers below a million (the 'g'
// form writes larger ones with an exponent) are written without strconv's
// float formatting, which is the costly part of a scrape.
func AppendFloat(b []byte, f float64, om bool) []byte {
	switch {
	case f == 0: // and -0
		if om {
			return append(b, "0.0"...)
		}
		return append(b, '0')
	case math.IsNaN(f):
		return append(b, "NaN"...)
	case math.IsInf(f, 1):
		return append(b, "+Inf"...)
	case math.IsInf(f, -1):
		return append(b, "-Inf"...)
	case f > -1e6 && f < 1e6 && f == math.Trunc(f):
		b = strconv.AppendInt(b, int64(f), 10)
		if om {
			b = append(b, '.', '0')
		}
		return b
	}
	start := len(b)
	b = strconv.AppendFloat(b, f, 'g', -1, 64)
	if om && !bytes.ContainsAny(b[start:], "e.") {
		b = append(b, '.', '0')
	}
	return b
}

// AppendEscaped appends s with backslash and newline escaped, and double
// quotes too if quote (label values; help texts keep theirs).
func AppendEscaped(b []byte, s string, quote bool) []byte {
	start := 0 // s[start:i] needs no escaping
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(append(b, s[start:i]...), '\\', '\\')
		case c == '\n':
			b = append(append(b, s[start:i]...), '\\', 'n')
		case c == '"' && quote:
			b = append(append(b, s[start:i]...), '\\', '"')
		default:
			continue
		}
		start = i + 1
	}
	return append(b, s[start:]...)
}

// AppendSeries appends a sample's name, its suffix ("_total", "_bucket"...)
// and its rendered labels (without braces; empty: none), and the space
// before its value.
func AppendSeries(b []byte, name, suffix, labels string) []byte {
	b = append(b, name...)
	b = append(b, suffix...)
	if labels != "" {
		b = append(b, '{')
		b = append(b, labels...)
		b = append(b, '}')
	}
	return append(b, ' ')
}

// Appender is an io.Writer, with the methods expfmt looks for, that
// appends to *B.
type Appender struct{ B *[]byte }

// Write appends p.
func (a Appender) Write(p []byte) (int, error) {
	*a.B = append(*a.B, p...)
	return len(p), nil
}

// WriteString appends s.
func (a Appender) WriteString(s string) (int, error) {
	*a.B = append(*a.B, s...)
	return len(s), nil
}

// WriteByte appends c.
func (a Appender) WriteByte(c byte) error {
	*a.B = append(*a.B, c)
	return nil
}

// WriteRune appends r in UTF-8.
func (a Appender) WriteRune(r rune) (int, error) {
	n := len(*a.B)
	*a.B = utf8.AppendRune(*a.B, r)
	return len(*a.B) - n, nil
}
