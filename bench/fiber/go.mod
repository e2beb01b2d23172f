// herd-bench's Fiber peer, a module of its own so that herd does not depend
// on Fiber or fasthttp.
//
// Fiber is pinned at v2.52.15: the module proxy this project is built with
// serves only that older copy of Fiber v2 (newer v2 releases may exist
// upstream). It requires fasthttp v1.51.0, so this peer runs an older
// fasthttp than bench/fasthttp (v1.79.0).
module github.com/herdhttp/herd/bench/fiber

go 1.26.0

require github.com/gofiber/fiber/v2 v2.52.15

require (
	github.com/andybalholm/brotli v1.1.0 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/klauspost/compress v1.17.9 // indirect
	github.com/mattn/go-colorable v0.1.13 // indirect
	github.com/mattn/go-isatty v0.0.20 // indirect
	github.com/mattn/go-runewidth v0.0.16 // indirect
	github.com/rivo/uniseg v0.2.0 // indirect
	github.com/valyala/bytebufferpool v1.0.0 // indirect
	github.com/valyala/fasthttp v1.51.0 // indirect
	github.com/valyala/tcplisten v1.0.0 // indirect
	golang.org/x/sys v0.28.0 // indirect
)
