package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Rule is one access rule as written in the configuration.
//
// To is "*" (any destination), an IP address ("10.0.0.1", "::1"), a CIDR
// range ("10.0.0.0/8", "fd00::/8") or a host name pattern: "example.com"
// (that name only), "*.example.com" (its subdomains, not the name itself)
// or ".example.com" (the name and its subdomains). Names compare without
// regard to case or a trailing dot.
//
// Ports is "" for every port, or a comma-separated list of ports and
// ranges: "22", "80,443", "1000-2000", "22,8000-8100".
type Rule struct {
	Allow bool
	To    string
	Ports string
}

// String formats the rule as "allow to 10.0.0.0/8 ports 22" for logs and
// error messages.
func (r Rule) String() string {
	action := "deny"
	if r.Allow {
		action = "allow"
	}
	s := action + " to " + r.To
	if r.Ports != "" {
		s += " ports " + r.Ports
	}
	return s
}

// RuleError is the error New returns for a rule it cannot parse.
type RuleError struct {
	Index int    // position of the rule in the list, from 0
	Field string // "to" or "ports"
	Value string // the field as written
	Err   error  // what is wrong with it
}

func (e *RuleError) Error() string {
	return fmt.Sprintf("rules[%d].%s: %q: %v", e.Index, e.Field, e.Value, e.Err)
}

func (e *RuleError) Unwrap() error { return e.Err }

// kind is what a rule's To matches.
type kind uint8

const (
	kindAny        kind = iota // "*"
	kindPrefix                 // IP address or CIDR range
	kindName                   // "example.com": exactly the name
	kindSubdomains             // "*.example.com": names below it, not itself
	kindDomain                 // ".example.com": the name and names below it
)

// portRange is an inclusive range of ports.
type portRange struct{ lo, hi uint16 }

// rule is a parsed Rule.
type rule struct {
	src    Rule
	kind   kind
	prefix netip.Prefix // kindPrefix
	name   string       // kindName, kindSubdomains, kindDomain: lower case, no trailing dot
	ports  []portRange  // nil: every port
}

// parseRule parses r; the error names the field that is wrong.
func parseRule(r Rule) (rule, *RuleError) {
	out := rule{src: r}
	if err := out.parseTo(strings.TrimSpace(r.To)); err != nil {
		return rule{}, &RuleError{Field: "to", Value: r.To, Err: err}
	}
	ports, err := parsePorts(r.Ports)
	if err != nil {
		return rule{}, &RuleError{Field: "ports", Value: r.Ports, Err: err}
	}
	out.ports = ports
	return out, nil
}

const wantTo = `want "*", an IP address (10.0.0.1), a CIDR range (10.0.0.0/8) or a host name (example.com, *.example.com, .example.com)`

func (r *rule) parseTo(to string) error {
	switch {
	case to == "":
		return errors.New("empty; " + wantTo)
	case to == "*":
		r.kind = kindAny
		return nil
	case strings.Contains(to, "/"):
		p, err := netip.ParsePrefix(to)
		if err != nil {
			return fmt.Errorf("not a CIDR range (e.g. 10.0.0.0/8 or fd00::/8)")
		}
		r.kind, r.prefix = kindPrefix, unmapPrefix(p.Masked())
		return nil
	}
	bare := to
	if strings.HasPrefix(bare, "[") && strings.HasSuffix(bare, "]") {
		bare = bare[1 : len(bare)-1]
	}
	if ip, err := netip.ParseAddr(bare); err == nil {
		if ip.Zone() != "" {
			return fmt.Errorf("IPv6 zones are not supported; write the address without %%%s", ip.Zone())
		}
		ip = ip.Unmap()
		r.kind, r.prefix = kindPrefix, netip.PrefixFrom(ip, ip.BitLen())
		return nil
	}
	name := strings.ToLower(to)
	switch {
	case strings.HasPrefix(name, "*."):
		r.kind, name = kindSubdomains, name[2:]
	case strings.HasPrefix(name, "."):
		r.kind, name = kindDomain, name[1:]
	default:
		r.kind = kindName
	}
	name = strings.TrimSuffix(name, ".")
	if err := checkName(name); err != nil {
		return err
	}
	r.name = name
	return nil
}

// unmapPrefix turns ::ffff:a.b.c.d/n (n >= 96) into a.b.c.d/(n-96), so
// that it matches the unmapped addresses Check compares against.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p
}

// checkName accepts a host name (no wildcard left): dot-separated labels
// of letters, digits, '-' and '_', 1 to 63 bytes each, 253 in all, and a
// last label that is not all digits (which would be a mistyped IP address).
func checkName(name string) error {
	if name == "" {
		return errors.New("no host name; " + wantTo)
	}
	if len(name) > 253 {
		return errors.New("host name longer than 253 bytes")
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if l == "" {
			return errors.New("empty label in host name (two dots in a row?)")
		}
		if len(l) > 63 {
			return errors.New("host name label longer than 63 bytes")
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			switch {
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
			case c == '*':
				return errors.New(`"*" may only start a pattern, as in *.example.com; ` + wantTo)
			default:
				return fmt.Errorf("%q is not allowed in a host name; %s", string(rune(c)), wantTo)
			}
		}
	}
	last := labels[len(labels)-1]
	if strings.Trim(last, "0123456789") == "" {
		return errors.New("not a valid IP address (nor a host name: the last label is all digits)")
	}
	return nil
}

// parsePorts parses "", "*", "22", "80,443", "1000-2000" and lists of
// them. A nil result means every port.
func parsePorts(s string) ([]portRange, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "*" {
		return nil, nil
	}
	var out []portRange
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			return nil, errors.New(`empty entry in the port list; want e.g. "22", "80,443" or "1000-2000"`)
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := parsePort(strings.TrimSpace(lo))
		if err != nil {
			return nil, err
		}
		b := a
		if isRange {
			if b, err = parsePort(strings.TrimSpace(hi)); err != nil {
				return nil, err
			}
			if b < a {
				return nil, fmt.Errorf("range %q runs backwards; write the lower port first", part)
			}
		}
		out = append(out, portRange{a, b})
	}
	return out, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %q is not a number from 1 to 65535", s)
	}
	return uint16(n), nil
}

// matchPort reports whether port is in the rule's ports.
func (r *rule) matchPort(port uint16) bool {
	if r.ports == nil {
		return true
	}
	for _, pr := range r.ports {
		if port >= pr.lo && port <= pr.hi {
			return true
		}
	}
	return false
}

// matchName reports whether the rule's name pattern matches name, which is
// lower case without a trailing dot.
func (r *rule) matchName(name string) bool {
	switch r.kind {
	case kindAny:
		return true
	case kindName:
		return name == r.name
	case kindSubdomains:
		return strings.HasSuffix(name, "."+r.name)
	case kindDomain:
		return name == r.name || strings.HasSuffix(name, "."+r.name)
	}
	return false
}

// matchAddr reports whether the rule matches the unmapped address ip.
func (r *rule) matchAddr(ip netip.Addr) bool {
	switch r.kind {
	case kindAny:
		return true
	case kindPrefix:
		return r.prefix.Contains(ip)
	}
	return false
}
