package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// plain drops the origin map, so Configs compare by their fields.
func plain(c Config) Config {
	c.src = nil
	return c
}

func TestDefault(t *testing.T) {
	c := Default()
	want := Config{
		Baud:      921600,
		Flow:      "rtscts",
		Protocol:  "auto",
		SOCKS5:    SOCKS5{UDP: true, Bind: true},
		DNS:       DNS{TTL: Duration(60 * time.Second)},
		Limits:    Limits{MaxClients: 256, ConnectTimeout: Duration(15 * time.Second), HandshakeTimeout: Duration(10 * time.Second), UDPIdleTimeout: Duration(60 * time.Second)},
		Access:    Access{Default: "allow"},
		Shutdown:  Shutdown{DrainTimeout: Duration(10 * time.Second)},
		Reconnect: Reconnect{MinBackoff: Duration(250 * time.Millisecond), MaxBackoff: Duration(10 * time.Second)},
		Log:       Log{Level: "info", Format: "auto"},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Default() =\n%+v\nwant\n%+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Default().Validate() = %v", err)
	}
	if !c.NeedsDevice() {
		t.Error("Default() does not need a device")
	}
	if err := c.ValidateDevice(); err == nil || err.Error() != "no device: set port (e.g. /dev/ttyUSB0) or emulate: true" {
		t.Errorf("ValidateDevice() = %v", err)
	}
	c.Emulate = true
	if c.NeedsDevice() || c.ValidateDevice() != nil {
		t.Errorf("emulate: NeedsDevice %v, ValidateDevice %v", c.NeedsDevice(), c.ValidateDevice())
	}
	c.Port = "/dev/ttyUSB0"
	if err := c.ValidateDevice(); err == nil || !strings.Contains(err.Error(), "both set") {
		t.Errorf("port and emulate: ValidateDevice() = %v", err)
	}
}

// full is a configuration with every key away from its default.
const full = `port: /dev/ttyACM0
emulate: false
baud: 460800
flow: none
forwards:
  - 8080:example.com:80
  - 127.0.0.1:5300:1.1.1.1:53/udp
  - "[::1]:8443:example.com:443"
reverse:
  - 2222:127.0.0.1:22
socks5:
  listen: 127.0.0.1:1080
  auth_file: /etc/uartproxy/users
  udp: false
  bind: false
dns:
  listen: 127.0.0.1:5353
  upstream: 1.1.1.1:53
  ttl: 5m
metrics:
  listen: "[::1]:9100"
limits:
  max_clients: 32
  connect_timeout: 5s
  handshake_timeout: 3s
  udp_idle_timeout: 2m
access:
  default: deny
  rules:
    - action: deny
      to: 10.0.0.0/8
      ports: "22"
    - action: allow
      to: .example.com
      ports: 80,443
    - {action: allow, to: "*"}
shutdown:
  drain_timeout: 0s
reconnect:
  min_backoff: 100ms
  max_backoff: 30s
log:
  level: debug
  format: json
`

func fullConfig() Config {
	return Config{
		Port:     "/dev/ttyACM0",
		Baud:     460800,
		Flow:     "none",
		Protocol: "auto",
		Forwards: []string{"8080:example.com:80", "127.0.0.1:5300:1.1.1.1:53/udp", "[::1]:8443:example.com:443"},
		Reverse:  []string{"2222:127.0.0.1:22"},
		SOCKS5:   SOCKS5{Listen: "127.0.0.1:1080", AuthFile: "/etc/uartproxy/users"},
		DNS:      DNS{Listen: "127.0.0.1:5353", Upstream: "1.1.1.1:53", TTL: Duration(5 * time.Minute)},
		Metrics:  Metrics{Listen: "[::1]:9100"},
		Limits:   Limits{MaxClients: 32, ConnectTimeout: Duration(5 * time.Second), HandshakeTimeout: Duration(3 * time.Second), UDPIdleTimeout: Duration(2 * time.Minute)},
		Access: Access{Default: "deny", Rules: []Rule{
			{Action: "deny", To: "10.0.0.0/8", Ports: "22"},
			{Action: "allow", To: ".example.com", Ports: "80,443"},
			{Action: "allow", To: "*"},
		}},
		Shutdown:  Shutdown{DrainTimeout: 0},
		Reconnect: Reconnect{MinBackoff: Duration(100 * time.Millisecond), MaxBackoff: Duration(30 * time.Second)},
		Log:       Log{Level: "debug", Format: "json"},
	}
}

