//go:build !linux

package daemon

func monotonicUsec() string { return "0" }
