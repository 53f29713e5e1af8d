package capture

// A minimal pcapng codec (draft-ietf-opsawg-pcapng): the writer emits one
// section, one interface with nanosecond timestamps, and Enhanced Packet
// Blocks; the reader takes what Wireshark, tshark and editcap write (both byte
// orders, any timestamp resolution, several sections, Simple Packet Blocks)
// and skips blocks it does not need. Everything it parses is bounds-checked
// inside one block buffer of at most maxBlock bytes.
//
// gopacket's pcapgo would do this, but it imports golang.org/x/net/bpf,
// which this module does not require.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"time"
)

// pcapng block types and option codes used here.
const (
	blockSHB = 0x0A0D0D0A // Section Header Block
	blockIDB = 0x00000001 // Interface Description Block
	blockSPB = 0x00000003 // Simple Packet Block
	blockEPB = 0x00000006 // Enhanced Packet Block

	byteOrderMagic = 0x1A2B3C4D

	optEnd         = 0
	optShbUserAppl = 4
	optIfName      = 2
	optIfDesc      = 3
	optIfTsresol   = 9

	// maxBlock bounds the memory one block may take. A frame is at most
	// 8206 bytes, a chunk of line bytes what one read returned.
	maxBlock = 4 << 20
)

// errCorrupt is wrapped by every error about a malformed file.
var errCorrupt = errors.New("corrupt pcapng")

// ngWriter writes a little-endian pcapng stream.
type ngWriter struct {
	w   *bufio.Writer
	buf []byte
}

func newNgWriter(w io.Writer, linkType int, name, desc string) (*ngWriter, error) {
	n := &ngWriter{w: bufio.NewWriterSize(w, 64<<10)}
	le := binary.LittleEndian

	// Section header: magic, version 1.0, section length unknown (-1).
	b := le.AppendUint32(nil, byteOrderMagic)
	b = le.AppendUint16(b, 1)
	b = le.AppendUint16(b, 0)
	b = le.AppendUint64(b, math.MaxUint64)
	b = appendOpt(b, optShbUserAppl, []byte("uartproxy"))
	b = appendOpt(b, optEnd, nil)
	if err := n.block(blockSHB, b); err != nil {
		return nil, err
	}

	// Interface: link type, snap length 0 (unlimited), nanoseconds.
	b = le.AppendUint16(b[:0], uint16(linkType))
	b = le.AppendUint16(b, 0)
	b = le.AppendUint32(b, 0)
	b = appendOpt(b, optIfName, []byte(name))
	b = appendOpt(b, optIfDesc, []byte(desc))
	b = appendOpt(b, optIfTsresol, []byte{9})
	b = appendOpt(b, optEnd, nil)
	if err := n.block(blockIDB, b); err != nil {
		return nil, err
	}
	return n, nil
}

// appendOpt appends one option, padded to 4 bytes.
func appendOpt(b []byte, code uint16, v []byte) []byte {
	b = binary.LittleEndian.AppendUint16(b, code)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(v)))
	b = append(b, v...)
	return append(b, make([]byte, pad4(len(v)))...)
}

func pad4(n int) int { return (4 - n&3) & 3 }

// block writes one block around body, which must be padded to 4 bytes.
func (n *ngWriter) block(typ uint32, body []byte) error {
	total := uint32(12 + len(body))
	n.buf = binary.LittleEndian.AppendUint32(n.buf[:0], typ)
	n.buf = binary.LittleEndian.AppendUint32(n.buf, total)
	n.buf = append(n.buf, body...)
	n.buf = binary.LittleEndian.AppendUint32(n.buf, total)
	_, err := n.w.Write(n.buf)
	return err
}

// packet writes an Enhanced Packet Block for interface 0. Times before 1970
// are written as 0.
func (n *ngWriter) packet(t time.Time, data []byte, origLen int) error {
	var ns uint64
	if t.After(time.Unix(0, 0)) {
		ns = uint64(t.UnixNano())
	}
	le := binary.LittleEndian
	total := uint32(12 + 20 + len(data) + pad4(len(data)))
	n.buf = le.AppendUint32(n.buf[:0], blockEPB)
	n.buf = le.AppendUint32(n.buf, total)
	n.buf = le.AppendUint32(n.buf, 0) // interface 0
	n.buf = le.AppendUint32(n.buf, uint32(ns>>32))
	n.buf = le.AppendUint32(n.buf, uint32(ns))
	n.buf = le.AppendUint32(n.buf, uint32(len(data)))
	n.buf = le.AppendUint32(n.buf, uint32(max(origLen, len(data))))
	n.buf = append(n.buf, data...)
	n.buf = append(n.buf, make([]byte, pad4(len(data)))...)
	n.buf = le.AppendUint32(n.buf, total)
	_, err := n.w.Write(n.buf)
	return err
}

