package capture

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"
)

// rawChunk is how many bytes of a raw file one Record holds at most.
const rawChunk = 32 << 10

// Record is one packet of a capture: a chunk of line bytes, or (in
// FormatFrames) one SLIP frame.
type Record struct {
	// Time is when the bytes were read or written; zero when the capture
	// does not say (raw files, or packets stamped 0).
	Time time.Time
	// Dir is the direction; Unknown in raw files.
	Dir Direction
	// Frame says Data is one unescaped SLIP frame (FormatFrames) rather
	// than line bytes.
	Frame bool
	// Status says what a frame record holds.
	Status Status
	// Data holds the bytes, without the pseudo-header. It is valid until
	// the next call to Next.
	Data []byte
	// OrigLen is the length of the frame when Data holds less of it (a
	// StatusTooLong frame), otherwise len(Data).
	OrigLen int
}

// Reader reads Records from a capture file: pcapng written by uartproxy
// (LinkTypeFrames or LinkTypeRaw) or by a tool that kept the link type, or
// raw line bytes.
type Reader struct {
	format  Format
	ng      *ngReader
	raw     io.Reader
	buf     []byte
	skipped int
}

var (
	pcapngMagic = []byte{0x0a, 0x0d, 0x0d, 0x0a}
	pcapMagics  = [][]byte{
		{0xd4, 0xc3, 0xb2, 0xa1}, {0xa1, 0xb2, 0xc3, 0xd4}, // microseconds
		{0x4d, 0x3c, 0xb2, 0xa1}, {0xa1, 0xb2, 0x3c, 0x4d}, // nanoseconds
	}
	byteOrderMagics = [][]byte{{0x4d, 0x3c, 0x2b, 0x1a}, {0x1a, 0x2b, 0x3c, 0x4d}}
)

// NewReader looks at the start of r to tell a pcapng file from raw line
// bytes, and returns a Reader for it. A pcapng file must have link type
// LinkTypeFrames or LinkTypeRaw; a classic pcap file is refused with a hint
// to convert it.
func NewReader(r io.Reader) (*Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(12)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read capture: %w", err)
	}
	switch {
	case len(head) >= 12 && bytes.Equal(head[:4], pcapngMagic) && matchAny(head[8:12], byteOrderMagics):
	case len(head) >= 4 && matchAny(head[:4], pcapMagics):
		return nil, errors.New("read capture: a classic pcap file; convert it with 'editcap -F pcapng IN OUT'")
	default:
		return &Reader{format: FormatRawBytes, raw: br, buf: make([]byte, rawChunk)}, nil
	}
	ng, err := newNgReader(br)
	if err != nil {
		return nil, fmt.Errorf("read pcapng: %w", err)
	}
	rd := &Reader{ng: ng}
	switch lt := ng.first; lt {
	case LinkTypeFrames:
		rd.format = FormatFrames
	case LinkTypeRaw:
		rd.format = FormatRaw
	default:
		return nil, fmt.Errorf("capture has link type %d; uartproxy reads %d (frames, LINKTYPE_USER0) and %d (raw line bytes, LINKTYPE_USER1)",
			lt, LinkTypeFrames, LinkTypeRaw)
	}
	return rd, nil
}

func matchAny(b []byte, candidates [][]byte) bool {
	for _, c := range candidates {
		if bytes.Equal(b, c) {
			return true
		}
	}
	return false
}

// Format returns the kind of file being read.
func (r *Reader) Format() Format { return r.format }

// Skipped returns the number of packets skipped because they were too short
// to hold their pseudo-header.
func (r *Reader) Skipped() int { return r.skipped }

// Next returns the next record, or io.EOF after the last one. A file that
// ends inside a packet gives io.ErrUnexpectedEOF or another error after the
// records before it.
func (r *Reader) Next() (Record, error) {
	if r.format == FormatRawBytes {
		for range 100 {
			n, err := r.raw.Read(r.buf)
			if n > 0 {
				return Record{Dir: Unknown, Data: r.buf[:n], OrigLen: n}, nil
			}
			if err != nil {
				return Record{}, err
			}
		}
		return Record{}, io.ErrNoProgress
	}
	for {
		t, data, origLen, err := r.ng.packet()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return Record{}, io.EOF
			}
			return Record{}, fmt.Errorf("read pcapng: %w", err)
		}
		hl := RawHeaderLen
		if r.format == FormatFrames {
			hl = FramesHeaderLen
		}
		if len(data) < hl {
			r.skipped++
			continue
		}
		rec := Record{Time: t, Dir: Direction(data[0]), Data: data[hl:], Frame: r.format == FormatFrames}
		if !rec.Dir.Valid() {
			rec.Dir = Unknown
		}
		rec.OrigLen = len(rec.Data)
		if rec.Frame {
			rec.Status = Status(data[1])
			if rec.Status >= statusMax {
				rec.Status = StatusNoise
			}
			rec.OrigLen = max(origLen-hl, len(rec.Data))
		}
		return rec, nil
	}
}
