package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/uartproxy/uartproxy/internal/forward"
	"github.com/uartproxy/uartproxy/internal/policy"
)

// Bounds checked by Validate.
const (
	MinBaud = 300
	MaxBaud = 5000000
	// maxTTL is the largest DNS TTL, 2^31-1 seconds (RFC 2181 section 8).
	maxTTL = Duration(math.MaxInt32 * time.Second)
)

// Validate checks the whole configuration and returns every problem found,
// joined, each an *Error naming the key and, while the value is the one
// read, its file and line or environment variable. A configuration with
// neither port nor emulate passes; see ValidateDevice.
func (c *Config) Validate() error {
	var errs []error
	add := func(e *Error) { errs = append(errs, e) }

	if c.Port != "" && c.Emulate {
		add(c.errf("port", c.Port, "port %q and emulate: true are both set; choose one", c.Port))
	}
	if c.Baud < MinBaud || c.Baud > MaxBaud {
		add(c.errf("baud", c.Baud, "%d is out of range; want %d to %d (e.g. 921600)", c.Baud, MinBaud, MaxBaud))
	}
	if !slices.Contains(protocols, c.Protocol) {
		add(c.errf("protocol", c.Protocol, "%q is not one of %s", c.Protocol, strings.Join(protocols, ", ")))
	}
	if !slices.Contains(flows, c.Flow) {
		add(c.errf("flow", c.Flow, "%q is not one of %s", c.Flow, strings.Join(flows, ", ")))
	}

	// Listeners, for the duplicate check at the end.
	var ls []listener
	for i, s := range c.Forwards {
		key := fmt.Sprintf("forwards[%d]", i)
		sp, err := forward.ParseLocal(s)
		if err != nil {
			add(c.errf(key, s, "%v", err))
			continue
		}
		ls = append(ls, listener{key: key, value: s, network: sp.Network(), host: sp.Bind, port: sp.Port})
	}
	for i, s := range c.Reverse {
		key := fmt.Sprintf("reverse[%d]", i)
		if _, err := forward.ParseRemote(s); err != nil {
			add(c.errf(key, s, "%v", err))
		}
	}

	for _, l := range []struct {
		key, value, example string
		networks            []string
	}{
		{"socks5.listen", c.SOCKS5.Listen, "127.0.0.1:1080", []string{"tcp"}},
		{"dns.listen", c.DNS.Listen, "127.0.0.1:5353", []string{"udp", "tcp"}},
		{"metrics.listen", c.Metrics.Listen, "127.0.0.1:9273", []string{"tcp"}},
	} {
		if l.value == "" {
			continue
		}
		host, port, err := parseListen(l.value, l.example)
		if err != nil {
			add(c.errf(l.key, l.value, "%v", err))
			continue
		}
		for _, nw := range l.networks {
			ls = append(ls, listener{key: l.key, value: l.value, network: nw, host: host, port: port})
		}
	}

	if u := c.DNS.Upstream; u != "" {
		if err := parseUpstream(u); err != nil {
			add(c.errf("dns.upstream", u, "%v", err))
		}
	}
	if t := c.DNS.TTL; t < 0 || t > maxTTL {
		add(c.errf("dns.ttl", t, "%s is out of range; want 0s to %s", t, maxTTL))
	}

	if c.Limits.MaxClients <= 0 {
		add(c.errf("limits.max_clients", c.Limits.MaxClients, "%d is not positive; want at least 1 (default 256)", c.Limits.MaxClients))
	}
	for _, d := range []struct {
		key string
		v   Duration
	}{
		{"limits.connect_timeout", c.Limits.ConnectTimeout},
		{"limits.handshake_timeout", c.Limits.HandshakeTimeout},
		{"limits.udp_idle_timeout", c.Limits.UDPIdleTimeout},
		{"reconnect.min_backoff", c.Reconnect.MinBackoff},
		{"reconnect.max_backoff", c.Reconnect.MaxBackoff},
	} {
		if d.v <= 0 {
			add(c.errf(d.key, d.v, "%s is not positive; want a duration such as \"10s\"", d.v))
		}
	}
	if c.Reconnect.MinBackoff > c.Reconnect.MaxBackoff && c.Reconnect.MaxBackoff > 0 {
		add(c.errf("reconnect.min_backoff", c.Reconnect.MinBackoff, "%s is more than reconnect.max_backoff (%s)", c.Reconnect.MinBackoff, c.Reconnect.MaxBackoff))
	}
	if d := c.Shutdown.DrainTimeout; d < 0 {
		add(c.errf("shutdown.drain_timeout", d, "%s is negative; want 0s (close at once) or more", d))
	}

	c.validateAccess(add)

	if !slices.Contains(logLevels, c.Log.Level) {
		add(c.errf("log.level", c.Log.Level, "%q is not one of %s", c.Log.Level, strings.Join(logLevels, ", ")))
	}
	if !slices.Contains(logFormats, c.Log.Format) {
		add(c.errf("log.format", c.Log.Format, "%q is not one of %s", c.Log.Format, strings.Join(logFormats, ", ")))
	}

	for i, a := range ls {
		for _, b := range ls[:i] {
			if a.conflicts(b) {
				where := b.key
				if file, line, env := c.source(b.key, b.value); file != "" {
					where += fmt.Sprintf(" (%s:%d)", file, line)
				} else if env != "" {
					where += " (" + env + ")"
				}
				add(c.errf(a.key, a.value, "%s %s is also where %s listens; give each its own address or port",
					a.network, net.JoinHostPort(a.host, strconv.Itoa(int(a.port))), where))
				break
			}
		}
	}
	return errors.Join(errs...)
}

