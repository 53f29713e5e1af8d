package message

import "fmt"

// Role says which end of the link a HELLO comes from.
type Role uint8

// protocol: must match firmware and docs/protocol.md §5.
const (
	RoleHost   Role = 0
	RoleDevice Role = 1
)

// String returns "host" or "device".
func (r Role) String() string {
	if r == RoleDevice {
		return "device"
	}
	return "host"
}

// Feature bits in Hello.Features.
//
// protocol: must match firmware and docs/protocol.md §5.
const (
	FeatureTCP       = 1 << 0
	FeatureUDP       = 1 << 1
	FeatureListen    = 1 << 2
	FeatureTLS       = 1 << 3
	FeatureTLSVerify = 1 << 4
	FeatureService   = 1 << 5
	FeatureResolve   = 1 << 6
	FeatureInfo      = 1 << 7
	FeatureBaud      = 1 << 8 // SET_BAUD and BAUD_COMMIT (docs/protocol.md §5.7)
	FeaturesAll      = 0x1ff
)

// Hello is the payload of a HELLO frame (docs/protocol.md §5).
type Hello struct {
	ProtoMin     uint   `cbor:"1,keyasint"`
	ProtoMax     uint   `cbor:"2,keyasint"`
	Role         Role   `cbor:"3,keyasint"`
	Session      uint32 `cbor:"4,keyasint"`
	PeerSession  uint32 `cbor:"5,keyasint"`
	MaxPayload   uint   `cbor:"6,keyasint"`
	Window       uint   `cbor:"7,keyasint"`
	MaxStreams   uint   `cbor:"8,keyasint"`
	StreamWindow uint   `cbor:"9,keyasint"`
	Features     uint   `cbor:"10,keyasint"`
	Firmware     string `cbor:"11,keyasint,omitempty"`
	Model        string `cbor:"12,keyasint,omitempty"`
	Baud         uint   `cbor:"13,keyasint,omitempty"`
	// Established says the sender considers the session with PeerSession
	// up; a peer that is not yet established answers it (§5.2).
	Established bool `cbor:"14,keyasint,omitempty"`
}

// MarshalHello encodes h canonically.
func MarshalHello(h Hello) ([]byte, error) { return encMode.Marshal(h) }

// ParseHello decodes and checks a HELLO payload.
func ParseHello(b []byte) (Hello, error) {
	var h Hello
	if err := decMode.Unmarshal(b, &h); err != nil {
		return h, fmt.Errorf("%w: hello: %v", ErrMalformed, err)
	}
	if h.Session == 0 {
		return h, fmt.Errorf("%w: hello: session id 0", ErrMalformed)
	}
	if h.ProtoMin == 0 || h.ProtoMax < h.ProtoMin {
		return h, fmt.Errorf("%w: hello: protocol range %d..%d", ErrMalformed, h.ProtoMin, h.ProtoMax)
	}
	if h.Role != RoleHost && h.Role != RoleDevice {
		return h, fmt.Errorf("%w: hello: role %d", ErrMalformed, h.Role)
	}
	if h.MaxPayload == 0 || h.Window == 0 {
		return h, fmt.Errorf("%w: hello: zero max_payload or window", ErrMalformed)
	}
	return h, nil
}

// Negotiate returns the protocol revision both sides speak, or an error when
// their ranges do not overlap (docs/protocol.md §5).
func Negotiate(a, b Hello) (uint, error) {
	rev := min(a.ProtoMax, b.ProtoMax)
	if rev < max(a.ProtoMin, b.ProtoMin) {
		return 0, fmt.Errorf("incompatible protocol: we speak %d..%d, peer %d..%d", a.ProtoMin, a.ProtoMax, b.ProtoMin, b.ProtoMax)
	}
	return rev, nil
}

// Info is the result of OpInfo and the value of EventInfo
// (docs/protocol.md §7). Pointer fields are absent when nil.
type Info struct {
	Firmware string  `cbor:"1,keyasint,omitempty" json:"firmware,omitempty"`
	Model    string  `cbor:"2,keyasint,omitempty" json:"model,omitempty"`
	FreeMem  *uint64 `cbor:"3,keyasint,omitempty" json:"free_mem,omitempty"`
	WiFi     *uint8  `cbor:"4,keyasint,omitempty" json:"wifi_state,omitempty"`
	RSSI     *int    `cbor:"5,keyasint,omitempty" json:"rssi,omitempty"`
	IP       string  `cbor:"6,keyasint,omitempty" json:"ip,omitempty"`
	UptimeMS *uint64 `cbor:"7,keyasint,omitempty" json:"uptime_ms,omitempty"`
	SSID     string  `cbor:"8,keyasint,omitempty" json:"ssid,omitempty"`
}

// Wi-Fi states in Info.WiFi.
const (
	WiFiDown       = 0
	WiFiConnecting = 1
	WiFiUp         = 2
)
