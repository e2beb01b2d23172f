package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	stdlog "log"
	"log/slog"
	"net/http"
	"strings"
)

// The application's TLS and HTTP versions. -tls-cert and -tls-key serve
// every TCP address over TLS 1.2 or later (unix sockets stay plain: a
// proxy on the same host speaks to them), HTTP/2 offered by ALPN unless
// -http2=false. The certificate is a keyPair (admintls.go), which reads the
// files again when they change, so a renewed certificate reaches new
// connections without a restart. -h2c adds cleartext HTTP/2 on the
// addresses without TLS (h2c.go).

// checkAppTLS checks the TLS settings of c against its listener l.
func (c Config) checkAppTLS(l appListener) error {
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("-tls-cert and -tls-key go together")
	}
	if c.H2C && c.DisableHTTP2 {
		return errors.New("-h2c serves HTTP/2 and -http2=false turns it off: give one of them")
	}
	if c.TLSCert == "" {
		return nil
	}
	for _, e := range l.addrs {
		if _, ok := e.(tcpEndpoint); ok {
			return nil
		}
	}
	return errors.New("-tls-cert: -bind has no TCP address to serve over TLS (unix sockets stay plain)")
}

// loadAppTLS loads the application's certificate, or returns nil without
// -tls-cert.
func loadAppTLS(c Config) (*keyPair, error) {
	if c.TLSCert == "" {
		return nil, nil
	}
	kp, err := loadKeyPair("TLS", c.TLSCert, c.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("-tls-cert/-tls-key: %w", err)
	}
	return kp, nil
}

// appTLSConfig is the TLS configuration of the application's TCP
// listeners. http.Server.ServeTLS keeps of NextProtos the protocols of its
// Protocols; "h2" must be there from the start all the same: the server
// sets HTTP/2 up once, at the first Serve or ServeTLS, and a Serve (a unix
// socket) that comes first sets it up only if the TLS configuration names
// "h2".
func appTLSConfig(kp *keyPair) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: kp.get, NextProtos: []string{"h2", "http/1.1"}}
}

// protocols are the HTTP versions the application is served with.
func protocols(c Config) *http.Protocols {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetHTTP2(!c.DisableHTTP2)
	p.SetUnencryptedHTTP2(c.H2C)
	return p
}

// serverErrorLog is net/http's error log for the application's server:
// failed TLS handshakes (scanners, clients that do not trust the
// certificate) are the clients' business and go at Debug, the rest
// (a handler's panic, accept errors) at Error.
func serverErrorLog(log *slog.Logger) *stdlog.Logger {
	return stdlog.New(errorLogWriter{log}, "", 0)
}

type errorLogWriter struct{ log *slog.Logger }

func (w errorLogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSuffix(string(p), "\n")
	level := slog.LevelError
	if strings.HasPrefix(msg, "http: TLS handshake error") {
		level = slog.LevelDebug
	}
	w.log.Log(context.Background(), level, msg)
	return len(p), nil
}
