// herd-bench's fasthttp peer, a module of its own so that herd does not
// depend on fasthttp.
module github.com/herdhttp/herd/bench/fasthttp

go 1.26.0

require github.com/valyala/fasthttp v1.79.0

require (
	github.com/klauspost/compress v1.20.4 // indirect
	github.com/molecule-man/go-brrr v1.3.1 // indirect
	github.com/valyala/bytebufferpool v1.0.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
)
