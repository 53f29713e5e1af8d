//go:build !linux

package uartemu

import (
	"errors"
	"os"
)

func openRawPTY() (master, slave *os.File, err error) {
	return nil, nil, errors.New("pty mode is only supported on Linux")
}
