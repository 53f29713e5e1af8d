package config

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Credentials is the set of SOCKS5 users (RFC 1929 username/password).
// Passwords are kept only as SHA-256 digests, and String prints no more
// than the number of users, so a Credentials may be logged.
type Credentials struct {
	users []user
	// Insecure is true when the file LoadCredentials read may be read by
	// its group or others (mode & 0o077 != 0); the caller should warn.
	Insecure bool
}

type user struct {
	name     [sha256.Size]byte
	password [sha256.Size]byte
}

// maxField is the longest user name or password SOCKS5 can carry.
const maxField = 255

// LoadCredentials reads a SOCKS5 user file: one "user:password" per line,
// the password being everything after the first colon (trailing carriage
// returns removed); blank lines and lines starting with '#' are ignored.
// Errors name the file and line but never show a line's text, not even
// the user name: a mistyped line may hold a password anywhere.
func LoadCredentials(path string) (*Credentials, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("socks5 auth file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("socks5 auth file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("socks5 auth file %s: not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("socks5 auth file: read %s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("socks5 auth file %s: larger than %d bytes", path, maxFileSize)
	}
	c, err := parseCredentials(string(data), path)
	if err != nil {
		return nil, err
	}
	c.Insecure = fi.Mode().Perm()&0o077 != 0
	return c, nil
}

func parseCredentials(data, path string) (*Credentials, error) {
	c := &Credentials{}
	firstLine := make(map[[sha256.Size]byte]int)
	for i, line := range strings.Split(data, "\n") {
		n := i + 1
		line = strings.TrimRight(line, "\r")
		if t := strings.TrimSpace(line); t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		name, password, ok := strings.Cut(line, ":")
		switch {
		case !ok:
			return nil, fmt.Errorf("%s:%d: no ':' on this line; want user:password", path, n)
		case name == "":
			return nil, fmt.Errorf("%s:%d: empty user name; want user:password", path, n)
		case strings.ContainsFunc(name, isSpaceOrControl):
			return nil, fmt.Errorf("%s:%d: the user name has spaces or control characters; want user:password with nothing around it", path, n)
		case len(name) > maxField:
			return nil, fmt.Errorf("%s:%d: user name longer than %d bytes, which SOCKS5 cannot carry", path, n, maxField)
		case password == "":
			return nil, fmt.Errorf("%s:%d: empty password; want user:password", path, n)
		case len(password) > maxField:
			return nil, fmt.Errorf("%s:%d: password longer than %d bytes, which SOCKS5 cannot carry", path, n, maxField)
		}
		u := user{name: sha256.Sum256([]byte(name)), password: sha256.Sum256([]byte(password))}
		if first, dup := firstLine[u.name]; dup {
			return nil, fmt.Errorf("%s:%d: the user on this line is already on line %d; keep one", path, n, first)
		}
		firstLine[u.name] = n
		c.users = append(c.users, u)
	}
	if len(c.users) == 0 {
		return nil, fmt.Errorf("%s: no users; add lines of user:password, or turn authentication off by leaving socks5.auth_file empty", path)
	}
	return c, nil
}

func isSpaceOrControl(r rune) bool { return r <= ' ' || r == 0x7f }

// CredentialsFromEnv returns the single user that UARTPROXY_SOCKS5_USERNAME
// and UARTPROXY_SOCKS5_PASSWORD name, and true, when both are set and
// usable (neither longer than 255 bytes). With either unset, or unusable,
// it returns nil and false; CredentialsEnvError tells the two apart.
func CredentialsFromEnv(getenv func(string) string) (*Credentials, bool) {
	if CredentialsEnvError(getenv) != nil {
		return nil, false
	}
	name, password := getenv(envUser), getenv(envPassword)
	if name == "" || password == "" {
		return nil, false
	}
	return &Credentials{users: []user{{name: sha256.Sum256([]byte(name)), password: sha256.Sum256([]byte(password))}}}, true
}

const (
	envUser     = "UARTPROXY_SOCKS5_USERNAME"
	envPassword = "UARTPROXY_SOCKS5_PASSWORD"
)

// CredentialsEnvError reports a half-given or unusable user in the
// environment, which CredentialsFromEnv would silently ignore: one of
// UARTPROXY_SOCKS5_USERNAME and UARTPROXY_SOCKS5_PASSWORD without the
// other, or either longer than 255 bytes. It never shows the password.
func CredentialsEnvError(getenv func(string) string) error {
	name, password := getenv(envUser), getenv(envPassword)
	switch {
	case name == "" && password == "":
		return nil
	case name == "":
		return errors.New(envPassword + " is set but " + envUser + " is not; set both or neither")
	case password == "":
		return errors.New(envUser + " is set but " + envPassword + " is not; set both or neither")
	case len(name) > maxField:
		return fmt.Errorf("%s is longer than %d bytes, which SOCKS5 cannot carry", envUser, maxField)
	case len(password) > maxField:
		return fmt.Errorf("%s is longer than %d bytes, which SOCKS5 cannot carry", envPassword, maxField)
	}
	return nil
}

// Check reports whether user and password name a known user. It takes the
// same time whether the user is unknown, the password wrong or both right:
// it compares digests against every user with crypto/subtle.
func (c *Credentials) Check(user, password string) bool {
	if c == nil {
		return false
	}
	name, pw := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(password))
	ok := 0
	for i := range c.users {
		u := &c.users[i]
		ok |= subtle.ConstantTimeCompare(name[:], u.name[:]) & subtle.ConstantTimeCompare(pw[:], u.password[:])
	}
	return ok == 1
}

// Len is the number of users.
func (c *Credentials) Len() int {
	if c == nil {
		return 0
	}
	return len(c.users)
}

// String says how many users there are, and nothing about them.
func (c *Credentials) String() string {
	return fmt.Sprintf("%d SOCKS5 users", c.Len())
}

// GoString is String, so that %#v shows no digests either.
func (c *Credentials) GoString() string { return c.String() }
