package forward

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Spec is one forward as written on the command line or in the config file.
//
// For a local forward (-L [BIND:]PORT:HOST:HOSTPORT[/udp]) Bind and Port are
// where this host listens and Host:HostPort is what the ESP32 connects to.
// For a remote forward (-R [DEVBIND:]DEVPORT:HOST:HOSTPORT) Bind and Port
// are where the ESP32 listens and Host:HostPort is what this host connects
// to.
type Spec struct {
	Bind     string // IP literal; "" listens on every address
	Port     uint16
	Host     string // name or IP literal, without brackets
	HostPort uint16
	UDP      bool
	Remote   bool
}

// DefaultLocalBind is where a local forward listens when its spec names no
// address: loopback, so nothing is exposed by accident.
const DefaultLocalBind = "127.0.0.1"

// ParseLocal parses -L [BIND:]PORT:HOST:HOSTPORT[/udp]. BIND defaults to
// 127.0.0.1; "*" or "0.0.0.0" or "[::]" listen on every address. IPv6
// addresses are written in brackets.
func ParseLocal(s string) (Spec, error) {
	sp, err := parse(s, true)
	if err != nil {
		return Spec{}, fmt.Errorf("local forward %q: %w; want [BIND:]PORT:HOST:HOSTPORT[/udp], e.g. 8080:example.com:80", s, err)
	}
	return sp, nil
}

// ParseRemote parses -R [DEVBIND:]DEVPORT:HOST:HOSTPORT. DEVBIND defaults
// to every address of the ESP32.
func ParseRemote(s string) (Spec, error) {
	sp, err := parse(s, false)
	if err != nil {
		return Spec{}, fmt.Errorf("remote forward %q: %w; want [DEVBIND:]DEVPORT:HOST:HOSTPORT, e.g. 2222:127.0.0.1:22", s, err)
	}
	sp.Remote = true
	return sp, nil
}

func parse(s string, local bool) (Spec, error) {
	var sp Spec
	rest := s
	if r, ok := strings.CutSuffix(rest, "/udp"); ok {
		if !local {
			return sp, fmt.Errorf("remote forwards are TCP only")
		}
		sp.UDP, rest = true, r
	} else if r, ok := strings.CutSuffix(rest, "/tcp"); ok {
		rest = r
	}
	fields, err := splitFields(rest)
	if err != nil {
		return sp, err
	}
	switch len(fields) {
	case 3:
		if local {
			sp.Bind = DefaultLocalBind
		}
	case 4:
		b := fields[0]
		fields = fields[1:]
		switch b {
		case "", "*":
			sp.Bind = ""
		case "localhost":
			sp.Bind = "127.0.0.1"
		default:
			ip, err := netip.ParseAddr(b)
			if err != nil {
				return sp, fmt.Errorf("bind address %q is not an IP address", b)
			}
			if ip.IsUnspecified() {
				sp.Bind = ""
			} else {
				sp.Bind = ip.String()
			}
		}
	default:
		return sp, fmt.Errorf("%d fields", len(fields))
	}
	if sp.Port, err = parsePort(fields[0], "listen port"); err != nil {
		return sp, err
	}
	sp.Host = fields[1]
	if sp.Host == "" {
		return sp, fmt.Errorf("empty destination host")
	}
	if strings.ContainsAny(sp.Host, " /\t") || len(sp.Host) > 253 {
		return sp, fmt.Errorf("bad destination host %q", sp.Host)
	}
	if sp.HostPort, err = parsePort(fields[2], "destination port"); err != nil {
		return sp, err
	}
	if sp.HostPort == 0 {
		return sp, fmt.Errorf("destination port 0")
	}
	return sp, nil
}

// splitFields splits on colons outside brackets and strips the brackets.
func splitFields(s string) ([]string, error) {
	var out []string
	for {
		if strings.HasPrefix(s, "[") {
			end := strings.IndexByte(s, ']')
			if end < 0 {
				return nil, fmt.Errorf("unclosed [")
			}
			out = append(out, s[1:end])
			s = s[end+1:]
			if s == "" {
				return out, nil
			}
			if s[0] != ':' {
				return nil, fmt.Errorf("want ':' after ]")
			}
			s = s[1:]
			continue
		}
		i := strings.IndexByte(s, ':')
		if i < 0 {
			return append(out, s), nil
		}
		out = append(out, s[:i])
		s = s[i+1:]
	}
}

func parsePort(s, what string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("%s %q is not a number from 0 to 65535", what, s)
	}
	return uint16(n), nil
}

// ListenAddr is where the forward listens, as host:port.
func (s Spec) ListenAddr() string {
	return net.JoinHostPort(s.Bind, strconv.Itoa(int(s.Port)))
}

// Target is what the forward connects to, as host:port.
func (s Spec) Target() string {
	return net.JoinHostPort(s.Host, strconv.Itoa(int(s.HostPort)))
}

// Network is "udp" or "tcp".
func (s Spec) Network() string {
	if s.UDP {
		return "udp"
	}
	return "tcp"
}

// String formats the spec the way ParseLocal and ParseRemote read it, with
// the defaults spelled out; it names the forward in logs and metrics.
func (s Spec) String() string {
	bind := s.Bind
	if bind == "" {
		bind = "*"
	} else if strings.Contains(bind, ":") {
		bind = "[" + bind + "]"
	}
	host := s.Host
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	out := fmt.Sprintf("%s:%d:%s:%d", bind, s.Port, host, s.HostPort)
	if s.UDP {
		out += "/udp"
	}
	return out
}
