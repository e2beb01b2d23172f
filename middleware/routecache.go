package middleware

import (
	"slices"
	"sync/atomic"
	"unsafe"
)

// idCache sits in front of a routeTable's map. It finds the route of a
// list of patterns by the identity of their strings (data pointer and
// length) rather than by their bytes: routers hand out the strings of their
// own route tree (chi's RoutePatterns, ServeMux's Request.Pattern), the
// same ones at every request, so comparing a pointer or three replaces
// joining, hashing and comparing the bytes of the key.
//
// Equal pointers and lengths mean equal strings: an entry keeps its strings
// alive, so their memory cannot be reused for others. A list whose strings
// are made afresh at each request, or that collides with another in its
// slot, misses and takes the map: the cache is bounded (idSlots entries,
// each written once, lock-free) and never wrong.
type idCache struct {
	slots [idSlots]atomic.Pointer[idEntry]
}

// idSlots is the number of entries of an idCache, a power of two.
const idSlots = 64

type idEntry struct {
	pats []string
	rt   *route
}

// idSlot returns the slot of pats.
func idSlot(pats []string) uint64 {
	h := uint64(len(pats))
	for _, p := range pats {
		h ^= uint64(uintptr(unsafe.Pointer(unsafe.StringData(p)))) + uint64(len(p))
		h *= 0x9e3779b97f4a7c15
	}
	return h >> (64 - 6) // log2(idSlots) top bits
}

// get returns the route cached for pats, or nil.
func (c *idCache) get(pats []string) *route {
	e := c.slots[idSlot(pats)].Load()
	if e == nil || len(e.pats) != len(pats) {
		return nil
	}
	for i, p := range pats {
		q := e.pats[i]
		if len(p) != len(q) || unsafe.StringData(p) != unsafe.StringData(q) {
			return nil
		}
	}
	return e.rt
}

// put caches rt for pats if their slot is free. It allocates once per
// slot.
func (c *idCache) put(pats []string, rt *route) {
	s := &c.slots[idSlot(pats)]
	if s.Load() == nil {
		s.CompareAndSwap(nil, &idEntry{pats: slices.Clone(pats), rt: rt})
	}
}
