package policy

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"syscall"
	"testing"
)

func TestParseRules(t *testing.T) {
	tests := []struct {
		to, ports string
		field     string // "" when the rule is valid
		msg       string // part of the error
	}{
		{to: "*"},
		{to: "10.0.0.1"},
		{to: "::1"},
		{to: "[::1]"},
		{to: "10.0.0.0/8"},
		{to: "10.1.2.3/8"}, // masked
		{to: "fd00::/8"},
		{to: "::ffff:10.0.0.0/104"},
		{to: "example.com"},
		{to: "Example.COM."},
		{to: "*.example.com"},
		{to: ".example.com"},
		{to: "localhost"},
		{to: "_srv.example.com"},
		{to: "*", ports: "22"},
		{to: "*", ports: "80,443"},
		{to: "*", ports: "1000-2000"},
		{to: "*", ports: " 22, 8000-8100 ,9000 "},
		{to: "*", ports: "*"},
		{to: "*", ports: "1-65535"},

		{to: "", field: "to", msg: "empty"},
		{to: "  ", field: "to", msg: "empty"},
		{to: "10.0.0.0/33", field: "to", msg: "not a CIDR range"},
		{to: "example.com/8", field: "to", msg: "not a CIDR range"},
		{to: "300.1.1.1", field: "to", msg: "not a valid IP address"},
		{to: "10.0.0", field: "to", msg: "not a valid IP address"},
		{to: "fe80::1%eth0", field: "to", msg: "zones"},
		{to: "foo.*.com", field: "to", msg: `"*" may only start`},
		{to: "*example.com", field: "to", msg: `"*" may only start`},
		{to: "**.example.com", field: "to", msg: `"*" may only start`},
		{to: "*.", field: "to", msg: "no host name"},
		{to: ".", field: "to", msg: "no host name"},
		{to: "a..b", field: "to", msg: "empty label"},
		{to: "exa mple.com", field: "to", msg: `" " is not allowed`},
		{to: "http://example.com", field: "to", msg: "not a CIDR range"},
		{to: strings.Repeat("a", 64) + ".com", field: "to", msg: "longer than 63"},
		{to: strings.Repeat("abcdefg.", 32) + "com", field: "to", msg: "longer than 253"},
		{to: "*", ports: "0", field: "ports", msg: `port "0" is not a number from 1 to 65535`},
		{to: "*", ports: "65536", field: "ports", msg: "65536"},
		{to: "*", ports: "http", field: "ports", msg: `"http"`},
		{to: "*", ports: "80,", field: "ports", msg: "empty entry"},
		{to: "*", ports: "2000-1000", field: "ports", msg: "backwards"},
		{to: "*", ports: "1000-", field: "ports", msg: `port ""`},
		{to: "*", ports: "-5", field: "ports", msg: `port ""`},
		{to: "*", ports: "1-2-3", field: "ports", msg: `"2-3"`},
	}
	for _, tt := range tests {
		_, err := New(true, []Rule{{Allow: true, To: "*"}, {To: tt.to, Ports: tt.ports}})
		if tt.field == "" {
			if err != nil {
				t.Errorf("to %q ports %q: %v", tt.to, tt.ports, err)
			}
			continue
		}
		var re *RuleError
		if !errors.As(err, &re) {
			t.Errorf("to %q ports %q: err = %v, want a *RuleError", tt.to, tt.ports, err)
			continue
		}
		if re.Index != 1 || re.Field != tt.field || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("to %q ports %q: err = %v (index %d, field %s), want rules[1].%s and %q",
				tt.to, tt.ports, err, re.Index, re.Field, tt.field, tt.msg)
		}
		if !strings.HasPrefix(err.Error(), "rules[1]."+tt.field+": ") {
			t.Errorf("error %q does not start with the rule's index and field", err)
		}
	}
}

func TestNeedsLookup(t *testing.T) {
	for _, tt := range []struct {
		rules []Rule
		want  bool
	}{
		{nil, false},
		{[]Rule{{To: "*"}, {To: "example.com"}, {To: ".example.org"}}, false},
		{[]Rule{{To: "example.com"}, {To: "10.0.0.1"}}, true},
		{[]Rule{{To: "fd00::/8"}}, true},
	} {
		p, err := New(true, tt.rules)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.NeedsLookup(); got != tt.want {
			t.Errorf("%v: NeedsLookup = %v, want %v", tt.rules, got, tt.want)
		}
	}
	if (*Policy)(nil).NeedsLookup() {
		t.Error("nil policy needs lookup")
	}
}

