//go:build !linux

package serialport

// control does nothing outside Linux: there go.bug.st/serial's own errors are
// reported and flow control is never on.
type control struct{}

func openControl(string) (control, error)           { return control{}, nil }
func (control) setRTSCTS(bool) (ok bool, err error) { return false, nil }
func (control) close()                              {}
