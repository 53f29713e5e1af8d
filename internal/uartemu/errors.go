package uartemu

import (
	"fmt"
	"net"
)

// ErrClosed is returned by Read and Write on a Port after its own Close. It
// wraps net.ErrClosed.
var ErrClosed = fmt.Errorf("uartemu: port closed: %w", net.ErrClosed)
