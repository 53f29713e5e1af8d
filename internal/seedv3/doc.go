// Package seedv3 drives ESP32 boards that run the first seed's original
// firmware, "protocol v3" (shared/reference/seed-v3-wire-format.md;
// docs/protocol.md §3.5 and §14): a stop-and-wait RPC of REQ, RESP and ACK
// frames carrying CBOR in the seed's dialect. It has four parts:
//
//   - Decode and Append, the seed's CBOR dialect (major type 6 is a tuple).
//   - Client, the host side of the RPC over a serial port: one call at a
//     time, REQ resent every 200 ms until its RESP, every RESP ACKed. The
//     period counts from the later of the last copy and the last byte
//     heard, so a long RESP still arriving (8 KiB take 89 ms at 921600
//     baud) is not asked for a second time.
//   - Net, the network through the board with the standard library's
//     signatures (DialContext, DialTLS, Listen, ListenPacket, LookupNetIP),
//     driven by one scheduler that polls the device's sockets.
//   - Device, an emulated v3 board with real sockets on this machine, for
//     tests, `serve --emulate` and `bench`.
//
// # Errors
//
// Errors match syscall errnos with errors.Is, as the proxies classify
// them: a refused connect ECONNREFUSED, timeouts ETIMEDOUT (and Timeout()
// is true), a device that did not answer before the deadline ENETDOWN
// (*DownError, the seed's "bridge_timeout"), sockets lost in a reboot or
// to invalid_sid ECONNRESET (*ResetError). A name the device cannot
// resolve gives a *net.DNSError with IsNotFound.
//
// # The scheduler
//
// v3 runs one op at a time, every byte waits a round trip, and a blocking
// recv stalls every other socket. The scheduler of a Net is the only
// caller of its Client; it is built to keep the line busy with payload
// while no socket starves:
//
//   - Round robin over sockets with work. A socket's turn is one op: a
//     queued write (sock_send of up to MaxFrame-96 bytes, sock_sendto), or
//     a read poll that is due (sock_recv, sock_accept, sock_recvfrom);
//     when both wait, the socket alternates them. Jobs (opens, dns,
//     wifi_status) alternate with socket turns.
//   - A write that empties the socket's queue is followed, in the same
//     turn, by a read poll: an answer usually follows a request, and on a
//     fast peer it is already there (64-byte echo round trip about 5 ms
//     on an idle line).
//   - Read polls ask for as much as fits one frame (n = MaxFrame-96, 8096
//     bytes at the default 8192) while no other socket moves data, and at
//     most SharedRecv (4096) while another one has work or moved data in
//     the last second, so that a bulk download gives the line up every 45
//     ms at 921600 baud (30 ms at 1,400,000).
//   - timeout_ms of a poll is ShortPoll (1 ms; not 0, which MicroPython
//     turns into a non-blocking EAGAIN) unless the socket is the only one
//     with work, has no write queued, and either a stream is flowing (its
//     last poll filled half the request) or it awaits an answer (it wrote
//     since data last came); then LongPoll (75 ms), cut short so that it
//     ends when another socket's poll or the next ping is due. The device
//     then answers as soon as data arrives, and a blocking poll never
//     holds up another socket's work or the socket's own next write for
//     long.
//   - A poll that brings nothing backs the socket off: it is not polled
//     again for MinIdle (10 ms), doubling per empty poll up to MaxIdle
//     (250 ms). Data resets the backoff, and so does a write that empties
//     the queue. An idle socket costs one short poll (about 3 ms of line
//     time) every 250 ms.
//   - A Conn holds up to RecvBuffer (256 KiB) for its reader and is not
//     polled while less than one poll's worth is free; Write queues up to
//     SendBuffer (64 KiB) and blocks beyond.
//   - Every PingEvery (2 s) a ping checks the device's uptime: if it grew
//     less than the time since the last ping (50 ms + 0.1 % tolerance),
//     the device rebooted. An invalid_sid answer, or sock_open handing
//     out a sid we still hold, triggers that check at once.
//
// # Reboots and outages
//
// A rebooted device has lost its sockets and its RESP cache. When a reboot
// is noticed every Conn, Listener and PacketConn fails with a *ResetError
// (ECONNRESET), and a sock_reset goes out before the next open, so
// sockets opened between the reboot and its discovery do not linger. A
// call without RESP before its deadline fails every socket with the
// *DownError and owes the device a sock_reset as well. Opens work again as
// soon as the device answers.
//
// # What v3 cannot do
//
// No half-close: Conn.CloseWrite returns nil but the device keeps the
// socket open until Close, so a peer waiting for EOF waits for Close. No
// getsockname: a Listener or PacketConn bound to port 0 cannot learn its
// port, and LocalAddr reports the address asked for. No certificate
// verification for DialTLS. No push and no flow control: data waits on the
// device until polled, and a peer that stops reading blocks sock_send and
// with it the whole device. One op at a time: a connect to an unreachable
// host stalls every socket for up to ConnectTimeout.
//
// # Concurrency
//
// A Client's loop goroutine owns the protocol state (seq, the call in
// flight, its timers); a reader and a writer goroutine move frames
// between it and the port. Call is safe for concurrent use and serialises
// calls in arrival order. A Net's scheduler goroutine owns the socket ring
// and all polling decisions; each socket's buffers are guarded by its own
// mutex, and blocked Read, Write, Accept and ReadFrom calls wait on
// capacity-1 notify channels, so deadlines and failures wake them. A
// Device runs its ops in one loop goroutine; Reboot and Close interrupt a
// blocking op by closing its sockets. Close of each waits for its
// goroutines.
package seedv3
