package metrics

import (
	"cmp"
	"slices"

	dto "github.com/prometheus/client_model/go"

	"github.com/herdhttp/herd/mmapstore"
)

// The merge follows client_python's MultiProcessCollector (mmap-format.md, "How the reader
// merges"): counters and summaries are summed over every file, live or dead; histogram
// buckets are summed by their float bound and made cumulative, _count being the total;
// gauges are merged per their mode. Type, help and gauge mode of a family come from the
// first file (in file name order) that has it. Unlike Python, the output is sorted: families
// by name, series by labels.
//
// A scrape must cost little however many workers there are, so the merger keeps its work
// between scrapes: what it derives from a key (the reader interns keys, so a *Key pointer
// identifies one), the aggregation slot of every series, and for every file, by entry
// position, the key, role and slot resolved there. A steady-state scrape compares one
// pointer and does an addition per sample (no map lookup, no label string), then builds the
// output in one batch per family, in an order sorted only when series were added.

// merger merges scanned files into metric families. Not safe for concurrent use.
//
// The cache's invariant. A merge is right when every sample is applied with the operation
// and into the series slot that resolving its key afresh would give. The merger reuses what
// it resolved for a file's entry positions (fileCache.ops and sas) without looking at the
// keys, and that is right because it does so only while both of these hold:
//
//  1. fc.seq == f.Seq != 0. The Reader gives one Seq to one list of entries: the same key
//     at every position both scans have, since entries are only ever appended to a file.
//     A file replaced at its path (another inode, even of the same size, by the same
//     worker slot's successor) or whose entries start over gets a new Seq, so positions
//     resolved for the old one are never applied to the new one. (An entry rewritten in
//     place with another key keeps the Seq: no writer of the format does that.)
//  2. fc.stamp == m.stamp. Every cached slot is still the family's slot for that key:
//     m.stamp is bumped whenever slots are dropped anywhere (touch, when the first file of
//     a family now says another type or gauge mode and the family's series start over;
//     prune, when series or families not seen lately are forgotten), so a file resolved
//     under the current stamp points only at live slots.
//
// Below the file cache, a keyInfo caches its slot for one (family, fa.epoch, kind): epoch
// is bumped with the stamp whenever that family's slots are dropped, and kind follows the
// type and mode, so a key resolved again after a change finds or makes the new slot.
//
// gen numbers the merges. A series, family or file whose gen is not the current one was
// not seen in this merge: a series' values are stale (reset when first touched, and the
// series left out of the output if not touched), and what is not seen for 64 merges is
// forgotten by prune.
type merger struct {
	keys  map[*mmapstore.Key]*keyInfo
	fams  map[string]*famAgg
	files map[string]*fileCache // by path
	gen   uint64                // the current merge (see the invariant above)
	// stamp changes whenever a cached series slot may have become invalid (a family changed
	// type or mode, or pruning dropped something); file caches of another stamp are
	// resolved again.
	stamp   uint64
	touched []*famAgg // families of the current merge, in order of first appearance
	// The series and key information, allocated in slabs and numbered. The file caches
	// hold ids, not pointers: 4 bytes an entry instead of 8, and nothing for the collector
	// to scan (16 files of 5,000 entries would otherwise hold 160,000 pointers). The ids
	// of forgotten series and keys are given again.
	series idTable[seriesAgg]
	kinfos idTable[keyInfo]
	// reserved lists the families of the last merge left out because they use the name
	// of one of the DirGatherer's own families, or one of reservedNames.
	reserved      []string
	reservedNames []string  // GathererOpts.Reserved
	out           []*famAgg // end's result, reused
	// prev is the file merged last in this merge, with its type and mode: the files of one
	// directory usually hold the same keys in the same order (the workers of one app), so
	// resolve takes an entry's resolution from the same position there when the key is the
	// same (see resolve).
	prev               *fileCache
	prevType, prevMode string
}