func (n *ngWriter) flush() error { return n.w.Flush() }

// ngInterface is what the reader keeps of an Interface Description Block.
type ngInterface struct {
	linkType int
	snapLen  uint32
	tsresol  byte // if_tsresol: 10^-v, or 2^-(v&0x7f) when the top bit is set
}

// ngReader reads packets from a pcapng stream.
type ngReader struct {
	r      *bufio.Reader
	order  binary.ByteOrder
	ifaces []ngInterface
	first  int // link type of the first interface; packets of others are skipped
	buf    []byte
}

// newNgReader reads the section header and blocks up to the first interface,
// so that the link type is known.
func newNgReader(r *bufio.Reader) (*ngReader, error) {
	n := &ngReader{r: r, first: -1}
	for n.first < 0 {
		typ, body, err := n.block()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("%w: no interface description block", errCorrupt)
			}
			return nil, err
		}
		if typ == blockEPB || typ == blockSPB {
			return nil, fmt.Errorf("%w: packet before any interface", errCorrupt)
		}
		if err := n.meta(typ, body); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// block reads the next block and returns its type and body (without the
// type and the two lengths). The body is valid until the next call.
func (n *ngReader) block() (uint32, []byte, error) {
	var head [12]byte
	if _, err := io.ReadFull(n.r, head[:8]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, nil, fmt.Errorf("%w: file ends inside a block header", io.ErrUnexpectedEOF)
		}
		return 0, nil, err // io.EOF between blocks: the end
	}
	le := binary.LittleEndian
	typ := le.Uint32(head[:4])
	if typ == blockSHB {
		// The byte order is only known after the magic.
		if _, err := io.ReadFull(n.r, head[8:12]); err != nil {
			return 0, nil, fmt.Errorf("%w: file ends inside a section header", io.ErrUnexpectedEOF)
		}
		switch le.Uint32(head[8:12]) {
		case byteOrderMagic:
			n.order = binary.LittleEndian
		case 0x4D3C2B1A:
			n.order = binary.BigEndian
		default:
			return 0, nil, fmt.Errorf("%w: bad byte-order magic", errCorrupt)
		}
		n.ifaces = n.ifaces[:0] // a new section starts afresh
	} else if n.order == nil {
		return 0, nil, fmt.Errorf("%w: no section header", errCorrupt)
	} else {
		typ = n.order.Uint32(head[:4])
	}
	total := n.order.Uint32(head[4:8])
	if total < 12 || total%4 != 0 || total > maxBlock || (typ == blockSHB && total < 28) {
		return 0, nil, fmt.Errorf("%w: block type %#x has length %d", errCorrupt, typ, total)
	}
	rest := int(total) - 8 // body and the trailing length
	if cap(n.buf) < rest {
		n.buf = make([]byte, rest)
	}
	b := n.buf[:rest]
	got := 0
	if typ == blockSHB {
		copy(b, head[8:12])
		got = 4
	}
	if _, err := io.ReadFull(n.r, b[got:]); err != nil {
		return 0, nil, fmt.Errorf("%w: file ends inside block type %#x", io.ErrUnexpectedEOF, typ)
	}
	if n.order.Uint32(b[rest-4:]) != total {
		return 0, nil, fmt.Errorf("%w: block type %#x: trailing length differs", errCorrupt, typ)
	}
	return typ, b[:rest-4], nil
}

