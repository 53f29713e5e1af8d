package policy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
)

// ErrDenied is the error, wrapped, that Check returns for a destination the
// policy refuses. errors.Is(err, syscall.EACCES) is also true for it, so
// proxies that map errnos to replies (SOCKS5 "connection not allowed by
// ruleset") need not import this package.
var ErrDenied error = deniedError{}

type deniedError struct{}

func (deniedError) Error() string { return "access denied by policy" }

func (deniedError) Is(target error) bool { return target == syscall.EACCES }

// Policy is a parsed, ordered rule list and a default. The zero of
// *Policy (nil) allows everything.
type Policy struct {
	defaultAllow bool
	rules        []rule
	needsLookup  bool
}

// New parses rules in order. defaultAllow decides what no rule matches.
// The error is a *RuleError naming the first bad rule's index and field.
func New(defaultAllow bool, rules []Rule) (*Policy, error) {
	p := &Policy{defaultAllow: defaultAllow, rules: make([]rule, 0, len(rules))}
	for i, r := range rules {
		pr, err := parseRule(r)
		if err != nil {
			err.Index = i
			return nil, err
		}
		if pr.kind == kindPrefix {
			p.needsLookup = true
		}
		p.rules = append(p.rules, pr)
	}
	return p, nil
}

// NeedsLookup reports whether some rule is an IP or CIDR rule, so that a
// destination given as a name must be resolved before it can be checked.
func (p *Policy) NeedsLookup() bool { return p != nil && p.needsLookup }

// Check decides whether host:port may be reached and returns the address
// to dial. lookup has the signature of (*net.Resolver).LookupNetIP and
// resolves names on the ESP32; it is only called when NeedsLookup is true.
//
// host is an IP literal (brackets allowed, IPv4-mapped IPv6 is unmapped)
// or a name. An IP literal is matched against IP/CIDR rules and "*" only;
// the address returned is the unmapped IP and port.
//
// A name, when the policy has no IP/CIDR rules, is matched against name
// rules and "*" and returned unchanged as "name:port", for the device to
// resolve. When the policy has IP/CIDR rules, Check resolves the name with
// lookup(ctx, "ip", name) and decides for each address in turn, by the
// first rule that matches either the name or that address; if any address
// is denied the destination is denied, otherwise Check returns the first
// address with the port, so the caller connects to exactly what was
// checked. A rule that matches the name therefore decides for every
// address when it comes before the IP rules: list "deny 10.0.0.0/8" before
// "allow .example.com" to keep example.com's names out of 10/8. A name
// that is denied whatever its addresses (by a name rule before any IP rule
// applies, or by a default of deny) is refused without a lookup.
//
// A refused destination gives an error wrapping ErrDenied that names the
// deciding rule; a failed lookup gives its error, wrapped, and not
// ErrDenied.
func (p *Policy) Check(ctx context.Context, host string, port uint16, lookup func(ctx context.Context, network, host string) ([]netip.Addr, error)) (address string, err error) {
	if host == "" {
		return "", errors.New("policy: empty destination host")
	}
	bare := host
	if strings.HasPrefix(bare, "[") && strings.HasSuffix(bare, "]") {
		bare = bare[1 : len(bare)-1]
	}
	if ip, err := netip.ParseAddr(bare); err == nil {
		ip = ip.Unmap()
		if i := p.decideAddr("", ip.WithZone(""), port); !p.allowed(i) {
			return "", p.denied(net.JoinHostPort(bare, strconv.Itoa(int(port))), i)
		}
		return netip.AddrPortFrom(ip, port).String(), nil
	}
	name := strings.TrimSuffix(strings.ToLower(host), ".")
	if !p.NeedsLookup() {
		if i := p.decideAddr(name, netip.Addr{}, port); !p.allowed(i) {
			return "", p.denied(net.JoinHostPort(host, strconv.Itoa(int(port))), i)
		}
		return net.JoinHostPort(host, strconv.Itoa(int(port))), nil
	}
	// A name denied before any IP rule could apply is denied for every
	// address: no need to ask the device.
	if i, final := p.decideName(name, port); final && !p.allowed(i) {
		return "", p.denied(net.JoinHostPort(host, strconv.Itoa(int(port))), i)
	}
	if lookup == nil {
		return "", fmt.Errorf("policy: %s must be resolved to be checked against IP rules, but no resolver was given", host)
	}
	addrs, err := lookup(ctx, "ip", host)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", host, err)
	}
	var first netip.Addr
	for _, a := range addrs {
		if !a.IsValid() {
			continue
		}
		a = a.Unmap().WithZone("")
		if i := p.decideAddr(name, a, port); !p.allowed(i) {
			return "", p.denied(fmt.Sprintf("%s (%s)", net.JoinHostPort(host, strconv.Itoa(int(port))), a), i)
		}
		if !first.IsValid() {
			first = a
		}
	}
	if !first.IsValid() {
		return "", fmt.Errorf("resolve %s: no addresses", host)
	}
	return netip.AddrPortFrom(first, port).String(), nil
}

// decideAddr returns the index of the first rule matching the name (if
// not "") or the address (if valid) and port, or -1 if none does.
func (p *Policy) decideAddr(name string, ip netip.Addr, port uint16) int {
	if p == nil {
		return -1
	}
	for i := range p.rules {
		r := &p.rules[i]
		if !r.matchPort(port) {
			continue
		}
		if (name != "" && r.matchName(name)) || (ip.IsValid() && r.matchAddr(ip)) {
			return i
		}
	}
	return -1
}

// decideName returns the rule that decides for name and port whatever its
// addresses, and true; or false if an IP rule comes first, so that the
// decision depends on the addresses.
func (p *Policy) decideName(name string, port uint16) (int, bool) {
	for i := range p.rules {
		r := &p.rules[i]
		if !r.matchPort(port) {
			continue
		}
		if r.kind == kindPrefix {
			return -1, false
		}
		if r.matchName(name) {
			return i, true
		}
	}
	return -1, true
}

// allowed is the decision of rule i, or of the default for -1.
func (p *Policy) allowed(i int) bool {
	if p == nil {
		return true
	}
	if i < 0 {
		return p.defaultAllow
	}
	return p.rules[i].src.Allow
}

func (p *Policy) denied(dest string, i int) error {
	if i < 0 {
		return fmt.Errorf("%w: %s (no rule matches and the default is deny)", ErrDenied, dest)
	}
	return fmt.Errorf("%w: %s matches rules[%d] (%s)", ErrDenied, dest, i, p.rules[i].src)
}

// String describes the policy for logs: the default and the rule count.
func (p *Policy) String() string {
	if p == nil {
		return "allow all"
	}
	d := "deny"
	if p.defaultAllow {
		d = "allow"
	}
	return fmt.Sprintf("%d rules, default %s", len(p.rules), d)
}
