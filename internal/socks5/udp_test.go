package socks5_test

import (
	"context"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/things-go/go-socks5/statute"

	"github.com/uartproxy/uartproxy/internal/socks5"
)

// udpDevice is the "device" for UDP ASSOCIATE: real UDP sockets on
// 127.0.0.1 that, like the device, accept names in WriteTo (each name
// resolves to 127.0.0.1 here) and record what they were given.
type udpDevice struct {
	mu     sync.Mutex
	asked  []string // ListenPacket addresses
	writes []string // WriteTo addresses, with "name " or "ip " before them
}

func (d *udpDevice) ListenPacket(ctx context.Context, network, address string) (net.PacketConn, error) {
	d.mu.Lock()
	d.asked = append(d.asked, network+" "+address)
	d.mu.Unlock()
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, network, "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return &devicePacketConn{PacketConn: pc, d: d}, nil
}

type devicePacketConn struct {
	net.PacketConn
	d *udpDevice
}

func (pc *devicePacketConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	pc.d.mu.Lock()
	if _, ok := addr.(*net.UDPAddr); ok {
		pc.d.writes = append(pc.d.writes, "ip "+addr.String())
	} else {
		pc.d.writes = append(pc.d.writes, "name "+addr.String())
	}
	pc.d.mu.Unlock()
	if _, ok := addr.(*net.UDPAddr); !ok {
		_, port, err := net.SplitHostPort(addr.String())
		if err != nil {
			return 0, err
		}
		n, _ := strconv.Atoi(port)
		addr = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: n}
	}
	return pc.PacketConn.WriteTo(p, addr)
}

func (d *udpDevice) written() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.writes...)
}

// associate greets, asks for UDP ASSOCIATE with the given source hint and
// returns the relay address from the reply.
func (c *client) associate(host string, port int) *net.UDPAddr {
	c.t.Helper()
	c.greet()
	c.request(3, host, port)
	rep := c.reply()
	if rep.Response != 0 {
		c.t.Fatalf("UDP ASSOCIATE: reply %d", rep.Response)
	}
	return &net.UDPAddr{IP: rep.BndAddr.IP, Port: rep.BndAddr.Port}
}

// udpClient is a UDP socket on 127.0.0.1 that talks SOCKS UDP headers.
type udpClient struct {
	t *testing.T
	*net.UDPConn
	relay *net.UDPAddr
}

func newUDPClient(t *testing.T, relay *net.UDPAddr) *udpClient {
	t.Helper()
	uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { uc.Close() })
	return &udpClient{t: t, UDPConn: uc, relay: relay}
}

// sendRaw sends a datagram as it is.
func (u *udpClient) sendRaw(b []byte) {
	u.t.Helper()
	if _, err := u.WriteToUDP(b, u.relay); err != nil {
		u.t.Fatal(err)
	}
}

// sendTo sends payload to host:port through the relay, with FRAG frag.
func (u *udpClient) sendTo(frag byte, host string, port int, payload string) {
	u.t.Helper()
	u.sendRaw(append(appendAddr([]byte{0, 0, frag}, host, port), payload...))
}

// recv reads one datagram from the relay and parses its header.
func (u *udpClient) recv() statute.Datagram {
	u.t.Helper()
	buf := make([]byte, 65536)
	u.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, from, err := u.ReadFromUDP(buf)
	if err != nil {
		u.t.Fatalf("reading from the relay: %v", err)
	}
	if from.String() != u.relay.String() {
		u.t.Fatalf("datagram from %s, not the relay %s", from, u.relay)
	}
	d, err := statute.ParseDatagram(buf[:n])
	if err != nil {
		u.t.Fatalf("header of %q: %v", buf[:n], err)
	}
	return d
}

