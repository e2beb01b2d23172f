package middleware

import (
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/go-chi/chi/v5"
)

// UnmatchedRoute is the route label of every request that matched no route:
// a 404 or 405 from the router, including one from a mounted chi sub-router
// that matched nothing below its mount point.
const UnmatchedRoute = "<unmatched>"

// route is one value of the route label and the series recorded under it.
type route struct {
	name    string
	skip    bool
	methods [numMethods]atomic.Pointer[methodSeries] // nil until the first request
}

// routeTable maps the keys that one router produces to routes: for chi the
// context's RoutePatterns joined with NUL bytes (the list, not only its
// concatenation, decides whether a request ended in a mount), for ServeMux
// the Request.Pattern. Keys come from registered patterns only, so a table
// is bounded by the routes of the application, whatever paths clients send.
type routeTable struct {
	owner *chi.Mux // the root chi router of these keys; nil for ServeMux (or another chi.Routes)
	m     atomic.Pointer[map[string]*route]
	ids   idCache // in front of m
}

func (t *routeTable) init(owner *chi.Mux) {
	t.owner = owner
	t.m.Store(&map[string]*route{})
}

// storeLocked adds key to t. in.mu must be held.
func (t *routeTable) storeLocked(key string, rt *route) {
	old := *t.m.Load()
	next := make(map[string]*route, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[key] = rt
	t.m.Store(&next)
}

// namedLocked returns the route called name, creating it. in.mu must be
// held (or in not yet shared).
func (in *instrumenter) namedLocked(name string) *route {
	rt := in.byName[name]
	if rt == nil {
		rt = &route{name: name, skip: in.skip[name]}
		in.byName[name] = rt
	}
	return rt
}

// route returns the route r matched, read after the handler returned: chi's
// if chi routed the request, else net/http ServeMux's (Go 1.22+), else
// UnmatchedRoute. rw lends its scratch buffer; code is the recorded status.
func (in *instrumenter) route(r *http.Request, rw *responseWriter, code int) *route {
	if rctx := chi.RouteContext(r.Context()); rctx != nil {
		return in.chiRoute(rctx, rw)
	}
	if r.Pattern != "" {
		return in.muxRoute(r, code)
	}
	return in.unmatched
}

// chiRoute finds the route of chi's context without building the pattern:
// chi's RoutePattern joins (and so allocates) once a request has gone
// through a Mount. A pattern list seen before is found by the identity of
// its strings (idCache); otherwise the lookup key is built in a reused
// buffer, and a map index with string(buf) does not allocate.
func (in *instrumenter) chiRoute(rctx *chi.Context, rw *responseWriter) *route {
	pats := rctx.RoutePatterns
	if len(pats) == 0 {
		return in.unmatched
	}
	owner, _ := rctx.Routes.(*chi.Mux)
	if t := in.chiTable(owner); t != nil {
		if rt := t.ids.get(pats); rt != nil {
			return rt
		}
		m := *t.m.Load()
		if len(pats) == 1 {
			if rt, ok := m[pats[0]]; ok {
				t.ids.put(pats, rt)
				return rt
			}
		} else {
			b := append(rw.scratch[:0], pats[0]...)
			for _, p := range pats[1:] {
				b = append(b, 0)
				b = append(b, p...)
			}
			rw.scratch = b
			if rt, ok := m[string(b)]; ok {
				t.ids.put(pats, rt)
				return rt
			}
		}
	}
	return in.newChiRoute(rctx, owner)
}

// chiTable returns the table of the root router owner, nil if it has none
// yet. Once there are maxChiTables tables (routers made on the fly, say),
// routers without one share the table of owner nil rather than grow the
// list without bound; keys of different routers may then get the label
// the first one gave.
func (in *instrumenter) chiTable(owner *chi.Mux) *routeTable {
	tables := *in.chiTables.Load()
	var shared *routeTable
	for _, t := range tables {
		if t.owner == owner {
			return t
		}
		if t.owner == nil {
			shared = t
		}
	}
	if len(tables) >= maxChiTables {
		return shared
	}
	return nil
}

// maxChiTables bounds the number of chi root routers with a table of their
// own.
const maxChiTables = 16

// newChiRoute is chiRoute's slow path, taken once per key and router.
func (in *instrumenter) newChiRoute(rctx *chi.Context, owner *chi.Mux) *route {
	key := strings.Join(rctx.RoutePatterns, "\x00")
	name := rctx.RoutePattern()
	if rctx.Routes != nil && endsInMount(rctx.Routes, rctx.RoutePatterns) {
		name = UnmatchedRoute
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	t := in.chiTable(owner)
	if t == nil {
		tables := *in.chiTables.Load()
		if len(tables) >= maxChiTables {
			owner = nil // the shared table, created here
		}
		t = new(routeTable)
		t.init(owner)
		next := append(tables[:len(tables):len(tables)], t)
		in.chiTables.Store(&next)
	}
	if rt, ok := (*t.m.Load())[key]; ok {
		return rt
	}
	rt := in.namedLocked(name)
	t.storeLocked(key, rt)
	return rt
}

// endsInMount reports whether the last of pats, walked from the root router
// down through its sub-routers, is the pattern under which a chi router is
// mounted. chi appends a sub-router's pattern only when the sub-router
// matched, so such a request matched nothing inside it: a 404 or 405 that
// would otherwise be labelled with the mount pattern ("/api/*").
func endsInMount(root chi.Routes, pats []string) bool {
	routes := root
	for i, p := range pats {
		sub, ok := mountedAt(routes, p)
		if !ok {
			return false
		}
		if i == len(pats)-1 {
			return sub != nil
		}
		if sub == nil {
			return false
		}
		routes = sub
	}
	return false
}

// mountedAt finds pattern p among rs's routes and returns the router mounted
// there (nil for an endpoint). Mount("/api", sub) registers "/api/*" and two
// hidden stubs, "/api" and "/api/", that lead to the same sub-router.
func mountedAt(rs chi.Routes, p string) (sub chi.Routes, found bool) {
	routes := rs.Routes()
	for _, rt := range routes {
		if rt.Pattern == p {
			return rt.SubRoutes, true
		}
	}
	for _, rt := range routes {
		if rt.SubRoutes != nil && (rt.Pattern == p+"*" || rt.Pattern == p+"/*") {
			return rt.SubRoutes, true
		}
	}
	return nil, false
}

// muxRoute returns the route of a ServeMux pattern: the pattern without its
// method and host ("GET example.com/users/{id}" is "/users/{id}").
func (in *instrumenter) muxRoute(r *http.Request, code int) *route {
	p := r.Pattern
	if code == http.StatusTemporaryRedirect && r.Method == http.MethodConnect {
		// ServeMux redirects a CONNECT request for /x/y to /x/y/ when a
		// pattern matches only the latter, and reports the redirect's path
		// as the pattern: that is the client's path, not a route.
		return in.unmatched
	}
	pats := [1]string{p}
	if rt := in.muxTable.ids.get(pats[:]); rt != nil {
		return rt
	}
	if rt, ok := (*in.muxTable.m.Load())[p]; ok {
		in.muxTable.ids.put(pats[:], rt)
		return rt
	}
	name := UnmatchedRoute
	if i := strings.IndexByte(p, '/'); i >= 0 {
		// Neither a method nor a host contains a slash.
		name = p[i:]
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if rt, ok := (*in.muxTable.m.Load())[p]; ok {
		return rt
	}
	rt := in.namedLocked(name)
	in.muxTable.storeLocked(p, rt)
	return rt
}
