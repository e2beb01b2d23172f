package server

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"
)

// adminSecurity is the optional protection of the admin listener: TLS
// (possibly mutual) and basic authentication. With both fields nil it
// serves plain, open HTTP.
//
// Why not prometheus/exporter-toolkit's web configuration file? It is the
// convention for exporters, but it would bring a YAML parser, x/crypto
// (bcrypt) and their dependencies into every herd binary for three
// settings. herd takes the same settings as flags (-admin-tls-cert,
// -admin-tls-key, -admin-tls-client-ca, -admin-basic-auth-file), hashes
// passwords with PBKDF2-SHA256 from the standard library, and reads the
// files again when they change, as exporter-toolkit does.
type adminSecurity struct {
	tls  *tls.Config // nil: plain HTTP
	cert *keyPair    // the certificate behind tls
	auth *basicAuth  // nil: no authentication
}

// newAdminSecurity loads and checks every file c names; errors are one line
// naming the flag. log (may be nil) receives reload failures later.
func newAdminSecurity(c Config) (*adminSecurity, error) {
	s := &adminSecurity{}
	if c.AdminTLSCert != "" {
		kp, err := newKeyPair(c.AdminTLSCert, c.AdminTLSKey)
		if err != nil {
			return nil, err
		}
		s.cert = kp
		s.tls = &tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: kp.get,
		}
		if c.AdminTLSClientCA != "" {
			pem, err := os.ReadFile(c.AdminTLSClientCA)
			if err != nil {
				return nil, fmt.Errorf("-admin-tls-client-ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("-admin-tls-client-ca: %s holds no PEM certificate", c.AdminTLSClientCA)
			}
			s.tls.ClientCAs = pool
			s.tls.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	if c.AdminBasicAuthFile != "" {
		a, err := newBasicAuth(c.AdminBasicAuthFile)
		if err != nil {
			return nil, err
		}
		s.auth = a
	}
	return s, nil
}

// setLogger sets where reload failures are reported.
func (s *adminSecurity) setLogger(log *slog.Logger) {
	if s.cert != nil {
		s.cert.log = log
	}
	if s.auth != nil {
		s.auth.log = log
	}
}

// reloadCheck is how often a file behind the admin listener's protection
// is checked for a change (at most, and only when a client connects).
const reloadCheck = time.Second

// keyPair serves a certificate and key from two files, loading them again
// when either file changes. A reload that fails keeps the previous pair and
// is logged.
type keyPair struct {
	certFile, keyFile string
	label             string       // what the pair is for, first in its log lines
	log               *slog.Logger // nil: reload failures are not logged

	mu      sync.Mutex // guards the fields below
	cert    *tls.Certificate
	stamps  [2]fileStamp
	checked time.Time
}

func newKeyPair(certFile, keyFile string) (*keyPair, error) {
	kp, err := loadKeyPair("admin TLS", certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("-admin-tls-cert/-admin-tls-key: %w", err)
	}
	return kp, nil
}

// loadKeyPair loads a keyPair whose log lines start with label.
func loadKeyPair(label, certFile, keyFile string) (*keyPair, error) {
	kp := &keyPair{certFile: certFile, keyFile: keyFile, label: label}
	if err := kp.loadLocked(); err != nil {
		return nil, err
	}
	kp.checked = time.Now()
	return kp, nil
}

// get is tls.Config.GetCertificate.
func (kp *keyPair) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	kp.mu.Lock()
	defer kp.mu.Unlock()
	if now := time.Now(); now.Sub(kp.checked) >= reloadCheck {
		kp.checked = now
		a, errA := stampOf(kp.certFile)
		b, errB := stampOf(kp.keyFile)
		if errA == nil && errB == nil && (a != kp.stamps[0] || b != kp.stamps[1]) {
			if err := kp.loadLocked(); err != nil && kp.log != nil {
				kp.log.Error(kp.label+": keeping the previous certificate", "err", err)
			} else if err == nil && kp.log != nil {
				kp.log.Info(kp.label+": certificate reloaded", "cert", kp.certFile)
			}
		}
	}
	return kp.cert, nil
}

func (kp *keyPair) loadLocked() error {
	a, err := stampOf(kp.certFile)
	if err != nil {
		return err
	}
	b, err := stampOf(kp.keyFile)
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(kp.certFile, kp.keyFile)
	if err != nil {
		return err
	}
	kp.cert, kp.stamps = &cert, [2]fileStamp{a, b}
	return nil
}

// fileStamp identifies one version of a file.
type fileStamp struct {
	mtime time.Time
	size  int64
	ino   uint64
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	st := fileStamp{mtime: fi.ModTime(), size: fi.Size()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.ino = sys.Ino
	}
	return st, nil
}
