package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// basicAuth checks HTTP basic credentials against a file of
//
//	# comment
//	user:$pbkdf2-sha256$rounds$salt$checksum
//
// lines: passlib's pbkdf2_sha256 format (salt and checksum in passlib's
// base64 variant: '.' for '+', no padding), which Python's standard library
// can produce (docs/reliability.md has the one-liner) and HashPassword
// produces. The file must be a regular file that other users cannot read
// (it holds password hashes, which can be attacked offline), or start-up
// fails. It is read again when it changes, and revoking fails closed: a file
// that is missing, empty, unreadable or does not parse denies every request
// (and says so in the log) until a good one is back.
//
// PBKDF2 is slow on purpose, so each verification is expensive, and what a
// client can make the master compute is bounded:
//
//   - credentials that verified are remembered (a scraper pays once, not
//     every scrape), and checking a remembered one costs one SHA-256;
//   - at most hashSlots verifications run at once; a request finding them
//     all busy is answered 429 with Retry-After at once, never queued;
//   - each client address may fail failBurst times, then once every
//     failEvery (failLimiter); past that it gets 429 without hashing;
//   - a request whose client has gone is dropped before hashing;
//   - every failure costs the rounds of the user with the most rounds,
//     whichever user it names, so timing does not tell which users exist.
type basicAuth struct {
	path string
	log  *slog.Logger // nil: reload failures are not logged

	mu        sync.Mutex            // guards the fields below
	users     map[string]pbkdf2Hash // empty: everyone is denied
	maxRounds int                   // the highest rounds of users: what every failure costs
	stamp     fileStamp             // of the version loaded or refused last
	failing   string                // why everyone is denied, or ""
	checked   time.Time
	good      map[[32]byte]bool // digests of credentials that verified

	slots chan struct{} // a token per verification running
	fails *failLimiter

	rounds atomic.Uint64 // PBKDF2 rounds computed so far
}

// hashSlots is how many PBKDF2 verifications may run at once: a client
// guessing passwords costs the master at most this many CPUs.
const hashSlots = 1

// pbkdf2Hash is one parsed "$pbkdf2-sha256$..." hash.
type pbkdf2Hash struct {
	rounds   int
	salt     []byte
	checksum []byte
	text     string
}

// Bounds on the rounds a hash may ask for: below, the hash is too weak to
// be worth having; above, one verification would take minutes.
const (
	minRounds = 1000
	maxRounds = 10_000_000
	// DefaultPasswordRounds is what HashPassword uses: OWASP's 2023
	// recommendation for PBKDF2-HMAC-SHA256.
	DefaultPasswordRounds = 600_000
)

// passlib's base64: the standard alphabet with '.' for '+', unpadded.
var ab64 = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789./").WithPadding(base64.NoPadding)

func parsePBKDF2(s string) (pbkdf2Hash, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 5 || parts[0] != "" || parts[1] != "pbkdf2-sha256" {
		return pbkdf2Hash{}, fmt.Errorf("not a $pbkdf2-sha256$rounds$salt$checksum hash")
	}
	rounds, err := strconv.Atoi(parts[2])
	if err != nil || rounds < minRounds || rounds > maxRounds {
		return pbkdf2Hash{}, fmt.Errorf("rounds must be %d..%d, got %q", minRounds, maxRounds, parts[2])
	}
	salt, err := ab64.DecodeString(parts[3])
	if err != nil || len(salt) < 8 {
		return pbkdf2Hash{}, fmt.Errorf("bad salt (want at least 8 bytes in passlib base64)")
	}
	sum, err := ab64.DecodeString(parts[4])
	if err != nil || len(sum) != sha256.Size {
		return pbkdf2Hash{}, fmt.Errorf("bad checksum (want %d bytes in passlib base64)", sha256.Size)
	}
	return pbkdf2Hash{rounds: rounds, salt: salt, checksum: sum, text: s}, nil
}

func (h pbkdf2Hash) matches(password string) bool {
	got, err := pbkdf2.Key(sha256.New, password, h.salt, h.rounds, sha256.Size)
	return err == nil && subtle.ConstantTimeCompare(got, h.checksum) == 1
}

// HashPassword returns password's hash for an -admin-basic-auth-file line,
// with DefaultPasswordRounds rounds and a random 16-byte salt.
func HashPassword(password string) (string, error) {
	return hashPassword(password, DefaultPasswordRounds)
}

func hashPassword(password string, rounds int) (string, error) {
	salt := make([]byte, 16)
	rand.Read(salt)
	sum, err := pbkdf2.Key(sha256.New, password, salt, rounds, sha256.Size)
	if err != nil {
		return "", err
	}
	return "$pbkdf2-sha256$" + strconv.Itoa(rounds) + "$" + ab64.EncodeToString(salt) + "$" + ab64.EncodeToString(sum), nil
}

// parseUsers parses the file's content; errors name the line.
func parseUsers(b []byte) (map[string]pbkdf2Hash, error) {
	users := map[string]pbkdf2Hash{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("line %d: want user:hash", n)
		}
		if _, dup := users[user]; dup {
			return nil, fmt.Errorf("line %d: user %q appears twice", n, user)
		}
		h, err := parsePBKDF2(hash)
		if err != nil {
			return nil, fmt.Errorf("line %d (user %q): %v", n, user, err)
		}
		users[user] = h
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(users) == 0 {
		return nil, fmt.Errorf("no user")
	}
	return users, nil
}

