// Package uartemu emulates the UART cable between the host and an ESP32, so
// that link and mux tests, goodput benchmarks and `uartproxy emulate --pty`
// run without hardware.
//
// New returns an in-process pair of Ports, one per end of the cable. Each
// direction is a line with a transmit FIFO at the writing end, a wire that
// moves bytes at Baud/10 bytes per second (8N1), and a receive buffer at the
// reading end. Bytes are corrupted, replaced by burst garbage or dropped as
// they cross, and are either held back by RTS/CTS flow control or lost when
// they reach a full receive buffer. NewPTY bridges the host end to a
// pseudo-terminal, so a real serial library can open the cable by path.
//
// Timing model: each line keeps a virtual wire clock on the monotonic clock.
// Bytes that should have crossed by now are moved whenever anybody looks (a
// Read, a Write, Stats, or the line's pacing goroutine), in chunks, so a late
// wake-up never slows the wire down; it only delays delivery by the wake-up
// latency (about 1 ms here). A writer that blocked on a full FIFO counts as
// refilling it on time, so back-to-back Writes keep the wire busy even when
// the FIFO holds less than a timer tick of data (its bytes may then arrive up
// to a few ms sooner after their Write than on a real line). A wire that went
// idle restarts at the next Write, never earlier, and the wire never moves
// more than Baud/10 bytes a second; over a second it moves that many within
// a fraction of a percent.
//
// Concurrency: a Port is safe for concurrent use. Reads may run concurrently;
// concurrent Writes are serialized and each Write's bytes stay contiguous on
// the wire. Close unblocks the Reads and Writes of its own end only: the
// other end sees silence, never io.EOF, as on a real UART. Each direction has
// at most one pacing goroutine, owned by the Port that writes into it and
// stopped (and waited for) by that Port's Close, so closing both Ports of a
// pair stops everything.
package uartemu
