package uartemu

// LineStats is a snapshot of the counters of one direction of the cable.
//
// At any moment Written == Delivered + Dropped + Overflow + Queued, and
// Delivered == Read + Discarded + Buffered.
type LineStats struct {
	// Written counts bytes accepted by Write (including bytes discarded
	// because the writing end was silent).
	Written int64
	// Delivered counts bytes put into the receive buffer, corrupted or not.
	Delivered int64
	// Corrupted counts delivered bytes with at least one bit flipped by BER.
	Corrupted int64
	// Dropped counts bytes that vanished: DropRate losses, bytes written
	// while silent, bytes left in the FIFO when the writer closed, and bytes
	// that crossed after the reader closed.
	Dropped int64
	// Overflow counts bytes lost at a full receive buffer (flow control off).
	Overflow int64
	// Bursts counts error bursts started.
	Bursts int64
	// BurstBytes counts delivered bytes replaced by burst garbage; they are
	// not also counted as Corrupted.
	BurstBytes int64
	// Garbled counts delivered bytes that arrived as garbage because the
	// two ends' baud rates differed (see Port.SetBaud).
	Garbled int64
	// Discarded counts delivered bytes thrown away unread by Flush or by
	// Close of the reading end.
	Discarded int64
	// Read counts bytes returned by Read.
	Read int64
	// Queued is the number of bytes in the transmit FIFO now.
	Queued int64
	// Buffered is the number of bytes in the receive buffer now.
	Buffered int64
}
