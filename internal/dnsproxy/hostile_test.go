package dnsproxy_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/uartproxy/uartproxy/internal/dnsproxy"
)

const hostileID = 0x1234

// bareHeader returns a DNS header with ID 0x1234 and the given flags and
// section counts.
func bareHeader(flags, qd, an, ns, ar uint16) []byte {
	var h []byte
	for _, v := range []uint16{hostileID, flags, qd, an, ns, ar} {
		h = binary.BigEndian.AppendUint16(h, v)
	}
	return h
}

func cat(parts ...string) []byte { return []byte(strings.Join(parts, "")) }

const (
	rd         = 0x0100
	qExample   = "\x07example\x04test\x00" + "\x00\x01\x00\x01" // example.test. A IN
	optRecord  = "\x00" + "\x00\x29" + "\x04\xd0" + "\x00\x00\x00\x00" + "\x00\x00"
	optVersion = "\x00" + "\x00\x29" + "\x04\xd0" + "\x00\x01\x00\x00" + "\x00\x00" // version 1
	optNotRoot = "\x01x\x00" + "\x00\x29" + "\x04\xd0" + "\x00\x00\x00\x00" + "\x00\x00"
	typeClass  = "\x00\x01\x00\x01"
)

// rcodeBadVers is BADVERS (RFC 6891 §9), an extended RCODE.
const rcodeBadVers dnsmessage.RCode = 16

// noReply marks a packet that must be dropped.
const noReply dnsmessage.RCode = 0xffff