// fileCache is what the merger resolved for each entry of one file, by position. The
// reader only ever appends to a file's entries and says so with FileSamples.Seq, so in the
// steady state a sample costs an operation code and an addition into its series: no key
// comparison, no map lookup. The per-entry arrays are parallel, and only ops and sas are
// read for every sample (5 bytes an entry), to keep a scrape's memory traffic small.
type fileCache struct {
	gen   uint64 // the merge that last saw the file
	seq   uint64 // the FileSamples.Seq the entries were resolved for; 0: resolve every time
	stamp uint64 // the merger's stamp when they were resolved
	fams  []famRun
	ops   []op
	sas   []uint32 // series ids (merger.series); 0 where ops is opNone
	kis   []uint32 // key information ids (merger.kinfos), for bucket bounds and pruning; 0: none
	hints []uint8  // opBucket: where the bucket was in the series' buckets last time
}

// famRun is a family the file holds, with the help text of its first entry there.
type famRun struct {
	fa   *famAgg
	help string
}

// op is what a sample does to its series.
type op uint8

const (
	opNone       op = iota
	opAdd           // v += value (counters, summary counts, sum gauges)
	opSum           // sum += value (histogram and summary sums)
	opBucket        // the bucket of the key's le += value
	opMin           // v = min(v, value)
	opMax           // v = max(v, value)
	opLast          // v = value (the all gauge modes: one series per file)
	opMostRecent    // v = value with the greatest timestamp
)

func newMerger() *merger {
	return &merger{keys: make(map[*mmapstore.Key]*keyInfo), fams: make(map[string]*famAgg),
		files: make(map[string]*fileCache), stamp: 1,
		series: idTable[seriesAgg]{chunk: 256}, kinfos: idTable[keyInfo]{chunk: 128}}
}

// merge merges files (which it sorts by path) into sorted families.
func (m *merger) merge(files []mmapstore.FileSamples) []*dto.MetricFamily {
	byPath := func(a, b mmapstore.FileSamples) int { return cmp.Compare(a.Path, b.Path) }
	if !slices.IsSortedFunc(files, byPath) {
		slices.SortFunc(files, byPath)
	}
	m.begin()
	for i := range files {
		m.addFile(&files[i])
	}
	return m.finish()
}

// begin starts a merge; addFile is then called for every file in path order, and finish
// returns the result.
func (m *merger) begin() {
	m.gen++
	m.touched = m.touched[:0]
	m.prev = nil
}

// addFile merges one file's samples. f is not kept.
func (m *merger) addFile(f *mmapstore.FileSamples) {
	fc := m.files[f.Path]
	if fc == nil {
		fc = &fileCache{}
		m.files[f.Path] = fc
	}
	fc.gen = m.gen
	valid := f.Seq != 0 && fc.seq == f.Seq && fc.stamp == m.stamp
	if valid {
		for _, r := range fc.fams {
			m.touch(r.fa, f, r.help) // may change the stamp
		}
		valid = fc.stamp == m.stamp
	}
	if !valid {
		clear(fc.fams) // drop the references before the arrays are refilled
		fc.seq, fc.fams = f.Seq, fc.fams[:0]
		fc.ops, fc.sas, fc.kis, fc.hints = fc.ops[:0], fc.sas[:0], fc.kis[:0], fc.hints[:0]
	}
	if len(fc.ops) < len(f.Samples) {
		m.resolve(fc, f)
	}
	m.prev, m.prevType, m.prevMode = fc, f.Type, f.Mode
	n := len(f.Samples)
	ops, sas, kis, hints, samples := fc.ops[:n], fc.sas[:n], fc.kis[:n], fc.hints[:n], f.Samples[:n]
	gen, series := m.gen, m.series.ptrs
	for i, o := range ops {
		if o == opNone {
			continue
		}
		sa, s := series[sas[i]], &samples[i]
		if sa.gen != gen {
			sa.gen, sa.v, sa.ts, sa.has, sa.sum, sa.buckets = gen, 0, 0, false, 0, sa.buckets[:0]
		}
		v := s.Value
		switch o {
		case opAdd:
			sa.v += v
			sa.has = true
		case opSum:
			sa.sum += v
		case opBucket:
			// Buckets come in the same order at every merge, so the bucket is usually
			// where it was the last time.
			le := m.kinfos.ptrs[kis[i]].le
			if j := int(hints[i]); j < len(sa.buckets) && sa.buckets[j].le == le {
				sa.buckets[j].n += v
			} else {
				hints[i] = uint8(min(sa.addBucket(le, v), 255))
			}
		case opMin:
			if !sa.has || v < sa.v {
				sa.v = v
			}
			sa.has = true
		case opMax:
			if !sa.has || v > sa.v {
				sa.v = v
			}
			sa.has = true
		case opLast:
			sa.v, sa.has = v, true
		case opMostRecent:
			if s.Timestamp > sa.ts { // a gauge never set (timestamp 0) yields nothing
				sa.v, sa.ts, sa.has = v, s.Timestamp, true
			}
		}
	}
}

