package metrics

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
)

// vec is the child cache shared by every vector type: label values -> handle.
// Lookups of existing children take a read lock and allocate nothing.
type vec[T any] struct {
	r    *Registry
	d    *desc
	make func(names, values []string) (*T, error) // creates a child's cells
	noop *T                                       // returned when a child cannot be created
	mu   sync.RWMutex                             // guards kids
	kids map[uint64][]*kid[T]
}

type kid[T any] struct {
	values []string
	h      *T
}

func newVec[T any](r *Registry, d *desc, mk func(names, values []string) (*T, error), noop *T) *vec[T] {
	return &vec[T]{r: r, d: d, make: mk, noop: noop, kids: make(map[uint64][]*kid[T])}
}

func hashValues(values []string) uint64 {
	h := uint64(14695981039346656037)
	for _, v := range values {
		for i := 0; i < len(v); i++ {
			h ^= uint64(v[i])
			h *= 1099511628211
		}
		h ^= 0xff
		h *= 1099511628211
	}
	return h
}

// get returns the child for values, creating it (and its file entries) on first use.
func (v *vec[T]) get(values []string) (*T, error) {
	if len(values) != len(v.d.labelNames) {
		return v.noop, fmt.Errorf("metrics: %s: got %d label values for %d label names %q",
			v.d.name, len(values), len(v.d.labelNames), v.d.labelNames)
	}
	h := hashValues(values)
	v.mu.RLock()
	for _, k := range v.kids[h] {
		if slices.Equal(k.values, values) {
			v.mu.RUnlock()
			return k.h, nil
		}
	}
	v.mu.RUnlock()
	return v.create(h, slices.Clone(values))
}

func (v *vec[T]) create(h uint64, values []string) (*T, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, k := range v.kids[h] {
		if slices.Equal(k.values, values) {
			return k.h, nil
		}
	}
	written, cloned := values, false
	for i, s := range values {
		if !utf8.ValidString(s) {
			// Keys are JSON text: invalid UTF-8 is stored with U+FFFD in its place.
			if !cloned {
				written, cloned = slices.Clone(values), true
			}
			written[i] = strings.ToValidUTF8(s, "\uFFFD")
		}
	}
	names, vals := v.d.series(written)
	c, err := v.make(names, vals)
	if err != nil {
		return v.noop, err
	}
	v.kids[h] = append(v.kids[h], &kid[T]{values: values, h: c})
	return c, nil
}

// with is get for handles that cannot return an error: the error is counted and logged
// and a no-op handle returned; the next call tries again.
func (v *vec[T]) with(values []string) *T {
	c, err := v.get(values)
	if err != nil {
		v.r.writeError(err)
	}
	return c
}