var hostileCases = []struct {
	name  string
	pkt   []byte
	rcode dnsmessage.RCode
}{
	{"empty", nil, noReply},
	{"5 bytes", bareHeader(rd, 1, 0, 0, 0)[:5], noReply},
	{"11 bytes", bareHeader(rd, 1, 0, 0, 0)[:11], noReply},
	{"QR set", cat(string(bareHeader(0x8000|rd, 1, 0, 0, 0)), qExample), noReply},
	{"no question", bareHeader(rd, 0, 0, 0, 0), dnsmessage.RCodeFormatError},
	{"two questions", cat(string(bareHeader(rd, 2, 0, 0, 0)), qExample, qExample), dnsmessage.RCodeFormatError},
	{"65535 questions", cat(string(bareHeader(rd, 65535, 0, 0, 0)), qExample), dnsmessage.RCodeFormatError},
	{"question cut short", cat(string(bareHeader(rd, 1, 0, 0, 0)), qExample[:9]), dnsmessage.RCodeFormatError},
	{"question without type", cat(string(bareHeader(rd, 1, 0, 0, 0)), "\x07example\x04test\x00"), dnsmessage.RCodeFormatError},
	{"compression loop", cat(string(bareHeader(rd, 1, 0, 0, 0)), "\xc0\x0c", typeClass), dnsmessage.RCodeFormatError},
	{"compression ping-pong", cat(string(bareHeader(rd, 1, 0, 0, 0)), "\x01a\xc0\x0e\xc0\x0c", typeClass), dnsmessage.RCodeFormatError},
	{"pointer past the end", cat(string(bareHeader(rd, 1, 0, 0, 0)), "\xc0\xff", typeClass), dnsmessage.RCodeFormatError},
	{"half a pointer", cat(string(bareHeader(rd, 1, 0, 0, 0)), "\xc0"), dnsmessage.RCodeFormatError},
	{"reserved label type", cat(string(bareHeader(rd, 1, 0, 0, 0)), "\x40abc\x00", typeClass), dnsmessage.RCodeFormatError},
	{"label longer than the packet", cat(string(bareHeader(rd, 1, 0, 0, 0)), "\x3fabc"), dnsmessage.RCodeFormatError},
	{"dot in a label", cat(string(bareHeader(rd, 1, 0, 0, 0)), "\x03a.b\x00", typeClass), dnsmessage.RCodeFormatError},
	{"name over 255 bytes", cat(string(bareHeader(rd, 1, 0, 0, 0)), strings.Repeat("\x01a", 130), "\x00", typeClass), dnsmessage.RCodeFormatError},
	{"65535 answers", cat(string(bareHeader(rd, 1, 65535, 0, 0)), qExample), dnsmessage.RCodeFormatError},
	{"65535 authorities", cat(string(bareHeader(rd, 1, 0, 65535, 0)), qExample), dnsmessage.RCodeFormatError},
	{"65535 additionals", cat(string(bareHeader(rd, 1, 0, 0, 65535)), qExample), dnsmessage.RCodeFormatError},
	{"additional cut short", cat(string(bareHeader(rd, 1, 0, 0, 1)), qExample, optRecord[:8]), dnsmessage.RCodeFormatError},
	{"two OPT records", cat(string(bareHeader(rd, 1, 0, 0, 2)), qExample, optRecord, optRecord), dnsmessage.RCodeFormatError},
	{"OPT not at the root", cat(string(bareHeader(rd, 1, 0, 0, 1)), qExample, optNotRoot), dnsmessage.RCodeFormatError},
	{"EDNS version 1", cat(string(bareHeader(rd, 1, 0, 0, 1)), qExample, optVersion), rcodeBadVers},
	{"opcode STATUS", cat(string(bareHeader(2<<11|rd, 1, 0, 0, 0)), qExample), dnsmessage.RCodeNotImplemented},
	{"opcode 15", cat(string(bareHeader(15<<11, 1, 0, 0, 0)), qExample), dnsmessage.RCodeNotImplemented},
	{"UPDATE", cat(string(bareHeader(5<<11, 1, 3, 0, 0))), dnsmessage.RCodeNotImplemented},
	{"garbage after the query", cat(string(bareHeader(rd, 1, 0, 0, 0)), qExample, "garbage"), dnsmessage.RCodeSuccess},
	{"answer in the query", cat(string(bareHeader(rd, 1, 1, 0, 0)), qExample, "\xc0\x0c", typeClass, "\x00\x00\x00\x3c\x00\x04\x01\x02\x03\x04"), dnsmessage.RCodeSuccess},
	{"EDNS0", cat(string(bareHeader(rd, 1, 0, 0, 1)), qExample, optRecord), dnsmessage.RCodeSuccess},
	{"control bytes in a name", cat(string(bareHeader(rd, 1, 0, 0, 0)), "\x03\x00\x01\xff\x04test\x00", typeClass), dnsmessage.RCodeRefused},
	{"A of class ANY", cat(string(bareHeader(rd, 1, 0, 0, 0)), "\x07example\x04test\x00", "\x00\x01\x00\xff"), dnsmessage.RCodeNotImplemented},
	{"type ANY", cat(string(bareHeader(rd, 1, 0, 0, 0)), "\x07example\x04test\x00", "\x00\xff\x00\x01"), dnsmessage.RCodeNotImplemented},
	{"AXFR", cat(string(bareHeader(0, 1, 0, 0, 0)), "\x07example\x04test\x00", "\x00\xfc\x00\x01"), dnsmessage.RCodeNotImplemented},
}

// checkReply checks that reply, the server's reply to pkt, parses, is a
// response to pkt and fits its transport, and returns its full RCODE.
func checkReply(pkt, reply []byte, tcp bool) (dnsmessage.RCode, error) {
	var m dnsmessage.Message
	if err := m.Unpack(reply); err != nil {
		return 0, fmt.Errorf("reply does not parse: %v\n%q", err, reply)
	}
	if !m.Header.Response || len(pkt) < 2 || m.Header.ID != binary.BigEndian.Uint16(pkt) {
		return 0, fmt.Errorf("not a response to the query: %+v", m.Header)
	}
	if len(m.Questions) > 1 {
		return 0, fmt.Errorf("%d questions in the reply", len(m.Questions))
	}
	if limit := 1232; !tcp && len(reply) > limit {
		return 0, fmt.Errorf("UDP reply of %d bytes", len(reply))
	}
	rcode := m.Header.RCode
	for _, r := range m.Additionals {
		if r.Header.Type == dnsmessage.TypeOPT {
			rcode = r.Header.ExtendedRCode(rcode)
		}
	}
	return rcode, nil
}

