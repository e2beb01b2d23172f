package metrics

// idTable numbers objects with small ids, so that an array of references to them can hold
// 4-byte ids, which the garbage collector does not scan, instead of pointers. Id 0 is never
// given: it stands for none, and ptrs[0] is nil. The ids of dropped objects are given
// again, so whoever holds one must stop using it when it is dropped.
type idTable[T any] struct {
	ptrs []*T     // by id
	free []uint32 // ids dropped, to give again
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
