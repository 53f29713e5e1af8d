package forward

import (
	"strings"
	"testing"
)

func TestParseLocal(t *testing.T) {
	cases := []struct {
		in   string
		want Spec
		str  string
	}{
		{"8080:example.com:80", Spec{Bind: "127.0.0.1", Port: 8080, Host: "example.com", HostPort: 80}, "127.0.0.1:8080:example.com:80"},
		{"0.0.0.0:8080:10.0.0.1:80", Spec{Port: 8080, Host: "10.0.0.1", HostPort: 80}, "*:8080:10.0.0.1:80"},
		{"*:53:1.1.1.1:53/udp", Spec{Port: 53, Host: "1.1.1.1", HostPort: 53, UDP: true}, "*:53:1.1.1.1:53/udp"},
		{"[::1]:8080:[2001:db8::1]:443", Spec{Bind: "::1", Port: 8080, Host: "2001:db8::1", HostPort: 443}, "[::1]:8080:[2001:db8::1]:443"},
		{"localhost:0:h:1/tcp", Spec{Bind: "127.0.0.1", Port: 0, Host: "h", HostPort: 1}, "127.0.0.1:0:h:1"},
		{":9000:h:1", Spec{Port: 9000, Host: "h", HostPort: 1}, "*:9000:h:1"},
	}
	for _, c := range cases {
		got, err := ParseLocal(c.in)
		if err != nil {
			t.Errorf("ParseLocal(%q): %v", c.in, err)
			continue
		}
		if got != c.want {
			t.Errorf("ParseLocal(%q) = %+v, want %+v", c.in, got, c.want)
		}
		if got.String() != c.str {
			t.Errorf("ParseLocal(%q).String() = %q, want %q", c.in, got.String(), c.str)
		}
		again, err := ParseLocal(got.String())
		if err != nil || again != got {
			t.Errorf("round trip of %q: %+v, %v", got.String(), again, err)
		}
	}
}

func TestParseRemote(t *testing.T) {
	got, err := ParseRemote("2222:127.0.0.1:22")
	if err != nil {
		t.Fatal(err)
	}
	want := Spec{Port: 2222, Host: "127.0.0.1", HostPort: 22, Remote: true}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if got.ListenAddr() != ":2222" || got.Target() != "127.0.0.1:22" {
		t.Fatalf("ListenAddr %q Target %q", got.ListenAddr(), got.Target())
	}
	got, err = ParseRemote("192.168.4.1:80:localhost:8080")
	if err != nil || got.Bind != "192.168.4.1" {
		t.Fatalf("got %+v, %v", got, err)
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", "fields"},
		{"8080", "fields"},
		{"8080:h", "fields"},
		{"a:b:c:d:e", "fields"},
		{"x:8080:h:80", "not an IP"},
		{"70000:h:80", "listen port"},
		{"8080:h:http", "destination port"},
		{"8080::80", "empty destination"},
		{"8080:h:0", "port 0"},
		{"[::1:8080:h:80", "unclosed"},
		{"[::1]x:8080:h:80", "after ]"},
		{"8080:h h:80", "bad destination"},
	}
	for _, c := range cases {
		_, err := ParseLocal(c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseLocal(%q) = %v, want an error containing %q", c.in, err, c.want)
		}
	}
	if _, err := ParseRemote("53:h:53/udp"); err == nil || !strings.Contains(err.Error(), "TCP only") {
		t.Errorf("ParseRemote(/udp) = %v", err)
	}
}

func FuzzParseLocal(f *testing.F) {
	for _, s := range []string{"8080:example.com:80", "[::1]:1:[::2]:3/udp", "*:1:h:2", "[", ":::"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sp, err := ParseLocal(s)
		if err != nil {
			return
		}
		again, err := ParseLocal(sp.String())
		if err != nil || again != sp {
			t.Fatalf("%q parsed to %+v, whose String %q parses to %+v, %v", s, sp, sp.String(), again, err)
		}
	})
}
