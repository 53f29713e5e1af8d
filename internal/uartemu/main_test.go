package uartemu

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newPair returns both ends of a cable and closes them when the test ends.
func newPair(t testing.TB, cfg Config) (host, device *Port) {
	t.Helper()
	host, device = New(cfg)
	t.Cleanup(func() {
		host.Close()
		device.Close()
	})
	return host, device
}

// randomBytes returns n reproducible pseudo-random bytes.
func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 0))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// writeAll writes data in chunks from a new goroutine and reports the first
// error (nil when all was written) on the returned channel.
func writeAll(w io.Writer, data []byte, chunk int) <-chan error {
	errc := make(chan error, 1)
	go func() {
		for len(data) > 0 {
			n := min(chunk, len(data))
			if _, err := w.Write(data[:n]); err != nil {
				errc <- err
				return
			}
			data = data[n:]
		}
		errc <- nil
	}()
	return errc
}

// readFull reads exactly n bytes.
func readFull(t testing.TB, r io.Reader, n int) []byte {
	t.Helper()
	got := make([]byte, n)
	if _, err := io.ReadFull(r, got); err != nil {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	return got
}

// checkBalance asserts the identities documented on LineStats.
func checkBalance(t testing.TB, s LineStats) {
	t.Helper()
	if s.Written != s.Delivered+s.Dropped+s.Overflow+s.Queued {
		t.Errorf("Written %d != Delivered %d + Dropped %d + Overflow %d + Queued %d",
			s.Written, s.Delivered, s.Dropped, s.Overflow, s.Queued)
	}
	if s.Delivered != s.Read+s.Discarded+s.Buffered {
		t.Errorf("Delivered %d != Read %d + Discarded %d + Buffered %d",
			s.Delivered, s.Read, s.Discarded, s.Buffered)
	}
}

// isSubsequence reports whether every byte of sub appears in full in order.
func isSubsequence(sub, full []byte) bool {
	for _, b := range sub {
		i := bytes.IndexByte(full, b)
		if i < 0 {
			return false
		}
		full = full[i+1:]
	}
	return true
}

func isTimeout(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) && ne.Timeout()
}
