package daemon_test

import (
	"bytes"
	"net"
	"strconv"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/uartproxy/uartproxy/internal/daemon"
)

// TestRebootDuringTransfer reboots the emulated ESP32 while a SOCKS5
// client downloads: the download ends early with the connection closed
// (not hanging), a new one afterwards is byte-exact, and the reboot is
// counted.
func TestRebootDuringTransfer(t *testing.T) {
	t.Parallel()
	const size = 8 << 20
	body := randomBytes(t, size)
	srv := tcpServer(t, sender(body, 32<<10, 0))
	d := start(t, daemon.Options{Config: emulated()})
	proxy := d.Addrs().SOCKS5.String()

	c, err := socksConnect(ctxFor(t, 10*time.Second), proxy, "127.0.0.1", srv.Port)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	got := 0
	buf := make([]byte, 32<<10)
	rebooted := false
	for {
		n, err := c.Read(buf)
		got += n
		if !rebooted && got >= 256<<10 {
			if err := d.Uplink().RebootEmulated(); err != nil {
				t.Fatal(err)
			}
			rebooted = true
		}
		if err != nil {
			if isTimeout(err) {
				t.Fatalf("the client hung after the reboot: %v after %d bytes", err, got)
			}
			t.Logf("transfer ended by the reboot after %d of %d bytes: %v", got, size, err)
			break
		}
	}
	if !rebooted || got >= size {
		t.Fatalf("got %d of %d bytes; rebooted %v: the reboot did not cut the transfer", got, size, rebooted)
	}

	eventually(t, 15*time.Second, "the ESP32 up again", func() bool { return up(d) })
	small := body[:1<<20]
	srv2 := tcpServer(t, sender(small, 32<<10, 0))
	c2, err := socksConnect(ctxFor(t, 10*time.Second), proxy, "127.0.0.1", srv2.Port)
	if err != nil {
		t.Fatalf("after the reboot: %v", err)
	}
	defer c2.Close()
	b, err := readAll(c2, 30*time.Second)
	if err != nil || !bytes.Equal(b, small) {
		t.Fatalf("after the reboot: %d of %d bytes, equal %v, %v", len(b), len(small), bytes.Equal(b, small), err)
	}
	eventually(t, 5*time.Second, "the reboot counted", func() bool { return d.Snapshot().Device.Reboots >= 1 })
}

// TestRebootRecovers reboots the emulated ESP32 and checks that every
// kind of forward works again afterwards: a TCP -L, a UDP -L used by the
// same client address before and after, and a -R, whose listener on the
// device has to be opened again.
func TestRebootRecovers(t *testing.T) {
	t.Parallel()
	srv := tcpServer(t, echo)
	resp := dnsResponder(t)
	devPort := freePort(t)
	cfg := emulated()
	cfg.Forwards = []string{fwd(srv, false), fwd(resp, true)}
	cfg.Reverse = []string{"127.0.0.1:" + strconv.Itoa(devPort) + ":127.0.0.1:" + strconv.Itoa(srv.Port)}
	d := start(t, daemon.Options{Config: cfg})
	a := d.Addrs()
	tcpFwd := a.Forwards[cfg.Forwards[0]].String()
	udpFwd := a.Forwards[cfg.Forwards[1]].(*net.UDPAddr)
	reverse := "127.0.0.1:" + strconv.Itoa(devPort)
	remoteListening := func() bool {
		for _, f := range d.Snapshot().Forwards {
			if f.Direction == "remote" {
				return f.Listening
			}
		}
		return false
	}

	// One UDP client address for the whole test.
	client, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ask := func(id uint16) bool {
		client.WriteToUDP(dnsQuery(t, id, "printer.example.test."), udpFwd)
		client.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 512)
		for {
			n, err := client.Read(buf)
			if err != nil {
				return false
			}
			var p dnsmessage.Parser
			if h, err := p.Start(buf[:n]); err == nil && h.ID == id {
				return true
			}
		}
	}
	check := func(when string) {
		t.Helper()
		if got := echoVia(t, tcpFwd); got != "ping" {
			t.Fatalf("%s: TCP forward echoed %q", when, got)
		}
		ok := false
		for i := range 5 { // a datagram sent while the old socket is dying may be lost
			if ok = ask(uint16(100 + i)); ok {
				break
			}
			t.Logf("%s: DNS query %d through the UDP forward got no answer", when, i)
		}
		if !ok {
			t.Fatalf("%s: no DNS answer through the UDP forward from the same client address", when)
		}
		eventually(t, 15*time.Second, when+": the reverse forward listening", remoteListening)
		eventually(t, 15*time.Second, when+": an echo through the reverse forward", func() bool {
			c, err := net.DialTimeout("tcp", reverse, 2*time.Second)
			if err != nil {
				return false
			}
			defer c.Close()
			c.Write([]byte("pong"))
			c.(*net.TCPConn).CloseWrite()
			b, _ := readAll(c, 5*time.Second)
			return string(b) == "pong"
		})
	}
	check("before the reboot")
	if err := d.Uplink().RebootEmulated(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the reboot seen", func() bool { return d.Snapshot().Device.Reboots >= 1 })
	eventually(t, 15*time.Second, "the ESP32 up again", func() bool { return up(d) })
	check("after the reboot")
}

// dnsQuery is an A query for name with id.
func dnsQuery(t *testing.T, id uint16, name string) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, RecursionDesired: true})
	b.StartQuestions()
	b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	q, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return q
}