// meta handles a block that is not a packet.
func (n *ngReader) meta(typ uint32, body []byte) error {
	switch typ {
	case blockSHB:
		if n.order.Uint16(body[4:6]) != 1 {
			return fmt.Errorf("%w: pcapng version %d", errCorrupt, n.order.Uint16(body[4:6]))
		}
	case blockIDB:
		if len(body) < 8 {
			return fmt.Errorf("%w: short interface block", errCorrupt)
		}
		ifc := ngInterface{linkType: int(n.order.Uint16(body[0:2])), snapLen: n.order.Uint32(body[4:8]), tsresol: 6}
		opts := body[8:]
		for len(opts) >= 4 {
			code, l := n.order.Uint16(opts[0:2]), int(n.order.Uint16(opts[2:4]))
			if code == optEnd || 4+l > len(opts) {
				break
			}
			if code == optIfTsresol && l >= 1 {
				ifc.tsresol = opts[4]
			}
			opts = opts[min(len(opts), 4+l+pad4(l)):]
		}
		if len(n.ifaces) >= 256 {
			return fmt.Errorf("%w: more than 256 interfaces", errCorrupt)
		}
		n.ifaces = append(n.ifaces, ifc)
		if n.first < 0 {
			n.first = ifc.linkType
		}
	}
	return nil // other blocks are skipped
}

// packet returns the next packet of the first interface's link type; others
// are skipped. data is valid until the next call.
func (n *ngReader) packet() (t time.Time, data []byte, origLen int, err error) {
	for {
		typ, body, err := n.block()
		if err != nil {
			return time.Time{}, nil, 0, err
		}
		switch typ {
		case blockEPB:
			if len(body) < 20 {
				return time.Time{}, nil, 0, fmt.Errorf("%w: short packet block", errCorrupt)
			}
			id := n.order.Uint32(body[0:4])
			if id >= uint32(len(n.ifaces)) {
				return time.Time{}, nil, 0, fmt.Errorf("%w: packet for interface %d, which is not described", errCorrupt, id)
			}
			ifc := n.ifaces[id]
			if ifc.linkType != n.first {
				continue
			}
			ts := uint64(n.order.Uint32(body[4:8]))<<32 | uint64(n.order.Uint32(body[8:12]))
			capLen := n.order.Uint32(body[12:16])
			orig := n.order.Uint32(body[16:20])
			if uint64(capLen) > uint64(len(body)-20) {
				return time.Time{}, nil, 0, fmt.Errorf("%w: captured length %d beyond its block", errCorrupt, capLen)
			}
			return tsTime(ts, ifc.tsresol), body[20 : 20+capLen], int(max(orig, capLen)), nil
		case blockSPB:
			if len(body) < 4 || len(n.ifaces) == 0 {
				return time.Time{}, nil, 0, fmt.Errorf("%w: bad simple packet block", errCorrupt)
			}
			if n.ifaces[0].linkType != n.first {
				continue
			}
			orig := n.order.Uint32(body[0:4])
			capLen := min(uint64(orig), uint64(len(body)-4))
			if snap := n.ifaces[0].snapLen; snap > 0 {
				capLen = min(capLen, uint64(snap))
			}
			return time.Time{}, body[4 : 4+capLen], int(orig), nil
		default:
			if err := n.meta(typ, body); err != nil {
				return time.Time{}, nil, 0, err
			}
		}
	}
}

// tsTime converts a timestamp in units of the interface's resolution. Zero
// stays the zero time (unknown).
func tsTime(ts uint64, resol byte) time.Time {
	if ts == 0 {
		return time.Time{}
	}
	var ns uint64
	if resol&0x80 == 0 {
		e := int(resol)
		switch {
		case e <= 9:
			hi, lo := bits.Mul64(ts, pow10(9-e))
			if hi != 0 {
				return time.Time{}
			}
			ns = lo
		case e < 29:
			ns = ts / pow10(e-9)
		default:
			return time.Time{}
		}
	} else {
		e := uint(resol & 0x7f)
		hi, lo := bits.Mul64(ts, 1e9)
		if e >= 64 {
			ns = hi >> (e - 64)
		} else if e > 0 {
			ns = hi<<(64-e) | lo>>e
			if hi>>e != 0 {
				return time.Time{}
			}
		} else {
			if hi != 0 {
				return time.Time{}
			}
			ns = lo
		}
	}
	if ns > math.MaxInt64 {
		return time.Time{}
	}
	return time.Unix(0, int64(ns))
}

func pow10(e int) uint64 {
	p := uint64(1)
	for range e {
		p *= 10
	}
	return p
}