func TestHostile(t *testing.T) {
	dev := newFakeDevice()
	s := start(t, dev, dnsproxy.Config{})
	for _, c := range hostileCases {
		t.Run(c.name, func(t *testing.T) {
			for _, tcp := range []bool{false, true} {
				reply := s.Handle(bytes.Clone(c.pkt), tcp)
				if reply == nil {
					if c.rcode != noReply {
						t.Errorf("tcp=%v: no reply, want %v", tcp, c.rcode)
					}
					continue
				}
				rcode, err := checkReply(c.pkt, reply, tcp)
				if err != nil {
					t.Fatalf("tcp=%v: %v", tcp, err)
				}
				if rcode != c.rcode {
					t.Errorf("tcp=%v: %v, want %v", tcp, rcode, c.rcode)
				}
			}
		})
	}
}

// TestHostileSockets sends the hostile packets over real sockets: over
// UDP a dropped packet gets nothing while the next query is answered;
// over TCP it closes the connection.
func TestHostileSockets(t *testing.T) {
	dev := newFakeDevice()
	s := start(t, dev, dnsproxy.Config{})
	u, err := net.Dial("udp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	buf := make([]byte, 65535)
	for i, c := range hostileCases {
		if len(c.pkt) == 0 {
			continue // an empty datagram is a read of 0 bytes, dropped like any short one
		}
		u.SetDeadline(time.Now().Add(5 * time.Second))
		u.Write(c.pkt)
		next := query{name: "example.test.", qtype: typeA}.pack(uint16(i))
		u.Write(next)
		n, err := u.Read(buf)
		if err != nil {
			t.Fatalf("%s over udp: %v", c.name, err)
		}
		if c.rcode == noReply {
			if _, err := checkReply(next, buf[:n], false); err != nil {
				t.Errorf("%s over udp: a reply to the dropped packet? %v", c.name, err)
			}
			continue
		}
		if rcode, err := checkReply(c.pkt, buf[:n], false); err != nil || rcode != c.rcode {
			t.Errorf("%s over udp: %v %v, want %v", c.name, rcode, err, c.rcode)
		}
		if _, err := u.Read(buf); err != nil {
			t.Fatalf("%s over udp, the query after: %v", c.name, err)
		}

		tc, err := net.Dial("tcp", s.TCPAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		tc.Write(tcpFrame(c.pkt))
		reply, err := readTCP(tc)
		tc.Close()
		if err != nil {
			t.Fatalf("%s over tcp: %v", c.name, err)
		}
		if rcode, err := checkReply(c.pkt, reply, true); err != nil || rcode != c.rcode {
			t.Errorf("%s over tcp: %v %v, want %v", c.name, rcode, err, c.rcode)
		}
	}
}

func TestHostileDig(t *testing.T) {
	dev := newFakeDevice()
	s := start(t, dev, dnsproxy.Config{})
	if out := digOut(t, s, "+opcode=status", "example.test"); digStatus(out) != "NOTIMP" {
		t.Errorf("opcode STATUS:\n%s", out)
	}
	if out := digOut(t, s, "+edns=1", "+noednsnegotiation", "example.test"); digStatus(out) != "BADVERS" {
		t.Errorf("EDNS version 1:\n%s", out)
	}
}

func FuzzHandle(f *testing.F) {
	for _, c := range hostileCases {
		f.Add(c.pkt)
	}
	for _, q := range []query{
		{name: "example.test.", qtype: typeA},
		{name: "dual.test.", qtype: typeAAAA, edns: 4096},
		{name: "many.test.", qtype: typeAAAA, edns: 1232},
		{name: "nope.test.", qtype: typeA},
		{name: "localhost.", qtype: typeAAAA},
		{name: "example.test.", qtype: typeMX},
	} {
		f.Add(q.pack(0xabcd))
	}
	dev := newFakeDevice()
	s, err := dnsproxy.New(dnsproxy.Config{Lookup: dev.Lookup, Timeout: 100 * time.Millisecond})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	f.Fuzz(func(t *testing.T, pkt []byte) {
		for _, tcp := range []bool{false, true} {
			reply := s.Handle(bytes.Clone(pkt), tcp)
			if reply == nil {
				continue
			}
			if _, err := checkReply(pkt, reply, tcp); err != nil {
				t.Fatalf("tcp=%v: %v\nquery %q", tcp, err, pkt)
			}
		}
	})
}