// fakeDNS is a lookup over a fixed table that records its calls.
type fakeDNS struct {
	table map[string][]string
	calls []string
}

func (f *fakeDNS) lookup(ctx context.Context, network, host string) ([]netip.Addr, error) {
	f.calls = append(f.calls, network+" "+host)
	addrs, ok := f.table[host]
	if !ok {
		return nil, errors.New("no such host")
	}
	var out []netip.Addr
	for _, a := range addrs {
		out = append(out, netip.MustParseAddr(a))
	}
	return out, nil
}

func TestCheck(t *testing.T) {
	dns := map[string][]string{
		"example.com":       {"93.184.216.34", "2606:2800:220:1::1"},
		"www.example.com":   {"93.184.216.35"},
		"internal.corp":     {"10.1.2.3"},
		"mixed.example.net": {"93.184.216.36", "10.9.9.9"},
		"mapped.test":       {"::ffff:10.2.3.4"},
		"rebind.test":       {"198.51.100.7"},
		"empty.test":        {},
	}
	type check struct {
		host string
		port uint16
		want string // address returned, or "deny", or "error"
	}
	tests := []struct {
		name   string
		def    bool
		rules  []Rule
		checks []check
	}{
		{
			name: "default allow, no rules",
			def:  true,
			checks: []check{
				{"example.com", 80, "example.com:80"},
				{"10.0.0.1", 22, "10.0.0.1:22"},
				{"::1", 22, "[::1]:22"},
			},
		},
		{
			name: "default deny, no rules",
			checks: []check{
				{"example.com", 80, "deny"},
				{"10.0.0.1", 22, "deny"},
			},
		},
		{
			name: "first match wins",
			def:  true,
			rules: []Rule{
				{Allow: true, To: "10.0.0.5"},
				{Allow: false, To: "10.0.0.0/8"},
				{Allow: true, To: "10.0.0.6"}, // shadowed
			},
			checks: []check{
				{"10.0.0.5", 22, "10.0.0.5:22"},
				{"10.0.0.6", 22, "deny"},
				{"11.0.0.1", 22, "11.0.0.1:22"},
			},
		},
		{
			name: "ports",
			rules: []Rule{
				{Allow: true, To: "*", Ports: "80,443"},
				{Allow: true, To: "*", Ports: "1000-2000"},
				{Allow: true, To: "192.0.2.1", Ports: "22"},
			},
			checks: []check{
				{"192.0.2.9", 80, "192.0.2.9:80"},
				{"192.0.2.9", 443, "192.0.2.9:443"},
				{"192.0.2.9", 8080, "deny"},
				{"192.0.2.9", 999, "deny"},
				{"192.0.2.9", 1000, "192.0.2.9:1000"},
				{"192.0.2.9", 2000, "192.0.2.9:2000"},
				{"192.0.2.9", 2001, "deny"},
				{"192.0.2.1", 22, "192.0.2.1:22"},
				{"192.0.2.9", 22, "deny"},
				{"example.com", 443, "93.184.216.34:443"}, // an IP rule exists: resolved
			},
		},
		{
			name: "name patterns, case and trailing dots",
			rules: []Rule{
				{Allow: true, To: "Exact.Example.COM."},
				{Allow: true, To: "*.sub.example.org"},
				{Allow: true, To: ".dom.example.net"},
			},
			checks: []check{
				{"exact.example.com", 80, "exact.example.com:80"},
				{"EXACT.example.com.", 80, "EXACT.example.com.:80"}, // returned unchanged
				{"x.exact.example.com", 80, "deny"},
				{"sub.example.org", 80, "deny"}, // not the apex
				{"a.sub.example.org", 80, "a.sub.example.org:80"},
				{"a.b.SUB.example.org.", 80, "a.b.SUB.example.org.:80"},
				{"xsub.example.org", 80, "deny"},
				{"dom.example.net", 80, "dom.example.net:80"},
				{"a.dom.example.net", 80, "a.dom.example.net:80"},
				{"notdom.example.net", 80, "deny"},
				{"93.184.216.34", 80, "deny"}, // IP literals never match names
			},
		},
		{
			name:  "star matches IP literals and names",
			rules: []Rule{{Allow: false, To: "*", Ports: "25"}},
			def:   true,
			checks: []check{
				{"192.0.2.1", 25, "deny"},
				{"mail.example.com", 25, "deny"},
				{"mail.example.com", 587, "mail.example.com:587"},
			},
		},
		{
			name: "IPv4-mapped addresses are unmapped",
			def:  true,
			rules: []Rule{
				{Allow: false, To: "10.0.0.0/8"},
				{Allow: false, To: "::ffff:192.168.0.0/112"}, // written mapped
			},
			checks: []check{
				{"::ffff:10.1.1.1", 80, "deny"},
				{"[::ffff:10.1.1.1]", 80, "deny"},
				{"::ffff:11.1.1.1", 80, "11.1.1.1:80"},
				{"192.168.3.4", 80, "deny"},
				{"mapped.test", 80, "deny"},
			},
		},
		{
			name: "IPv6",
			rules: []Rule{
				{Allow: true, To: "2001:db8::/32"},
				{Allow: true, To: "::1", Ports: "22"},
			},
			checks: []check{
				{"2001:db8::5", 443, "[2001:db8::5]:443"},
				{"[2001:DB8::5]", 443, "[2001:db8::5]:443"},
				{"::1", 22, "[::1]:22"},
				{"::1", 23, "deny"},
				{"2001:db9::1", 443, "deny"},
			},
		},
		{
			name: "names resolved against IP rules",
			def:  true,
			rules: []Rule{
				{Allow: false, To: "10.0.0.0/8"},
			},
			checks: []check{
				{"internal.corp", 80, "deny"},
				{"mixed.example.net", 80, "deny"}, // one address of several denied
				{"www.example.com", 80, "93.184.216.35:80"},
				{"example.com", 80, "93.184.216.34:80"}, // the first address
				{"nosuch.test", 80, "error"},
				{"empty.test", 80, "error"},
			},
		},
		{
			name: "a name rule before IP rules decides for every address",
			rules: []Rule{
				{Allow: false, To: ".example.com"},
				{Allow: true, To: "internal.corp"},
				{Allow: true, To: "0.0.0.0/0"},
			},
			checks: []check{
				{"www.example.com", 80, "deny"}, // resolves to an allowed IP, but the name is denied first
				{"internal.corp", 80, "10.1.2.3:80"},
				{"rebind.test", 80, "198.51.100.7:80"},
			},
		},
		{
			name: "an IP rule before a name rule decides for its addresses",
			rules: []Rule{
				{Allow: false, To: "10.0.0.0/8"},
				{Allow: true, To: "internal.corp"},
				{Allow: true, To: ".example.net"},
			},
			checks: []check{
				{"internal.corp", 80, "deny"},
				{"mixed.example.net", 80, "deny"},
				{"www.example.com", 80, "deny"}, // no rule: the default
			},
		},
		{
			name:  "name allowed with IP rules present: resolved",
			rules: []Rule{{Allow: true, To: "rebind.test"}, {Allow: true, To: "192.0.2.0/24"}},
			checks: []check{
				// The returned address is the checked, resolved IP, so a
				// second answer at dial time cannot differ.
				{"rebind.test", 443, "198.51.100.7:443"},
				{"REBIND.test.", 443, "198.51.100.7:443"},
			},
		},
	}
	for _, tt := range tests {
		p, err := New(tt.def, tt.rules)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		for _, c := range tt.checks {
			f := &fakeDNS{table: dns}
			got, err := p.Check(context.Background(), c.host, c.port, func(ctx context.Context, network, host string) ([]netip.Addr, error) {
				// Names are looked up case-insensitively, like DNS.
				return f.lookup(ctx, network, strings.TrimSuffix(strings.ToLower(host), "."))
			})
			switch {
			case c.want == "deny":
				if !errors.Is(err, ErrDenied) || !errors.Is(err, syscall.EACCES) {
					t.Errorf("%s: Check(%s, %d) = %q, %v; want denied", tt.name, c.host, c.port, got, err)
				}
			case c.want == "error":
				if err == nil || errors.Is(err, ErrDenied) {
					t.Errorf("%s: Check(%s, %d) = %q, %v; want a lookup error", tt.name, c.host, c.port, got, err)
				}
			default:
				if err != nil || got != c.want {
					t.Errorf("%s: Check(%s, %d) = %q, %v; want %q", tt.name, c.host, c.port, got, err, c.want)
				}
			}
			_, isIP := netip.ParseAddr(strings.Trim(c.host, "[]"))
			_, final := p.decideName(strings.TrimSuffix(strings.ToLower(c.host), "."), c.port)
			denyByName := c.want == "deny" && final
			if wantCalls := p.NeedsLookup() && isIP != nil && !denyByName; (len(f.calls) > 0) != wantCalls {
				t.Errorf("%s: Check(%s): lookups %v, want lookup %v", tt.name, c.host, f.calls, wantCalls)
			}
			for _, call := range f.calls {
				if !strings.HasPrefix(call, "ip ") {
					t.Errorf("lookup called with %q, want network ip", call)
				}
			}
		}
	}
}

