// Package dnsproxy is a small DNS forwarder for hosts whose only way out is
// the ESP32. It answers A and AAAA questions by resolving names on the
// device (Config.Lookup), relays every other question type unchanged to an
// upstream DNS server through a UDP socket opened on the device
// (Config.ListenPacket), and caches the names it resolved. It serves UDP
// and TCP (RFC 7766) on the same port.
//
// Concurrency: a started Server has one goroutine reading UDP, one
// accepting TCP and one per TCP connection. Whatever can be answered at
// once (a cache hit, localhost, a malformed query) is answered by the
// goroutine that read it; a question that needs the device is resolved in
// a goroutine of its own, at most Config.MaxInflight at a time, and
// questions beyond that get SERVFAIL at once. Concurrent questions for the
// same name and type share one lookup. One mutex guards the cache, the
// table of lookups in flight and the connection table; counters are
// atomic. Close cancels every lookup, closes every socket and waits for
// every goroutine. All methods are safe for concurrent use.
package dnsproxy

import (
	"errors"
	"time"
)

// Sizes from the DNS specifications.
const (
	// udpMinSize is the largest reply a client without EDNS0 takes over
	// UDP (RFC 1035 §4.2.1).
	udpMinSize = 512
	// udpMaxSize is the EDNS0 payload size this server advertises and
	// the largest UDP reply it sends whatever the client advertises
	// (DNS Flag Day 2020: no IP fragmentation).
	udpMaxSize = 1232
	// tcpMaxSize is the largest message the 2-byte length prefix can
	// carry (RFC 7766 §8).
	tcpMaxSize = 65535
	// headerLen is the size of the fixed DNS header (RFC 1035 §4.1.1).
	headerLen = 12
)

// Tuning constants.
const (
	// negativeTTLMax caps how long NXDOMAIN and empty answers are cached.
	negativeTTLMax = 10 * time.Second
	// maxAddrs caps the addresses kept and answered for one name, so a
	// lookup that returns thousands cannot blow up the cache or a reply.
	maxAddrs = 64
	// readErrorBackoff is the pause after a UDP read error that is not a
	// closed socket, so a persistent error cannot spin the reader.
	readErrorBackoff = 50 * time.Millisecond
	// bindRetries is how often Start retries with port 0 when the UDP
	// port it got is taken for TCP.
	bindRetries = 10
)

// Errors returned by Start.
var (
	ErrServerClosed = errors.New("dnsproxy: server closed")
	ErrStarted      = errors.New("dnsproxy: server already started")
)