func TestParseFull(t *testing.T) {
	c, err := Parse([]byte(full), "config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if want := fullConfig(); !reflect.DeepEqual(plain(c), want) {
		t.Errorf("Parse =\n%+v\nwant\n%+v", plain(c), want)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	if err := c.ValidateDevice(); err != nil {
		t.Errorf("ValidateDevice: %v", err)
	}
}

func TestRoundTrip(t *testing.T) {
	for _, c := range []Config{Default(), fullConfig()} {
		data, err := yaml.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Parse(data, "marshalled.yaml")
		if err != nil {
			t.Fatalf("Parse(Marshal(c)): %v\n%s", err, data)
		}
		if !reflect.DeepEqual(plain(got), c) {
			t.Errorf("round trip:\n%s\ngave %+v\nwant %+v", data, plain(got), c)
		}
	}
}

func TestParseKeepsDefaults(t *testing.T) {
	c, err := Parse([]byte("socks5:\n  listen: 127.0.0.1:1080\ndns:\nlimits: {max_clients: 5}\n"), "c.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.SOCKS5.Listen = "127.0.0.1:1080"
	want.Limits.MaxClients = 5
	if !reflect.DeepEqual(plain(c), want) {
		t.Errorf("got %+v\nwant %+v", plain(c), want)
	}
	for _, empty := range []string{"", "# only a comment\n", "---\n", "~\n"} {
		c, err := Parse([]byte(empty), "c.yaml")
		if err != nil || !reflect.DeepEqual(plain(c), Default()) {
			t.Errorf("Parse(%q) = %+v, %v; want the defaults", empty, plain(c), err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       string // the whole error
	}{
		{"unknown top-level key", "port: /dev/ttyUSB0\nsock5:\n  listen: 127.0.0.1:1080\n",
			`config.yaml:2: sock5: unknown key (did you mean "socks5"?); known keys at the top level: port, emulate, baud, flow, protocol, forwards, reverse, socks5, dns, metrics, limits, access, shutdown, reconnect, log`},
		{"unknown nested key", "socks5:\n  listen: 127.0.0.1:1080\n  password: hunter2\n",
			`config.yaml:3: socks5.password: unknown key; known keys in socks5: listen, auth_file, udp, bind`},
		{"unknown rule key", "access:\n  rules:\n    - action: allow\n      host: example.com\n",
			`config.yaml:4: access.rules[0].host: unknown key; known keys in access.rules[0]: action, to, ports`},
		{"int", "baud: fast\n", `config.yaml:1: baud: "fast" is not a whole number`},
		{"int float", "limits:\n  max_clients: 1.5\n", `config.yaml:2: limits.max_clients: "1.5" is not a whole number`},
		{"bool", "socks5:\n  udp: maybe\n", `config.yaml:2: socks5.udp: "maybe" is not true or false`},
		{"duration", "dns:\n  ttl: soon\n", `config.yaml:2: dns.ttl: "soon" is not a duration; write e.g. "10s", "1m30s" or "250ms"`},
		{"duration without unit", "limits:\n\n  connect_timeout: 10\n", `config.yaml:3: limits.connect_timeout: "10" has no unit; write e.g. "10s"`},
		{"list wanted", "forwards: 8080:example.com:80\n", `config.yaml:1: forwards: want a list (lines starting with "- ", or [a, b]), not "8080:example.com:80"`},
		{"mapping wanted", "socks5: 127.0.0.1:1080\n", `config.yaml:1: socks5: want a mapping (indented "key: value" lines), not "127.0.0.1:1080"`},
		{"scalar wanted", "port: [a, b]\n", `config.yaml:1: port: want a single value, not a list`},
		{"list element", "forwards:\n  - 8080:a:80\n  - {a: b}\n", `config.yaml:3: forwards[1]: want a single value, not a mapping`},
		{"duplicate", "baud: 9600\nflow: none\nbaud: 115200\n", `config.yaml:3: baud: key given twice (first on line 1); keep one`},
		{"not a mapping", "- port\n", `config.yaml:1: the file must be a mapping of keys to values, e.g. "port: /dev/ttyUSB0", not a list`},
		{"syntax", "port: a\n  baud: 3\n", `config.yaml:2: invalid YAML: mapping values are not allowed in this context`},
		{"tab", "socks5:\n\tlisten: x\n", `config.yaml:2: invalid YAML: found character that cannot start any token (YAML indents with spaces, not tabs)`},
		{"two documents", "port: a\n---\nport: b\n", `config.yaml:2: a second YAML document ("---"); put every key in one document`},
		{"merge", "limits: &l\n  max_clients: 3\nreconnect:\n  <<: *l\n", `config.yaml:4: reconnect: merge keys (<<) are not supported; write the keys out`},
	}
	for _, tt := range tests {
		_, err := Parse([]byte(tt.yaml), "config.yaml")
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s: err =\n%v\nwant\n%s", tt.name, err, tt.want)
		}
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("%s: %T is not an *Error", tt.name, err)
		}
	}
}

func TestParseCollectsErrors(t *testing.T) {
	_, err := Parse([]byte("baud: x\nflow: none\nemulate: 3\n"), "c.yaml")
	want := "c.yaml:1: baud: \"x\" is not a whole number\nc.yaml:3: emulate: \"3\" is not true or false"
	if err == nil || err.Error() != want {
		t.Errorf("err =\n%v\nwant\n%s", err, want)
	}
}

func TestParseAliases(t *testing.T) {
	c, err := Parse([]byte("limits:\n  connect_timeout: &t 7s\n  handshake_timeout: *t\n"), "c.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Limits.HandshakeTimeout != Duration(7*time.Second) {
		t.Errorf("alias: %v", c.Limits.HandshakeTimeout)
	}
	// Many aliases of a list of many elements: bounded work, bounded errors.
	var b strings.Builder
	b.WriteString("x: &a [")
	for range 1000 {
		b.WriteString("{q: 1, r: 2},")
	}
	b.WriteString("]\naccess:\n  rules: [")
	for range 1000 {
		b.WriteString("*a,")
	}
	b.WriteString("]\n")
	_, err = Parse([]byte(b.String()), "c.yaml")
	if err == nil || strings.Count(err.Error(), "\n") > maxErrors+1 {
		t.Errorf("alias bomb: %d error lines", strings.Count(err.Error(), "\n"))
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte("port: /dev/ttyUSB0\nbaud: 115200\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != "/dev/ttyUSB0" || c.Baud != 115200 || c.Flow != "rtscts" {
		t.Errorf("Load: %+v", c)
	}
	_, err = Load(filepath.Join(dir, "missing.yaml"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: %v", err)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, make([]byte, maxFileSize+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("big file: %v", err)
	}
}

func TestExampleFile(t *testing.T) {
	path := filepath.Join("..", "..", "configs", "config.example.yaml")
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("the example does not validate: %v", err)
	}
	c.Port = "/dev/ttyUSB0"
	if err := c.ValidateDevice(); err != nil {
		t.Errorf("the example with a port: %v", err)
	}
	// Every key is in the file (rules are commented examples).
	for _, key := range keyPaths(reflect.TypeFor[Config](), "") {
		if strings.HasPrefix(key, "access.rules.") {
			continue
		}
		if _, ok := c.src[key]; !ok {
			t.Errorf("the example does not show %s", key)
		}
	}
	// Its values are the defaults, but for the loopback listeners.
	want := Default()
	want.Port = "/dev/ttyUSB0"
	want.SOCKS5.Listen, want.DNS.Listen, want.Metrics.Listen = "127.0.0.1:1080", "127.0.0.1:5353", "127.0.0.1:9273"
	if !reflect.DeepEqual(plain(c), want) {
		t.Errorf("example =\n%+v\nwant\n%+v", plain(c), want)
	}
	// Its commented-out examples are valid too.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var uncommented []string
	inRules := false
	for _, line := range strings.Split(string(data), "\n") {
		switch {
		case strings.HasPrefix(line, "#  - "), inRules && strings.HasPrefix(line, "#"):
			line = line[1:]
		case line == "forwards: []", line == "reverse: []":
			line = strings.TrimSuffix(line, " []")
		case line == "  rules: []":
			line, inRules = "  rules:", true
		default:
			inRules = false
		}
		uncommented = append(uncommented, line)
	}
	c, err = Parse([]byte(strings.Join(uncommented, "\n")), "uncommented example")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Forwards) != 3 || len(c.Reverse) != 1 || len(c.Access.Rules) != 3 {
		t.Errorf("uncommented example: %d forwards, %d reverse, %d rules", len(c.Forwards), len(c.Reverse), len(c.Access.Rules))
	}
	if err := c.Validate(); err != nil {
		t.Errorf("uncommented example: %v", err)
	}
}

// keyPaths lists the key paths of t's fields, recursively.
func keyPaths(t reflect.Type, prefix string) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == "" {
			continue
		}
		p := join(prefix, tag)
		out = append(out, p)
		ft := f.Type
		if ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct {
			out = append(out, keyPaths(ft, p)...)
		}
	}
	return out
}

