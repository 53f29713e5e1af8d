package policy

import (
	"context"
	"errors"
	"net/netip"
	"testing"
)

// FuzzRule checks that New never panics on a rule, that a rule it refuses
// gives a *RuleError, and that Check on an accepted rule never panics and
// returns a dialable address or an error.
func FuzzRule(f *testing.F) {
	for _, s := range [][2]string{
		{"*", ""}, {"10.0.0.0/8", "22"}, {"::ffff:10.0.0.0/104", "80,443"}, {"*.example.com", "1000-2000"},
		{".example.com", "1-65535"}, {"Example.COM.", "0"}, {"fe80::1%eth0", ""}, {"a..b", "2-1"}, {"[::1]", ","},
	} {
		f.Add(s[0], s[1], "example.com", uint16(80))
	}
	f.Add("10.0.0.1", "", "10.0.0.1", uint16(22))
	f.Add("::1", "", "[::ffff:127.0.0.1]", uint16(0))
	f.Fuzz(func(t *testing.T, to, ports, host string, port uint16) {
		p, err := New(false, []Rule{{Allow: true, To: to, Ports: ports}})
		if err != nil {
			var re *RuleError
			if !errors.As(err, &re) || re.Index != 0 {
				t.Fatalf("New: %v is not a *RuleError for rule 0", err)
			}
			return
		}
		lookup := func(context.Context, string, string) ([]netip.Addr, error) {
			return []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("::ffff:192.0.2.1")}, nil
		}
		addr, err := p.Check(context.Background(), host, port, lookup)
		if err == nil && addr == "" {
			t.Fatalf("Check(%q, %d) allowed with an empty address", host, port)
		}
	})
}