func newBasicAuth(path string) (*basicAuth, error) {
	a := &basicAuth{
		path:  path,
		good:  map[[32]byte]bool{},
		slots: make(chan struct{}, hashSlots),
		fails: newFailLimiter(failBurst, failEvery, failAddrs),
	}
	if err := a.loadLocked(); err != nil {
		return nil, fmt.Errorf("-admin-basic-auth-file: %s: %w", path, err)
	}
	a.checked = time.Now()
	return a, nil
}

func (a *basicAuth) loadLocked() error {
	b, st, err := readConfigFile(a.path, true)
	if err != nil {
		return err
	}
	users, err := parseUsers(b)
	if err != nil {
		return err
	}
	a.users, a.stamp = users, st
	a.maxRounds = minRounds
	for _, h := range users {
		a.maxRounds = max(a.maxRounds, h.rounds)
	}
	clear(a.good)
	return nil
}

// reloadLocked reads the file again if it changed since the last look
// (at most every reloadCheck). A version that cannot be used denies
// everyone: removing or emptying the file revokes every credential.
func (a *basicAuth) reloadLocked(now time.Time) {
	if now.Sub(a.checked) < reloadCheck {
		return
	}
	a.checked = now
	st, err := stampOf(a.path)
	if err == nil && st == a.stamp {
		return
	}
	if err == nil {
		err = a.loadLocked()
	}
	if err == nil {
		if a.log != nil {
			a.log.Info("admin basic auth: users file reloaded", "file", a.path, "users", len(a.users))
		}
		a.failing = ""
		return
	}
	// Remember the refused version, so that it is not parsed again every
	// reloadCheck (a missing file has the zero stamp).
	a.stamp = st
	a.users = nil
	clear(a.good)
	if a.failing != err.Error() && a.log != nil {
		a.log.Error("admin basic auth: denying every request until the users file is fixed", "file", a.path, "err", err)
	}
	a.failing = err.Error()
}

// verdict is the outcome of a credential check.
type verdict int

const (
	allowed verdict = iota
	denied          // 401
	busy            // 429: every hash slot is taken
	limited         // 429: the client's address spent its failure budget
)

// check checks user and password for a request from remoteAddr whose
// context is ctx. For busy and limited, wait is when to try again.
func (a *basicAuth) check(ctx context.Context, remoteAddr, user, password string) (v verdict, wait time.Duration) {
	now := time.Now()
	a.mu.Lock()
	a.reloadLocked(now)
	if len(a.users) == 0 {
		a.mu.Unlock()
		return denied, 0 // revoked: nothing to verify against
	}
	h, known := a.users[user]
	rounds := a.maxRounds
	d := sha256.Sum256([]byte(user + "\x00" + password + "\x00" + h.text))
	if known && a.good[d] {
		a.mu.Unlock()
		return allowed, 0
	}
	a.mu.Unlock()

	if ctx.Err() != nil {
		return denied, 0 // the client has gone: nobody to answer
	}
	client := clientKey(remoteAddr)
	if ok, wait := a.fails.take(client, now); !ok {
		return limited, wait
	}
	select {
	case a.slots <- struct{}{}:
	default:
		a.fails.refund(client, now)
		return busy, time.Second
	}
	ok := a.verify(h, known, password, rounds)
	<-a.slots
	if !ok {
		return denied, 0
	}
	a.fails.refund(client, now)
	a.mu.Lock()
	if len(a.good) >= 64 {
		clear(a.good)
	}
	a.good[d] = true
	a.mu.Unlock()
	return allowed, 0
}

// verify computes PBKDF2 for password: h's rounds if the user is known,
// then, if it does not match, more rounds up to `rounds` (the highest of
// all users), so that every failure costs the same.
func (a *basicAuth) verify(h pbkdf2Hash, known bool, password string, rounds int) bool {
	if known {
		a.rounds.Add(uint64(h.rounds))
		if h.matches(password) {
			return true
		}
		rounds -= h.rounds
	}
	if rounds > 0 {
		a.rounds.Add(uint64(rounds))
		var salt [16]byte // this PBKDF2 only spends time
		pbkdf2.Key(sha256.New, password, salt[:], rounds, sha256.Size)
	}
	return false
}

// wrap requires valid credentials for h.
func (a *basicAuth) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		v := denied
		var wait time.Duration
		if ok {
			v, wait = a.check(r.Context(), r.RemoteAddr, user, pass)
		}
		switch v {
		case allowed:
			h.ServeHTTP(w, r)
		case busy, limited:
			w.Header().Set("Retry-After", strconv.Itoa(int(max(1, (wait+time.Second-1)/time.Second))))
			http.Error(w, "429 too many authentication attempts", http.StatusTooManyRequests)
		default:
			w.Header().Set("WWW-Authenticate", `Basic realm="herd", charset="UTF-8"`)
			http.Error(w, "401 unauthorized", http.StatusUnauthorized)
		}
	})
}