func TestCheckErrors(t *testing.T) {
	p, err := New(true, []Rule{{Allow: false, To: "10.0.0.0/8", Ports: "22"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	_, err = p.Check(ctx, "10.1.2.3", 22, nil)
	if want := "access denied by policy: 10.1.2.3:22 matches rules[0] (deny to 10.0.0.0/8 ports 22)"; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}

	lookupErr := errors.New("device: no such host")
	_, err = p.Check(ctx, "nosuch.test", 22, func(context.Context, string, string) ([]netip.Addr, error) { return nil, lookupErr })
	if !errors.Is(err, lookupErr) || errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), "nosuch.test") {
		t.Errorf("lookup failure: err = %v", err)
	}

	if _, err = p.Check(ctx, "example.com", 22, nil); err == nil || errors.Is(err, ErrDenied) {
		t.Errorf("no resolver: err = %v, want an error that is not ErrDenied", err)
	}
	if _, err = p.Check(ctx, "", 22, nil); err == nil {
		t.Error("empty host accepted")
	}

	deny, _ := New(false, nil)
	_, err = deny.Check(ctx, "example.com", 80, nil)
	if !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), "default is deny") {
		t.Errorf("default deny: err = %v", err)
	}
}

// A name that a name rule denies before any IP rule applies is denied
// without asking the device, even when the lookup would fail.
func TestDenyByNameWithoutLookup(t *testing.T) {
	p, err := New(true, []Rule{
		{Allow: false, To: ".tracker.test"},
		{Allow: false, To: "*", Ports: "25"},
		{Allow: false, To: "10.0.0.0/8"},
		{Allow: false, To: "late.test"}, // after an IP rule: needs the addresses
	})
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	lookup := func(context.Context, string, string) ([]netip.Addr, error) {
		calls++
		return nil, errors.New("no such host")
	}
	for _, tt := range []struct {
		host   string
		port   uint16
		denied bool
		calls  int
	}{
		{"a.tracker.test", 443, true, 0},
		{"mail.example.com", 25, true, 0},
		{"late.test", 80, false, 1}, // the lookup error, not a denial
		{"example.com", 80, false, 1},
	} {
		calls = 0
		_, err := p.Check(context.Background(), tt.host, tt.port, lookup)
		if errors.Is(err, ErrDenied) != tt.denied || err == nil || calls != tt.calls {
			t.Errorf("Check(%s, %d) = %v after %d lookups; want denied %v after %d", tt.host, tt.port, err, calls, tt.denied, tt.calls)
		}
	}
	deny, err := New(false, []Rule{{Allow: true, To: "10.0.0.0/8", Ports: "22"}})
	if err != nil {
		t.Fatal(err)
	}
	calls = 0
	if _, err := deny.Check(context.Background(), "example.com", 80, lookup); !errors.Is(err, ErrDenied) || calls != 0 {
		t.Errorf("default deny, no rule for port 80: %v after %d lookups", err, calls)
	}
}

func TestNilPolicyAllows(t *testing.T) {
	var p *Policy
	got, err := p.Check(context.Background(), "example.com", 80, nil)
	if err != nil || got != "example.com:80" {
		t.Errorf("nil policy: %q, %v", got, err)
	}
}

func TestErrDenied(t *testing.T) {
	if !errors.Is(ErrDenied, syscall.EACCES) {
		t.Error("ErrDenied is not EACCES")
	}
	if errors.Is(syscall.EACCES, ErrDenied) {
		t.Error("every EACCES is ErrDenied")
	}
}
