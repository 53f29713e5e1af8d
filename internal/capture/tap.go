package capture

import (
	"io"
	"os"
	"time"
)

// NewTap returns rw with every byte that passes through it recorded in w, a
// LinkTypeRaw Writer: bytes read as DeviceToHost, stamped when the Read
// returns, and bytes written as HostToDevice, stamped when they are handed to
// rw (the moment a frame starts onto the wire). This is the host's view of
// the line; `serve --mirror` and the tests record sessions this way.
//
// The returned value also has Close, which closes rw if it is an io.Closer,
// and SetReadDeadline, which calls rw's (os.ErrNoDeadline if it has none), so it can stand in
// for a serial port (a link.New wants an io.ReadWriteCloser). One Read and
// one Write may run at the same time, as on a port.
//
// A failing capture never fails the I/O: the tap stops recording, and
// w.Err says why.
func NewTap(rw io.ReadWriter, w *Writer) io.ReadWriter {
	return &tap{rw: rw, w: w}
}

type tap struct {
	rw io.ReadWriter
	w  *Writer
}

func (t *tap) Read(p []byte) (int, error) {
	n, err := t.rw.Read(p)
	if n > 0 {
		t.w.writeChunkNow(DeviceToHost, p[:n]) // its error stays in t.w
	}
	return n, err
}

// Write records p before writing it, so the stamp is when the bytes start
// out. If rw takes fewer bytes (an error), the capture holds the whole of p.
func (t *tap) Write(p []byte) (int, error) {
	if len(p) > 0 {
		t.w.writeChunkNow(HostToDevice, p)
	}
	return t.rw.Write(p)
}

// Close closes the underlying port if it can be closed.
func (t *tap) Close() error {
	if c, ok := t.rw.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// SetReadDeadline sets the underlying port's read deadline, or fails with
// os.ErrNoDeadline if it has none.
func (t *tap) SetReadDeadline(d time.Time) error {
	if s, ok := t.rw.(interface{ SetReadDeadline(time.Time) error }); ok {
		return s.SetReadDeadline(d)
	}
	return os.ErrNoDeadline
}