// TestUDPPySocks runs PySocks, a real SOCKS5 UDP client, against a UDP echo
// server, with an IP destination and a name the device resolves.
func TestUDPPySocks(t *testing.T) {
	const python = "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import socks").Run(); err != nil {
		t.Skipf("%s has no PySocks (python3-socks): %v", python, err)
	}
	echoAddr, _ := udpEcho(t)
	dev := &udpDevice{}
	srv, addr := startServer(t, socks5.Config{ListenPacket: dev.ListenPacket})
	_, proxyPort, _ := net.SplitHostPort(addr)
	script := `
import socket, socks, sys
s = socks.socksocket(socket.AF_INET, socket.SOCK_DGRAM)
s.set_proxy(socks.SOCKS5, "127.0.0.1", int(sys.argv[1]))
s.settimeout(10)
for host in ("127.0.0.1", "echo.device.test"):
    s.sendto(b"hello " + host.encode(), (host, int(sys.argv[2])))
    data, addr = s.recvfrom(4096)
    print(data.decode(), addr[0], addr[1])
s.close()
`
	out, err := exec.CommandContext(ctxT(t, 30*time.Second), python, "-c", script, proxyPort, strconv.Itoa(echoAddr.Port)).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	p := strconv.Itoa(echoAddr.Port)
	want := "echo:hello 127.0.0.1 127.0.0.1 " + p + "\n" + "echo:hello echo.device.test 127.0.0.1 " + p + "\n"
	if string(out) != want {
		t.Fatalf("python printed\n%s\nwant\n%s", out, want)
	}
	if w := dev.written(); len(w) != 2 || w[0] != "ip "+echoAddr.String() || w[1] != "name echo.device.test:"+strconv.Itoa(echoAddr.Port) {
		t.Fatalf("device writes %q", w)
	}
	idle(t, srv)
	st := srv.Stats()
	if st.Requests[socks5.CmdUDPAssociate][socks5.ResultSucceeded] != 1 {
		t.Fatalf("Requests = %v", st.Requests)
	}
	if up := uint64(len("hello 127.0.0.1") + len("hello echo.device.test")); st.BytesUp != up || st.BytesDown != up+2*5 {
		t.Fatalf("bytes up %d down %d", st.BytesUp, st.BytesDown)
	}
}

// TestUDPHeader checks the relay at the byte level: headers both ways,
// fragments, malformed headers and strangers dropped, names passed on, the
// rules asked once per destination.
func TestUDPHeader(t *testing.T) {
	echoAddr, seen := udpEcho(t)
	echoPort := echoAddr.Port
	dev := &udpDevice{}
	var mu sync.Mutex
	var allowCalls []string
	var logs logBuffer
	srv, addr := startServer(t, socks5.Config{
		Logger:       zerolog.New(&logs).Level(zerolog.DebugLevel),
		ListenPacket: dev.ListenPacket,
		Allow: func(ctx context.Context, cmd, host string, port uint16) (string, error) {
			mu.Lock()
			allowCalls = append(allowCalls, cmd+" "+host)
			mu.Unlock()
			if host == "blocked.test" {
				return "", socks5.ErrDenied
			}
			return "", nil
		},
	})
	c := dialClient(t, addr)
	relay := c.associate("0.0.0.0", 0)
	if !relay.IP.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Fatalf("relay on %s, want the IP the client reached (127.0.0.1)", relay)
	}
	u := newUDPClient(t, relay)
	roundTrip := func(host, payload string) {
		t.Helper()
		u.sendTo(0, host, echoPort, payload)
		d := u.recv()
		if d.Frag != 0 || d.DstAddr.String() != echoAddr.String() || string(d.Data) != "echo:"+payload {
			t.Fatalf("got frag %d from %s: %q", d.Frag, d.DstAddr.String(), d.Data)
		}
	}
	roundTrip("127.0.0.1", "one") // locks the client's port

	u.sendTo(1, "127.0.0.1", echoPort, "fragment")
	u.sendRaw([]byte{0, 0})                               // too short
	u.sendRaw([]byte{0, 0, 0, 9, 1, 2, 3, 4, 0, 80, 'x'}) // bad ATYP
	u.sendRaw([]byte{0, 0, 0, 3, 200, 'a', 'b'})          // name longer than the datagram
	u.sendTo(0, "127.0.0.1", 0, "port zero")
	u.sendTo(0, "blocked.test", echoPort, "denied")
	u.sendTo(0, "blocked.test", echoPort, "denied again")
	stranger := newUDPClient(t, relay) // same IP, another port
	stranger.sendTo(0, "127.0.0.1", echoPort, "stranger")
	// Another IP altogether (all of 127/8 is loopback on Linux).
	far, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Fatal(err)
	}
	defer far.Close()
	far.WriteToUDP(append(appendAddr([]byte{0, 0, 0}, "127.0.0.1", echoPort), "far away"...), relay)
	roundTrip("127.0.0.1", "two")
	roundTrip("echo.device.test", "three")
	roundTrip("echo.device.test", "four")

	if got := strings.Join(seen(), ","); got != "one,two,three,four" {
		t.Fatalf("echo server saw %q", got)
	}
	port := strconv.Itoa(echoPort)
	wantWrites := []string{"ip " + echoAddr.String(), "ip " + echoAddr.String(), "name echo.device.test:" + port, "name echo.device.test:" + port}
	if w := dev.written(); strings.Join(w, ",") != strings.Join(wantWrites, ",") {
		t.Fatalf("device writes %q, want %q", w, wantWrites)
	}
	mu.Lock()
	if got := strings.Join(allowCalls, ","); got != "udp_associate 127.0.0.1,udp_associate blocked.test,udp_associate echo.device.test" {
		t.Fatalf("Allow calls %q", got)
	}
	mu.Unlock()

	// Each datagram was dropped for the reason the test meant, and the
	// reason is in the log too.
	wantDropped := map[string]uint64{
		socks5.DropFragment: 1, socks5.DropBadHeader: 3, socks5.DropNoDestination: 1,
		socks5.DropDenied: 2, socks5.DropForeignPort: 1, socks5.DropForeignSource: 1,
	}
	dropped := srv.Stats().UDPDropped
	for why, n := range wantDropped {
		if dropped[why] != n {
			t.Errorf("UDPDropped[%s] = %d, want %d", why, dropped[why], n)
		}
		if !strings.Contains(logs.String(), `"why":"`+why+`"`) {
			t.Errorf("no log line for a datagram dropped as %s", why)
		}
	}
	if len(dropped) != len(wantDropped) {
		t.Errorf("UDPDropped = %v, want %v", dropped, wantDropped)
	}

	// Closing the control connection ends the association.
	c.Close()
	idle(t, srv)
	st := srv.Stats()
	if up := uint64(len("one") + len("two") + len("three") + len("four")); st.BytesUp != up || st.BytesDown != up+4*5 {
		t.Fatalf("bytes up %d down %d", st.BytesUp, st.BytesDown)
	}
}

