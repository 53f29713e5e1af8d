package forward

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// acceptLocal accepts local TCP clients until the listener is closed.
func (f *Forward) acceptLocal(ln net.Listener) {
	defer f.wg.Done()
	delay := time.Duration(0)
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || f.acceptCtx.Err() != nil {
				return
			}
			// Out of file descriptors and the like: wait a little, as
			// net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), acceptBackoffMax)
			f.logLimited("accept").Err(err).Msg("accept failed; retrying")
			if !f.sleep(delay) {
				return
			}
			continue
		}
		delay = 0
		f.take(c)
	}
}

// pair is one TCP connection through the forward: host is the side on
// this host (the local client, or what DialLocal reached), dev the side
// through the device.
type pair struct {
	mu     sync.Mutex
	closed bool
	host   net.Conn
	dev    net.Conn
}

// setOther stores the side just opened; false means the pair was closed
// meanwhile and the caller must close c.
func (p *pair) setOther(c net.Conn, remote bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	if remote {
		p.host = c
	} else {
		p.dev = c
	}
	return true
}

// close closes both sides; it may be called any number of times.
func (p *pair) close() { p.shut(false) }

// abort closes both sides of a connection that failed or is cut: a TCP
// peer gets a reset rather than an orderly end that would pass for the
// whole stream. (A mux stream closed before both sides finished resets
// itself.)
func (p *pair) abort() { p.shut(true) }

func (p *pair) shut(reset bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	for _, c := range []net.Conn{p.host, p.dev} {
		if c == nil {
			continue
		}
		if l, ok := c.(interface{ SetLinger(int) error }); ok && reset {
			l.SetLinger(0)
		}
		c.Close()
	}
}

// take admits an accepted connection (a local client, or a connection
// the device listener accepted) and serves it in a new goroutine.
func (f *Forward) take(c net.Conn) {
	remote := f.cfg.Spec.Remote
	release, ok := f.admit(addrString(c.RemoteAddr()))
	if !ok {
		c.Close()
		return
	}
	p := &pair{}
	if remote {
		p.dev = c
	} else {
		p.host = c
	}
	f.mu.Lock()
	if f.state == stateClosed {
		f.mu.Unlock()
		c.Close()
		release()
		return
	}
	f.pairs[p] = struct{}{}
	f.accepted.Add(1)
	f.active.Add(1)
	f.wg.Add(1)
	f.mu.Unlock()
	go f.serveConn(p, c, release)
}

// serveConn opens the other side for an accepted connection c and
// proxies between them.
func (f *Forward) serveConn(p *pair, c net.Conn, release func()) {
	defer f.wg.Done()
	defer release()
	defer f.active.Add(-1)
	defer func() {
		f.mu.Lock()
		delete(f.pairs, p)
		f.mu.Unlock()
		p.close()
	}()

	remote := f.cfg.Spec.Remote
	log := f.log.With().Str("client", addrString(c.RemoteAddr())).Logger()
	dial, what := f.cfg.Dial, "connect through the ESP32"
	if remote {
		dial, what = f.cfg.DialLocal, "connect to the local target"
	}
	ctx, cancel := context.WithTimeout(f.connCtx, f.cfg.ConnectTimeout)
	other, err := dial(ctx, "tcp", f.cfg.Spec.Target())
	cancel()
	if err != nil {
		f.failOpen(f.connCtx, log, what, err)
		return
	}
	if !p.setOther(other, remote) {
		other.Close()
		return
	}
	log.Debug().Msg("connected")
	up, down, err := f.proxy(p)
	ev := log.Debug()
	if err != nil {
		ev = ev.Err(err)
	}
	ev.Int64("up", up).Int64("down", down).Msg("connection done")
}

// proxy copies both ways between p.host and p.dev. When one direction
// reaches EOF it half-closes the other side's write; it returns when both
// directions are done, or after either fails (then both sides are
// aborted). up counts bytes written to the device side.
func (f *Forward) proxy(p *pair) (up, down int64, err error) {
	type result struct {
		n   int64
		err error
	}
	done := make(chan result, 1)
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		n, err := pipe(p.dev, p.host, &f.bytesUp)
		p.failed(err)
		done <- result{n, err}
	}()
	down, err = pipe(p.host, p.dev, &f.bytesDown)
	p.failed(err)
	r := <-done
	return r.n, down, errors.Join(r.err, err)
}

// failed ends the connection when a direction ended with err: an abort,
// unless the data all went through and only the half-close could not.
func (p *pair) failed(err error) {
	switch {
	case err == nil:
	case errors.Is(err, errNoHalfClose):
		p.close()
	default:
		p.abort()
	}
}

// errNoHalfClose: the side that should see EOF cannot be half-closed, so
// the connection ends.
var errNoHalfClose = errors.New("cannot half-close: no CloseWrite")

// pipe copies src to dst, adding to total as bytes go, and passes src's
// EOF on with CloseWrite.
func pipe(dst, src net.Conn, total *atomic.Uint64) (int64, error) {
	buf := make([]byte, copyBuffer)
	var n int64
	for {
		nr, rerr := src.Read(buf)
		if nr > 0 {
			nw, werr := dst.Write(buf[:nr])
			n += int64(nw)
			total.Add(uint64(nw))
			if werr != nil {
				return n, werr
			}
			if nw < nr {
				return n, io.ErrShortWrite
			}
		}
		if rerr == io.EOF {
			if cw, ok := dst.(interface{ CloseWrite() error }); ok {
				return n, cw.CloseWrite()
			}
			return n, errNoHalfClose
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// addrString formats a peer address, which a device connection may not
// have.
func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}