// validateAccess checks access.default and every rule, through package
// policy so that the rules mean here what they mean when enforced.
func (c *Config) validateAccess(add func(*Error)) {
	if _, err := parseAction(c.Access.Default); err != nil {
		add(c.errf("access.default", c.Access.Default, "%v", err))
	}
	for i, r := range c.Access.Rules {
		key := fmt.Sprintf("access.rules[%d]", i)
		if _, err := parseAction(r.Action); err != nil {
			add(c.errf(key+".action", r.Action, "%v", err))
		}
		_, err := policy.New(true, []policy.Rule{{Allow: true, To: r.To, Ports: r.Ports}})
		var re *policy.RuleError
		if errors.As(err, &re) {
			add(c.errf(key+"."+re.Field, re.Value, "%q: %v", re.Value, re.Err))
		} else if err != nil {
			add(c.errf(key, "", "%v", err))
		}
	}
}

// listener is one address something in the configuration listens on.
type listener struct {
	key, value string // where it is configured
	network    string // "tcp" or "udp"
	host       string // "" for every address
	port       uint16 // 0: the system picks, never a conflict
}

// conflicts reports whether l and o would fight over one socket: the same
// network and port, and the same host or either on every address.
func (l listener) conflicts(o listener) bool {
	if l.network != o.network || l.port != o.port || l.port == 0 {
		return false
	}
	a, b := normalHost(l.host), normalHost(o.host)
	return a == b || a == "" || b == ""
}

// normalHost maps the spellings of "every address" to "" and of loopback
// names to their address, so equal listeners compare equal.
func normalHost(h string) string {
	if ip, err := netip.ParseAddr(h); err == nil {
		if ip.IsUnspecified() {
			return ""
		}
		return ip.Unmap().String()
	}
	switch h = strings.ToLower(strings.TrimSuffix(h, ".")); h {
	case "*":
		return ""
	case "localhost":
		return "127.0.0.1"
	}
	return h
}

// parseListen checks a listen address: host:port with a numeric port,
// host empty (every address), an IP literal or a host name.
func parseListen(s, example string) (host string, port uint16, err error) {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, fmt.Errorf("%q is not host:port (e.g. %s)", s, example)
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("%q: port %q is not a number from 0 to 65535 (e.g. %s)", s, p, example)
	}
	if h != "" && h != "*" {
		if _, err := netip.ParseAddr(h); err != nil && !isHostName(h) {
			return "", 0, fmt.Errorf("%q: %q is neither an IP address nor a host name (e.g. %s)", s, h, example)
		}
	}
	return h, uint16(n), nil
}

// isHostName reports whether h looks like a host name: letters, digits,
// '-', '_' and dots, not all digits and dots.
func isHostName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	letter := false
	for _, r := range h {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '-', r == '_':
			letter = true
		case r >= '0' && r <= '9', r == '.':
		default:
			return false
		}
	}
	return letter
}

// parseUpstream checks dns.upstream: an IP literal and a port.
func parseUpstream(s string) error {
	const want = `want ip:port of a resolver, e.g. 1.1.1.1:53 or [2606:4700:4700::1111]:53, or "" to answer A and AAAA through the ESP32 alone`
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not ip:port; %s", s, want)
	}
	if _, err := netip.ParseAddr(h); err != nil {
		return fmt.Errorf("%q: %q is not an IP address; %s", s, h, want)
	}
	if n, err := strconv.ParseUint(p, 10, 16); err != nil || n == 0 {
		return fmt.Errorf("%q: port %q is not a number from 1 to 65535; %s", s, p, want)
	}
	return nil
}
