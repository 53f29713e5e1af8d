package capture

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// ErrLinkType is returned when a record does not fit the link type of the
// Writer: a frame written to a raw capture or a chunk to a frame capture.
var ErrLinkType = errors.New("capture: record does not match the link type")

// Writer writes a pcapng capture with one interface of link type
// LinkTypeFrames or LinkTypeRaw. It buffers: call Flush before closing the
// underlying file. A Writer is safe for concurrent use; packets are written
// in the order of the calls.
type Writer struct {
	mu       sync.Mutex
	ng       *ngWriter
	linkType int
	buf      []byte
	err      error // first write error
}

// NewWriter writes the pcapng section and interface headers to w and returns
// a Writer for packets of linkType (LinkTypeFrames or LinkTypeRaw).
func NewWriter(w io.Writer, linkType int) (*Writer, error) {
	var desc string
	switch linkType {
	case LinkTypeFrames:
		desc = "uartproxy SLIP frames: [direction][status] + frame"
	case LinkTypeRaw:
		desc = "uartproxy raw line bytes: [direction] + bytes"
	default:
		return nil, fmt.Errorf("capture: link type %d: want %d (frames) or %d (raw)", linkType, LinkTypeFrames, LinkTypeRaw)
	}
	ng, err := newNgWriter(w, linkType, "uart", desc)
	if err != nil {
		return nil, fmt.Errorf("capture: write pcapng header: %w", err)
	}
	return &Writer{ng: ng, linkType: linkType}, nil
}

// LinkType returns LinkTypeFrames or LinkTypeRaw.
func (w *Writer) LinkType() int { return w.linkType }

// WriteChunk writes line bytes read or written at t (LinkTypeRaw). A zero t
// (unknown) is written as 0, which a Reader reads back as zero.
func (w *Writer) WriteChunk(t time.Time, dir Direction, p []byte) error {
	if w.linkType != LinkTypeRaw {
		return ErrLinkType
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.writeChunk(t, dir, p)
}

// writeChunkNow is WriteChunk stamped with the time it gets the lock, so
// that concurrent callers (a Tap's reader and writer) leave packets in time
// order.
func (w *Writer) writeChunkNow(dir Direction, p []byte) error {
	if w.linkType != LinkTypeRaw {
		return ErrLinkType
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.writeChunk(time.Now(), dir, p)
}

func (w *Writer) writeChunk(t time.Time, dir Direction, p []byte) error {
	w.buf = append(append(w.buf[:0], byte(dir)), p...)
	return w.write(t, w.buf, len(w.buf))
}

// WriteFrame writes one SLIP frame, unescaped, decoded at t
// (LinkTypeFrames). origLen is the frame's length when p holds less of it
// (StatusTooLong frames are written without their bytes); a smaller value
// means len(p). A zero t (unknown) is written as 0, which a Reader reads back
// as zero.
func (w *Writer) WriteFrame(t time.Time, dir Direction, status Status, p []byte, origLen int) error {
	if w.linkType != LinkTypeFrames {
		return ErrLinkType
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(append(w.buf[:0], byte(dir), byte(status)), p...)
	return w.write(t, w.buf, FramesHeaderLen+max(origLen, len(p)))
}

// write writes one packet; w.mu must be held. Times before 1970, the zero
// time among them, are written as 0.
func (w *Writer) write(t time.Time, data []byte, origLen int) error {
	if w.err != nil {
		return w.err
	}
	if err := w.ng.packet(t, data, origLen); err != nil {
		w.err = fmt.Errorf("capture: write packet: %w", err)
	}
	return w.err
}

// Flush writes out buffered packets.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	if err := w.ng.flush(); err != nil {
		w.err = fmt.Errorf("capture: flush: %w", err)
	}
	return w.err
}

// Err returns the first error the Writer met, or nil. A Tap keeps going when
// its capture fails; its owner learns about it here.
func (w *Writer) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}
