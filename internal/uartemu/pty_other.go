//go:build !linux

package uartemu

import (
	"errors"
	"os"
)

func openRawPTY() (master, slave *os.File, err error) {
	return nil, nil, errors.New("pty mode is only supported on Linux")
}

func ptyBaud(*os.File) (int, error) { return 0, errors.New("pty mode is only supported on Linux") }