// addBucket adds v to the bucket of bound le, and returns its index in sa.buckets.
func (sa *seriesAgg) addBucket(le, v float64) int {
	for i := range sa.buckets {
		if sa.buckets[i].le == le {
			sa.buckets[i].n += v
			return i
		}
	}
	sa.buckets = append(sa.buckets, bucket{le, v})
	return len(sa.buckets) - 1
}

// finish builds the families of the merge and forgets what was not seen lately.
func (m *merger) finish() []*dto.MetricFamily {
	fas := m.end()
	out := make([]*dto.MetricFamily, 0, len(fas))
	for _, fa := range fas {
		if mf := fa.build(m.gen); mf != nil {
			out = append(out, mf)
		}
	}
	return out
}

// end ends a merge: it returns the families to expose, sorted by exposed name (the first of
// several with one name, in order of first appearance), and forgets what was not seen
// lately. The families' series stay valid until the next begin.
func (m *merger) end() []*famAgg {
	out := m.out[:0]
	m.reserved = m.reserved[:0]
	for _, fa := range m.touched {
		switch {
		case selfFamily(fa.family) || slices.Contains(m.reservedNames, fa.family) || slices.Contains(m.reservedNames, fa.name):
			m.reserved = append(m.reserved, fa.family)
		case fa.name != "" && fa.hasOutput(m.gen):
			out = append(out, fa)
		}
	}
	clear(m.touched)
	m.touched = m.touched[:0]
	for path, fc := range m.files {
		if fc.gen != m.gen {
			delete(m.files, path)
		}
	}
	slices.SortStableFunc(out, func(a, b *famAgg) int { return cmp.Compare(a.name, b.name) })
	out = slices.CompactFunc(out, func(a, b *famAgg) bool { return a.name == b.name })
	clear(out[len(out):cap(out)])
	m.out = out
	m.prune()
	return out
}

// touch makes this merge's first file holding family fa decide its type, mode and help.
func (m *merger) touch(fa *famAgg, f *mmapstore.FileSamples, help string) {
	if fa.gen == m.gen {
		return
	}
	if fa.typ != f.Type || fa.mode != GaugeMode(f.Mode) {
		// New, or its first file now says another type or mode: the series slots of the
		// old one do not apply.
		m.dropSeries(fa)
		fa.sorted = fa.sorted[:0]
		fa.epoch++
		m.stamp++
		fa.name = exposedName(fa.family, f.Type)
	}
	fa.gen, fa.typ, fa.mode, fa.help = m.gen, f.Type, GaugeMode(f.Mode), help
	m.touched = append(m.touched, fa)
}

