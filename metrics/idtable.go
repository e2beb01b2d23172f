package metrics

// idTable allocates objects in slabs and numbers them with small ids, so that an array of
// references to them can hold 4-byte ids, which the garbage collector does not scan,
// instead of pointers. Id 0 is never given: it stands for none, and ptrs[0] is nil. The
// ids of dropped objects are given again, so whoever holds one must stop using it when it
// is dropped.
type idTable[T any] struct {
	chunk int      // objects allocated at once (at least 128)
	slab  []T      // where the next objects are allocated
	ptrs  []*T     // by id
	free  []uint32 // ids dropped, to give again
}

// alloc returns a new zero object and its id. Objects are allocated a slab at a time, in
// the order they are asked for (a merge then walks them almost sequentially).
func (t *idTable[T]) alloc() (*T, uint32) {
	if len(t.slab) == 0 {
		t.slab = make([]T, max(t.chunk, 128))
	}
	p := &t.slab[0]
	t.slab = t.slab[1:]
	return p, t.add(p)
}

// add gives p an id.
func (t *idTable[T]) add(p *T) uint32 {
	if n := len(t.free); n > 0 {
		id := t.free[n-1]
		t.free = t.free[:n-1]
		t.ptrs[id] = p
		return id
	}
	if len(t.ptrs) == 0 {
		t.ptrs = append(t.ptrs, nil) // id 0: none
	}
	t.ptrs = append(t.ptrs, p)
	return uint32(len(t.ptrs) - 1)
}

// drop gives up id (0 is ignored) and lets go of its object.
func (t *idTable[T]) drop(id uint32) {
	if id == 0 || t.ptrs[id] == nil {
		return
	}
	t.ptrs[id] = nil
	t.free = append(t.free, id)
}
