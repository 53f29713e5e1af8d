package uartemu

// ring is a fixed-size byte FIFO. It is not safe for concurrent use; the
// line's mutex guards it.
type ring struct {
	buf  []byte
	head int // index of the oldest byte
	n    int // number of bytes held
}

func newRing(size int) ring { return ring{buf: make([]byte, size)} }

func (r *ring) len() int  { return r.n }
func (r *ring) cap() int  { return len(r.buf) }
func (r *ring) free() int { return len(r.buf) - r.n }

// write appends as much of p as fits and returns how much that was.
func (r *ring) write(p []byte) int {
	n := min(len(p), r.free())
	if n == 0 {
		return 0
	}
	tail := (r.head + r.n) % len(r.buf)
	c := copy(r.buf[tail:], p[:n])
	copy(r.buf, p[c:n])
	r.n += n
	return n
}

// read moves up to len(p) of the oldest bytes into p.
func (r *ring) read(p []byte) int {
	n := min(len(p), r.n)
	if n == 0 {
		return 0
	}
	c := copy(p[:n], r.buf[r.head:])
	copy(p[c:n], r.buf)
	r.head = (r.head + n) % len(r.buf)
	r.n -= n
	return n
}

func (r *ring) reset() { r.head, r.n = 0, 0 }
