package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, content string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	return path
}

func TestLoadCredentials(t *testing.T) {
	path := writeFile(t, "# SOCKS5 users\n\nalice:wonder:land\r\nbob:  spaced pass \n   # indented comment\n", 0o600)
	c, err := LoadCredentials(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Len() != 2 || c.Insecure {
		t.Errorf("Len %d, Insecure %v", c.Len(), c.Insecure)
	}
	for _, tt := range []struct {
		user, password string
		want           bool
	}{
		{"alice", "wonder:land", true}, // the password runs to the end of the line, colons and all
		{"bob", "  spaced pass ", true},
		{"alice", "wonder", false},
		{"alice", "wonder:land\r", false},
		{"alice", "", false},
		{"bob", "wonder:land", false}, // another user's password
		{"Alice", "wonder:land", false},
		{"carol", "wonder:land", false},
		{"", "", false},
	} {
		if got := c.Check(tt.user, tt.password); got != tt.want {
			t.Errorf("Check(%q, %q) = %v, want %v", tt.user, tt.password, got, tt.want)
		}
	}
	if s := fmt.Sprintf("%v %+v %#v %s", c, c, c, c); strings.Contains(s, "alice") || strings.Contains(s, "wonder") {
		t.Errorf("formatting shows users: %s", s)
	}
}

func TestLoadCredentialsInsecure(t *testing.T) {
	for _, tt := range []struct {
		mode     os.FileMode
		insecure bool
	}{
		{0o600, false}, {0o400, false}, {0o640, true}, {0o604, true}, {0o644, true}, {0o660, true},
	} {
		c, err := LoadCredentials(writeFile(t, "u:p\n", tt.mode))
		if err != nil {
			t.Fatal(err)
		}
		if c.Insecure != tt.insecure {
			t.Errorf("mode %o: Insecure = %v, want %v", tt.mode, c.Insecure, tt.insecure)
		}
	}
}

func TestLoadCredentialsErrors(t *testing.T) {
	const secret = "Sup3rS3cret"
	long := strings.Repeat("x", 256)
	tests := []struct {
		content string
		want    string // after the path
	}{
		{"ok:1\n" + secret + "\n", ":2: no ':' on this line; want user:password"},
		{"# c\n:" + secret + "\n", ":2: empty user name; want user:password"},
		{"ok:1\n\n" + secret + ":\n", ":3: empty password; want user:password"},
		{" al" + secret + ":x\n", ":1: the user name has spaces or control characters; want user:password with nothing around it"},
		{long + ":" + secret + "\n", ":1: user name longer than 255 bytes, which SOCKS5 cannot carry"},
		{"ok:" + secret + long + "\n", ":1: password longer than 255 bytes, which SOCKS5 cannot carry"},
		{"a" + secret + ":1\nb:2\na" + secret + ":3\n", ":3: the user on this line is already on line 1; keep one"},
		{"# nobody\n\n", ": no users; add lines of user:password, or turn authentication off by leaving socks5.auth_file empty"},
	}
	for _, tt := range tests {
		path := writeFile(t, tt.content, 0o600)
		_, err := LoadCredentials(path)
		if err == nil || err.Error() != path+tt.want {
			t.Errorf("%q: err = %v, want %s%s", tt.content, err, path, tt.want)
			continue
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "Sup3r") {
			t.Errorf("%q: the error shows a secret: %v", tt.content, err)
		}
	}
	if _, err := LoadCredentials(filepath.Join(t.TempDir(), "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := LoadCredentials(t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
}

func TestCredentialsFromEnv(t *testing.T) {
	c, ok := CredentialsFromEnv(env(map[string]string{"UARTPROXY_SOCKS5_USERNAME": "u", "UARTPROXY_SOCKS5_PASSWORD": "p:w"}))
	if !ok || c.Len() != 1 || !c.Check("u", "p:w") || c.Check("u", "p") || c.Check("x", "p:w") || c.Insecure {
		t.Errorf("CredentialsFromEnv: %v, %v", c, ok)
	}
	for _, m := range []map[string]string{
		{},
		{"UARTPROXY_SOCKS5_USERNAME": "u"},
		{"UARTPROXY_SOCKS5_PASSWORD": "hunter2"},
		{"UARTPROXY_SOCKS5_USERNAME": "u", "UARTPROXY_SOCKS5_PASSWORD": strings.Repeat("p", 256)},
	} {
		if c, ok := CredentialsFromEnv(env(m)); ok || c != nil {
			t.Errorf("%v: %v, %v", m, c, ok)
		}
		err := CredentialsEnvError(env(m))
		if (err == nil) != (len(m) == 0) {
			t.Errorf("CredentialsEnvError(%v) = %v", m, err)
		}
		if err != nil && (strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "ppp")) {
			t.Errorf("CredentialsEnvError shows the password: %v", err)
		}
	}
}

func TestCheckNil(t *testing.T) {
	var c *Credentials
	if c.Check("", "") || c.Len() != 0 {
		t.Error("nil Credentials accepts")
	}
}

func BenchmarkCheck(b *testing.B) {
	var lines []string
	for i := range 100 {
		lines = append(lines, fmt.Sprintf("user%d:password%d", i, i))
	}
	c, err := parseCredentials(strings.Join(lines, "\n"), "users")
	if err != nil {
		b.Fatal(err)
	}
	for _, bb := range []struct{ name, user, password string }{
		{"right", "user50", "password50"},
		{"wrong-password", "user50", "nope"},
		{"unknown-user", "mallory", "password50"},
	} {
		b.Run(bb.name, func(b *testing.B) {
			for b.Loop() {
				c.Check(bb.user, bb.password)
			}
		})
	}
}