// TestUDPSourcePort: a port in the request fixes the client's source port
// from the start.
func TestUDPSourcePort(t *testing.T) {
	echoAddr, seen := udpEcho(t)
	srv, addr := startServer(t, socks5.Config{ListenPacket: (&udpDevice{}).ListenPacket})
	c := dialClient(t, addr)
	u := newUDPClient(t, nil)
	other := newUDPClient(t, nil)
	u.relay = c.associate("127.0.0.1", u.LocalAddr().(*net.UDPAddr).Port)
	other.relay = u.relay
	other.sendTo(0, "127.0.0.1", echoAddr.Port, "other port")
	u.sendTo(0, "127.0.0.1", echoAddr.Port, "announced port")
	if d := u.recv(); string(d.Data) != "echo:announced port" {
		t.Fatalf("got %q", d.Data)
	}
	if got := strings.Join(seen(), ","); got != "announced port" {
		t.Fatalf("echo server saw %q", got)
	}
	c.Close()
	idle(t, srv)
}

// TestUDPEnds: an idle association ends after UDPIdleTimeout (the server
// closes the control connection), and no ListenPacket means reply 0x07.
func TestUDPEnds(t *testing.T) {
	t.Run("idle", func(t *testing.T) {
		dev := &udpDevice{}
		srv, addr := startServer(t, socks5.Config{ListenPacket: dev.ListenPacket, UDPIdleTimeout: 300 * time.Millisecond})
		c := dialClient(t, addr)
		c.associate("0.0.0.0", 0)
		c.expectEOF()
		idle(t, srv)
		dev.mu.Lock()
		if len(dev.asked) != 1 || dev.asked[0] != "udp " {
			t.Fatalf("ListenPacket calls %q, want [\"udp \"]", dev.asked)
		}
		dev.mu.Unlock()
	})
	t.Run("disabled", func(t *testing.T) {
		srv, addr := startServer(t, socks5.Config{Dial: dial})
		c := dialClient(t, addr)
		c.greet()
		c.request(3, "0.0.0.0", 0)
		if rep := c.reply(); rep.Response != 7 {
			t.Fatalf("reply %d, want 7", rep.Response)
		}
		c.expectEOF()
		idle(t, srv)
		if st := srv.Stats(); st.Requests[socks5.CmdUDPAssociate][socks5.ResultCommandNotSupported] != 1 {
			t.Fatalf("Requests = %v", st.Requests)
		}
	})
}