func TestDuration(t *testing.T) {
	var d Duration
	if err := yaml.Unmarshal([]byte(`"1m30s"`), &d); err != nil || d != Duration(90*time.Second) {
		t.Errorf("Unmarshal: %v, %v", d, err)
	}
	if err := yaml.Unmarshal([]byte(`0`), &d); err != nil || d != 0 {
		t.Errorf("Unmarshal 0: %v, %v", d, err)
	}
	if err := yaml.Unmarshal([]byte(`[1]`), &d); err == nil {
		t.Error("a list is a duration")
	}
	out, err := yaml.Marshal(Duration(250 * time.Millisecond))
	if err != nil || string(out) != "250ms\n" {
		t.Errorf("Marshal: %q, %v", out, err)
	}
	if s := Duration(10 * time.Second).String(); s != "10s" {
		t.Errorf("String: %s", s)
	}
}

func TestAccessPolicy(t *testing.T) {
	c := fullConfig()
	p, err := c.Access.Policy()
	if err != nil {
		t.Fatal(err)
	}
	if !p.NeedsLookup() {
		t.Error("a CIDR rule does not need lookups")
	}
	for _, a := range []Access{
		{Default: "maybe"},
		{Default: "allow", Rules: []Rule{{Action: "permit", To: "*"}}},
		{Default: "allow", Rules: []Rule{{Action: "allow", To: "*"}, {Action: "allow", To: "a..b"}}},
	} {
		if _, err := a.Policy(); err == nil || !strings.HasPrefix(err.Error(), "access.") {
			t.Errorf("%+v: err = %v", a, err)
		}
	}
}