// resolve finds (creating as needed) the family, key information, operation and series
// slot of the entries of f that fc has not resolved yet, and appends them to fc.
func (m *merger) resolve(fc *fileCache, f *mmapstore.FileSamples) {
	var cur *famAgg // the family of the previous entry: files hold families in runs
	if n := len(f.Samples); cap(fc.ops) < n {
		// Room for every entry at once (a file is usually resolved whole, once).
		fc.ops, fc.sas, fc.kis = slices.Grow(fc.ops, n-len(fc.ops)), slices.Grow(fc.sas, n-len(fc.sas)), slices.Grow(fc.kis, n-len(fc.kis))
		fc.hints = slices.Grow(fc.hints, n-len(fc.hints))
	}
	// The previous file's resolution of the same key at the same position is this file's
	// too when both files have the same type and mode and no slot was dropped since (same
	// stamp): the operation depends only on those and the key, and the slot too, except for
	// the gauge modes that keep one series per file.
	p := m.prev
	if p == nil || p == fc || p.stamp != m.stamp || f.Type != m.prevType || f.Mode != m.prevMode {
		p = nil
	}
	for _, s := range f.Samples[len(fc.ops):] {
		i, k := len(fc.ops), s.Key // the entry's position, and key
		if k == nil {
			fc.ops, fc.sas, fc.kis, fc.hints = append(fc.ops, opNone), append(fc.sas, 0), append(fc.kis, 0), append(fc.hints, 0)
			continue
		}
		if cur == nil || cur.family != k.Family {
			cur = m.fams[k.Family]
			if cur == nil {
				cur = &famAgg{family: k.Family, series: make(map[seriesKey]*seriesAgg)}
				m.fams[k.Family] = cur
			}
			m.touch(cur, f, k.Help)
			if !slices.ContainsFunc(fc.fams, func(r famRun) bool { return r.fa == cur }) {
				fc.fams = append(fc.fams, famRun{cur, k.Help})
			}
			if p != nil && p.stamp != m.stamp { // touch dropped slots
				p = nil
			}
		}
		if p != nil && i < len(p.kis) && p.kis[i] != 0 {
			if ki := m.kinfos.ptrs[p.kis[i]]; ki.key == k && (p.ops[i] == opNone || cur.kindFor() != kindPerFile) {
				ki.seen = m.gen
				fc.ops, fc.sas, fc.kis, fc.hints = append(fc.ops, p.ops[i]), append(fc.sas, p.sas[i]), append(fc.kis, p.kis[i]), append(fc.hints, 0)
				continue
			}
		}
		ki := m.keys[k]
		if ki == nil {
			ki = deriveKey(m.newKeyInfo(), k)
			m.keys[k] = ki
		}
		ki.seen = m.gen
		o, sid := opNone, uint32(0)
		if f.Type == cur.typ { // else one name written as two types: the first file's type wins
			if o = opFor(cur, role(cur.typ, ki)); o != opNone {
				sid = cur.slot(m, ki, f.ID).id
			}
		}
		fc.ops, fc.sas, fc.kis, fc.hints = append(fc.ops, o), append(fc.sas, sid), append(fc.kis, ki.id), append(fc.hints, 0)
	}
	fc.stamp = m.stamp
}

// prune forgets keys, series and families not seen lately, so that memory stays bounded
// when series or files come and go.
func (m *merger) prune() {
	if m.gen%64 != 0 {
		return
	}
	// Keys still cached for a file are in use even if no entry was resolved lately.
	for _, fc := range m.files {
		for _, id := range fc.kis {
			if id != 0 {
				m.kinfos.ptrs[id].seen = m.gen
			}
		}
	}
	for k, ki := range m.keys {
		if m.gen-ki.seen > 64 {
			delete(m.keys, k)
			m.kinfos.drop(ki.id)
			*ki = keyInfo{} // its slab may live on: keep nothing alive
		}
	}
	for name, fa := range m.fams {
		if m.gen-fa.gen > 64 {
			m.dropSeries(fa)
			delete(m.fams, name)
			m.stamp++
			continue
		}
		stale := false
		for sk, sa := range fa.series {
			if m.gen-sa.gen > 64 {
				delete(fa.series, sk)
				m.series.drop(sa.id)
				stale = true
			}
		}
		if stale {
			fa.sorted = slices.DeleteFunc(fa.sorted, func(sa *seriesAgg) bool { return m.gen-sa.gen > 64 })
			fa.epoch++ // cached slots may point at deleted series
			m.stamp++
		}
	}
}
