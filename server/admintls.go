package server

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
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
//
// A reload that fails keeps the previous certificate and key (the server's
// own identity: better an old one than none), but fails closed for the
// files that say who may come in: a client CA file or users file that is
// missing or unusable admits nobody until it is fixed. Private files (the
// key, the users file) must not be readable by every user.
type adminSecurity struct {
	tls  *tls.Config // nil: plain HTTP
	cert *keyPair    // the certificate behind tls
	cas  *clientCAs  // nil: no client certificate asked for
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
			// A resumed TLS session skips the client's certificate, and
			// with it the check against CAs reloaded since: no tickets.
			s.tls.SessionTicketsDisabled = true
			s.tls.ClientAuth = tls.RequireAndVerifyClientCert
			cas, err := newClientCAs(c.AdminTLSClientCA, s.tls)
			if err != nil {
				return nil, err
			}
			s.cas = cas
			s.tls = cas.current
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
	if s.cas != nil {
		s.cas.mu.Lock()
		s.cas.log = log
		s.cas.mu.Unlock()
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
	certPEM, a, err := readConfigFile(kp.certFile, false)
	if err != nil {
		return err
	}
	keyPEM, b, err := readConfigFile(kp.keyFile, true)
	if err != nil {
		return err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return err
	}
	kp.cert, kp.stamps = &cert, [2]fileStamp{a, b}
	return nil
}

// clientCAs serves the TLS configuration that requires client certificates
// signed by the CAs of a file, loading the file again when it changes. A
// version that cannot be used (missing, unreadable, no PEM certificate)
// leaves an empty pool: no client is admitted until it is fixed.
type clientCAs struct {
	path string
	base *tls.Config // everything but ClientCAs

	mu      sync.Mutex // guards the fields below
	log     *slog.Logger
	current *tls.Config // base with the CAs of the version loaded last
	stamp   fileStamp
	failing string // why every client is refused, or ""
	checked time.Time
}

func newClientCAs(path string, base *tls.Config) (*clientCAs, error) {
	c := &clientCAs{path: path, base: base.Clone()}
	c.base.GetConfigForClient = c.config
	if err := c.loadLocked(); err != nil {
		return nil, fmt.Errorf("-admin-tls-client-ca: %w", err)
	}
	c.checked = time.Now()
	return c, nil
}

// config is tls.Config.GetConfigForClient.
func (c *clientCAs) config(*tls.ClientHelloInfo) (*tls.Config, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := time.Now(); now.Sub(c.checked) >= reloadCheck {
		c.checked = now
		st, err := stampOf(c.path)
		if err != nil || st != c.stamp {
			if err == nil {
				err = c.loadLocked()
			}
			switch {
			case err != nil:
				c.stamp = st // a missing file has the zero stamp
				c.current = c.withPool(x509.NewCertPool())
				if c.failing != err.Error() && c.log != nil {
					c.log.Error("admin TLS: refusing every client certificate until the client CA file is fixed", "file", c.path, "err", err)
				}
				c.failing = err.Error()
			default:
				c.failing = ""
				if c.log != nil {
					c.log.Info("admin TLS: client CAs reloaded", "file", c.path)
				}
			}
		}
	}
	return c.current, nil
}

func (c *clientCAs) loadLocked() error {
	pem, st, err := readConfigFile(c.path, false)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("%s holds no PEM certificate", c.path)
	}
	c.current, c.stamp = c.withPool(pool), st
	return nil
}

func (c *clientCAs) withPool(pool *x509.CertPool) *tls.Config {
	cfg := c.base.Clone()
	cfg.ClientCAs = pool
	return cfg
}

// maxConfigFile bounds the size of a file behind the admin listener's
// protection (certificates, keys, CAs, users): far more than any real one.
const maxConfigFile = 1 << 20

// readConfigFile reads a certificate, key, CA or users file, and the stamp
// of the version read. It must be a regular file of at most maxConfigFile
// bytes; private (a key, password hashes) means that users other than the
// owner and group must not be able to read it. Symbolic links are followed
// (Kubernetes mounts secrets through them); the open never blocks, so a
// FIFO at the path is refused instead of hanging the master.
func readConfigFile(path string, private bool) ([]byte, fileStamp, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fileStamp{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fileStamp{}, err
	}
	switch {
	case !fi.Mode().IsRegular():
		return nil, fileStamp{}, fmt.Errorf("%s is not a regular file (%s)", path, fi.Mode().Type())
	case fi.Size() > maxConfigFile:
		return nil, fileStamp{}, fmt.Errorf("%s is larger than %d bytes", path, maxConfigFile)
	case private && fi.Mode().Perm()&0o004 != 0:
		return nil, fileStamp{}, fmt.Errorf("%s is readable by every user (mode %04o); chmod o-r it", path, fi.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxConfigFile+1))
	if err != nil {
		return nil, fileStamp{}, err
	}
	return b, stampFromInfo(fi), nil
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
	return stampFromInfo(fi), nil
}

func stampFromInfo(fi os.FileInfo) fileStamp {
	st := fileStamp{mtime: fi.ModTime(), size: fi.Size()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.ino = sys.Ino
	}
	return st
}
