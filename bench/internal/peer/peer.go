package peer

import (
	"context"
	"net/http"
	"os/signal"
	"syscall"
	"time"
)

// HelloBody is the body of GET /hello, the same as examples/hello's.
const HelloBody = `{"msg":"hello"}` + "\n"

// Serve runs h on bind until SIGTERM or SIGINT, then shuts down.
func Serve(bind string, h http.Handler) error {
	srv := &http.Server{Addr: bind, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}
