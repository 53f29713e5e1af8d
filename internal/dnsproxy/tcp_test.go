package dnsproxy_test

import (
	"errors"
	"net"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/uartproxy/uartproxy/internal/dnsproxy"
)

func TestTCPPipelining(t *testing.T) {
	dev := newFakeDevice()
	s := start(t, dev, dnsproxy.Config{})
	c, err := net.Dial("tcp", s.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))

	// The slow query goes first and is answered last: queries on one
	// connection are resolved concurrently (RFC 7766 §6.2.1.1).
	var frames []byte
	for i, q := range []query{{name: "slow.test.", qtype: typeA}, {name: "example.test.", qtype: typeA}, {name: "nope.test.", qtype: typeAAAA}} {
		frames = append(frames, tcpFrame(q.pack(uint16(100+i)))...)
	}
	if _, err := c.Write(frames); err != nil {
		t.Fatal(err)
	}
	<-dev.entered
	got := map[uint16]dnsmessage.RCode{}
	for len(got) < 2 {
		raw, err := readTCP(c)
		if err != nil {
			t.Fatal(err)
		}
		var m dnsmessage.Message
		must(t, m.Unpack(raw))
		got[m.Header.ID] = m.Header.RCode
	}
	if got[101] != rcOK || got[102] != rcNX {
		t.Fatalf("replies before the slow one: %v", got)
	}
	close(dev.release)
	raw, err := readTCP(c)
	if err != nil {
		t.Fatal(err)
	}
	var m dnsmessage.Message
	must(t, m.Unpack(raw))
	if m.Header.ID != 100 || len(answerAddrs(&m)) != 1 {
		t.Fatalf("slow reply: %v", m.GoString())
	}
}

func TestTCPCloses(t *testing.T) {
	dev := newFakeDevice()
	s := start(t, dev, dnsproxy.Config{TCPIdleTimeout: 300 * time.Millisecond})
	cases := map[string][]byte{
		"idle":              nil,
		"half a prefix":     {0},
		"short message":     tcpFrame([]byte{1, 2, 3}),
		"empty message":     tcpFrame(nil),
		"message cut short": append([]byte{0, 100}, make([]byte, 20)...),
		"a response":        tcpFrame(bareHeader(0x8100, 1, 0, 0, 0)),
	}
	for name, send := range cases {
		t.Run(name, func(t *testing.T) {
			c, err := net.Dial("tcp", s.TCPAddr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write(send); err != nil {
				t.Fatal(err)
			}
			if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil || isTimeout(err) {
				t.Fatalf("read %d bytes, %v; want the server to close", n, err)
			}
		})
	}
	if st := s.Stats(); st.Dropped != 3 || st.DropReasons["header"] != 2 || st.DropReasons["response"] != 1 {
		t.Fatalf("dropped %d %v, want 3", st.Dropped, st.DropReasons)
	}
}

// isTimeout reports whether err is a deadline that passed.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestTCPConnLimit(t *testing.T) {
	dev := newFakeDevice()
	s := start(t, dev, dnsproxy.Config{MaxTCPConns: 2})
	dial := func() net.Conn {
		c, err := net.Dial("tcp", s.TCPAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		t.Cleanup(func() { c.Close() })
		return c
	}
	roundTrip := func(c net.Conn) error {
		if _, err := c.Write(tcpFrame(query{name: "example.test.", qtype: typeA}.pack(7))); err != nil {
			return err
		}
		_, err := readTCP(c)
		return err
	}
	c1, c2 := dial(), dial()
	must(t, roundTrip(c1))
	must(t, roundTrip(c2))
	c3 := dial()
	if err := roundTrip(c3); err == nil || isTimeout(err) {
		t.Fatalf("third connection: %v, want it closed", err)
	}
	must(t, roundTrip(c1))

	// A slot frees when a connection ends.
	c1.Close()
	for i := 0; ; i++ {
		if roundTrip(dial()) == nil {
			break
		}
		if i == 100 {
			t.Fatal("no connection accepted after one closed")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
