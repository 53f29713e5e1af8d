package config

import (
	"errors"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // the lines of the error, in order
	}{
		{"both devices", "port: /dev/ttyUSB0\nemulate: true\n",
			[]string{`c.yaml:1: port: port "/dev/ttyUSB0" and emulate: true are both set; choose one`}},
		{"baud low", "baud: 299\n", []string{`c.yaml:1: baud: 299 is out of range; want 300 to 5000000 (e.g. 921600)`}},
		{"baud high", "baud: 5000001\n", []string{`c.yaml:1: baud: 5000001 is out of range; want 300 to 5000000 (e.g. 921600)`}},
		{"baud bounds", "baud: 300\n", nil},
		{"flow", "\nflow: RTS\n", []string{`c.yaml:2: flow: "RTS" is not one of rtscts, none`}},
		{"bad forward", "forwards:\n  - 8080:example.com:80\n  - 8080\n  - 1.2.3.4:99999:x:1\n", []string{
			`c.yaml:3: forwards[1]: local forward "8080": 1 fields; want [BIND:]PORT:HOST:HOSTPORT[/udp], e.g. 8080:example.com:80`,
			`c.yaml:4: forwards[2]: local forward "1.2.3.4:99999:x:1": listen port "99999" is not a number from 0 to 65535; want [BIND:]PORT:HOST:HOSTPORT[/udp], e.g. 8080:example.com:80`,
		}},
		{"bad reverse", "reverse: [2222:localhost:22/udp]\n", []string{
			`c.yaml:1: reverse[0]: remote forward "2222:localhost:22/udp": remote forwards are TCP only; want [DEVBIND:]DEVPORT:HOST:HOSTPORT, e.g. 2222:127.0.0.1:22`,
		}},
		{"listen not host:port", "socks5:\n  listen: abc\n", []string{`c.yaml:2: socks5.listen: "abc" is not host:port (e.g. 127.0.0.1:1080)`}},
		{"listen port", "dns:\n  listen: 127.0.0.1:dns\n", []string{`c.yaml:2: dns.listen: "127.0.0.1:dns": port "dns" is not a number from 0 to 65535 (e.g. 127.0.0.1:5353)`}},
		{"listen host", "metrics:\n  listen: a/b:9100\n", []string{`c.yaml:2: metrics.listen: "a/b:9100": "a/b" is neither an IP address nor a host name (e.g. 127.0.0.1:9273)`}},
		{"listen forms", "socks5: {listen: \":1080\"}\ndns: {listen: \"[::1]:53\"}\nmetrics: {listen: \"localhost:9100\"}\n", nil},
		{"upstream", "dns:\n  upstream: dns.google:53\n", []string{`c.yaml:2: dns.upstream: "dns.google:53": "dns.google" is not an IP address; want ip:port of a resolver, e.g. 1.1.1.1:53 or [2606:4700:4700::1111]:53, or "" to answer A and AAAA through the ESP32 alone`}},
		{"upstream port", "dns:\n  upstream: 1.1.1.1:0\n", []string{`c.yaml:2: dns.upstream: "1.1.1.1:0": port "0" is not a number from 1 to 65535; want ip:port of a resolver, e.g. 1.1.1.1:53 or [2606:4700:4700::1111]:53, or "" to answer A and AAAA through the ESP32 alone`}},
		{"upstream no port", "dns:\n  upstream: 1.1.1.1\n", []string{`c.yaml:2: dns.upstream: "1.1.1.1" is not ip:port; want ip:port of a resolver, e.g. 1.1.1.1:53 or [2606:4700:4700::1111]:53, or "" to answer A and AAAA through the ESP32 alone`}},
		{"ttl", "dns:\n  ttl: -1s\n", []string{`c.yaml:2: dns.ttl: -1s is out of range; want 0s to 596523h14m7s`}},
		{"limits", "limits:\n  max_clients: 0\n  connect_timeout: 0s\n  handshake_timeout: -1s\n  udp_idle_timeout: 0s\n", []string{
			`c.yaml:2: limits.max_clients: 0 is not positive; want at least 1 (default 256)`,
			`c.yaml:3: limits.connect_timeout: 0s is not positive; want a duration such as "10s"`,
			`c.yaml:4: limits.handshake_timeout: -1s is not positive; want a duration such as "10s"`,
			`c.yaml:5: limits.udp_idle_timeout: 0s is not positive; want a duration such as "10s"`,
		}},
		{"backoff order", "reconnect:\n  min_backoff: 1m\n  max_backoff: 1s\n", []string{`c.yaml:2: reconnect.min_backoff: 1m0s is more than reconnect.max_backoff (1s)`}},
		{"drain", "shutdown: {drain_timeout: -5s}\n", []string{`c.yaml:1: shutdown.drain_timeout: -5s is negative; want 0s (close at once) or more`}},
		{"access", "access:\n  default: permit\n  rules:\n    - action: allow\n      to: 10.0.0.0/33\n    - action: block\n      to: example.com\n      ports: 0-80\n", []string{
			`c.yaml:2: access.default: "permit" is not allow or deny`,
			`c.yaml:5: access.rules[0].to: "10.0.0.0/33": not a CIDR range (e.g. 10.0.0.0/8 or fd00::/8)`,
			`c.yaml:6: access.rules[1].action: "block" is not allow or deny`,
			`c.yaml:8: access.rules[1].ports: "0-80": port "0" is not a number from 1 to 65535`,
		}},
		{"empty rule", "access:\n  rules:\n    -\n", []string{
			`c.yaml:3: access.rules[0].action: "" is not allow or deny`,
			`c.yaml:3: access.rules[0].to: "": empty; want "*", an IP address (10.0.0.1), a CIDR range (10.0.0.0/8) or a host name (example.com, *.example.com, .example.com)`,
		}},
		{"log", "log:\n  level: verbose\n  format: text\n", []string{
			`c.yaml:2: log.level: "verbose" is not one of trace, debug, info, warn, error`,
			`c.yaml:3: log.format: "text" is not one of auto, console, json`,
		}},
		{"duplicate listeners", "forwards:\n  - 1080:a:80\n  - 5353:b:53/udp\n  - \"*:9100:c:80\"\nsocks5:\n  listen: localhost:1080\ndns:\n  listen: 127.0.0.1:5353\nmetrics:\n  listen: 127.0.0.2:9100\n", []string{
			`c.yaml:6: socks5.listen: tcp localhost:1080 is also where forwards[0] (c.yaml:2) listens; give each its own address or port`,
			`c.yaml:8: dns.listen: udp 127.0.0.1:5353 is also where forwards[1] (c.yaml:3) listens; give each its own address or port`,
			`c.yaml:10: metrics.listen: tcp 127.0.0.2:9100 is also where forwards[2] (c.yaml:4) listens; give each its own address or port`,
		}},
		{"no conflict", "forwards:\n  - 5353:b:53/udp\n  - 5353:b:53\n  - 127.0.0.2:5353:b:53\n  - 0:a:1\n  - 0:a:1\nsocks5: {listen: \"127.0.0.1:0\"}\n", nil},
		{"duplicate forwards", "forwards: [\"8080:a:80\", \"127.0.0.1:8080:b:80\", \"[::]:8080:c:80\"]\n", []string{
			`c.yaml:1: forwards[1]: tcp 127.0.0.1:8080 is also where forwards[0] (c.yaml:1) listens; give each its own address or port`,
			`c.yaml:1: forwards[2]: tcp :8080 is also where forwards[0] (c.yaml:1) listens; give each its own address or port`,
		}},
	}
	for _, tt := range tests {
		c, err := Parse([]byte(tt.yaml), "c.yaml")
		if err != nil {
			t.Errorf("%s: Parse: %v", tt.name, err)
			continue
		}
		err = c.Validate()
		if len(tt.want) == 0 {
			if err != nil {
				t.Errorf("%s: Validate() = %v, want nil", tt.name, err)
			}
			continue
		}
		if want := strings.Join(tt.want, "\n"); err == nil || err.Error() != want {
			t.Errorf("%s: Validate() =\n%v\nwant\n%s", tt.name, err, want)
		}
		var e *Error
		if !errors.As(err, &e) || e.File != "c.yaml" || e.Line == 0 || e.Key == "" {
			t.Errorf("%s: first error %#v lacks file, line or key", tt.name, e)
		}
	}
}

// A value changed after loading (by a flag) is named by its key alone,
// not by the file line that no longer holds it.
func TestValidateChangedValue(t *testing.T) {
	c, err := Parse([]byte("baud: 100\nsocks5:\n  listen: abc\n"), "c.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c.Baud = 921600        // as a --baud flag would
	c.SOCKS5.Listen = "xy" // as a --socks5 flag would
	want := `socks5.listen: "xy" is not host:port (e.g. 127.0.0.1:1080)`
	if err := c.Validate(); err == nil || err.Error() != want {
		t.Errorf("Validate() = %v, want %s", err, want)
	}
	c.Forwards = []string{"bad"}
	if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), `forwards[0]: local forward "bad"`) {
		t.Errorf("Validate() = %v", err)
	}
}

func TestValidateWithoutFile(t *testing.T) {
	c := Default()
	c.Flow = "xon"
	if err := c.Validate(); err == nil || err.Error() != `flow: "xon" is not one of rtscts, none` {
		t.Errorf("Validate() = %v", err)
	}
}
