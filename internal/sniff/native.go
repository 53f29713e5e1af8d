package sniff

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/uartproxy/uartproxy/internal/message"
)

// maxMessages bounds the messages shown for one DATA frame. A 8192-byte
// payload holds at most 8192 / 2 of the smallest (FIN) messages.
const maxMessages = 4096

// Hex32 is a 32-bit id shown in hex (session ids).
type Hex32 uint32

// String returns 0x followed by eight hex digits.
func (h Hex32) String() string { return fmt.Sprintf("0x%08x", uint32(h)) }

// MarshalJSON writes the number.
func (h Hex32) MarshalJSON() ([]byte, error) { return json.Marshal(uint32(h)) }

// Features is the HELLO feature bitmask (§5.1).
type Features uint

var featureNames = []string{"tcp", "udp", "listen", "tls", "tls_verify", "service", "resolve", "info", "baud"}

// String returns the names of the bits joined by "+", "none" for 0.
func (f Features) String() string {
	if f == 0 {
		return "none"
	}
	var names []string
	for i, n := range featureNames {
		if f&(1<<i) != 0 {
			names = append(names, n)
		}
	}
	if rest := f &^ (1<<len(featureNames) - 1); rest != 0 {
		names = append(names, "0x"+strconv.FormatUint(uint64(rest), 16))
	}
	return strings.Join(names, "+")
}

// MarshalJSON writes the number.
func (f Features) MarshalJSON() ([]byte, error) { return json.Marshal(uint(f)) }

// codeName is the name of an error code (§10), or codeN for one this
// revision does not know. (message.Code.String says "internal" for those,
// which hides the number the peer sent.)
func codeName(c message.Code) string {
	if c.Normalize() != c {
		return "code" + strconv.Itoa(int(c))
	}
	return c.String()
}

// helloFields returns the fields of a HELLO map in key order.
func helloFields(h message.Hello) Fields {
	f := Fields{
		{"proto_min", h.ProtoMin}, {"proto_max", h.ProtoMax},
		{"role", h.Role.String()},
		{"session", Hex32(h.Session)}, {"peer_session", Hex32(h.PeerSession)},
		{"max_payload", h.MaxPayload}, {"window", h.Window}, {"max_streams", h.MaxStreams},
	}
	if h.StreamWindow != 0 {
		f = append(f, Field{"stream_window", h.StreamWindow})
	}
	f = append(f, Field{"features", Features(h.Features)})
	if h.Firmware != "" {
		f = append(f, Field{"firmware", h.Firmware})
	}
	if h.Model != "" {
		f = append(f, Field{"model", h.Model})
	}
	if h.Baud != 0 {
		f = append(f, Field{"baud", h.Baud})
	}
	return append(f, Field{"established", h.Established})
}

// helloKeys and infoKeys name the uint keys of the HELLO and INFO maps.
var (
	helloKeys = []string{1: "proto_min", 2: "proto_max", 3: "role", 4: "session", 5: "peer_session",
		6: "max_payload", 7: "window", 8: "max_streams", 9: "stream_window", 10: "features",
		11: "firmware", 12: "model", 13: "baud", 14: "established"}
	infoKeys = []string{1: "firmware", 2: "model", 3: "free_mem", 4: "wifi_state", 5: "rssi",
		6: "ip", 7: "uptime_ms", 8: "ssid"}
)

// nameKeys returns v with the uint keys of a map replaced by their names;
// other values are returned as they are.
func nameKeys(v any, names []string) any {
	m, ok := v.(Map)
	if !ok {
		return v
	}
	out := make(Map, len(m))
	for i, p := range m {
		if k, ok := p.Key.(uint64); ok && k < uint64(len(names)) && names[k] != "" {
			p.Key = names[k]
		}
		out[i] = p
	}
	return out
}

// decodeRaw decodes a CBOR item that package message kept raw; nil stays
// nil (null).
func decodeRaw(raw []byte) any {
	if raw == nil {
		return nil
	}
	v, _, err := decodeValue(raw, false)
	if err != nil {
		return "<" + errReason(err) + ">"
	}
	return v
}

// decodeMessages splits a DATA payload into messages (§7.1). Items are
// found with the generic decoder, so a malformed message is shown and the
// next one still decoded; a payload that cannot be split ends the list with
// an error, as it ends the session (§7.15).
func (d *Decoder) decodeMessages(p []byte) ([]Msg, string) {
	var msgs []Msg
	for off := 0; off < len(p); {
		if len(msgs) == maxMessages {
			return msgs, fmt.Sprintf("more than %d messages; the rest (%d bytes) not shown", maxMessages, len(p)-off)
		}
		raw, n, err := decodeValue(p[off:], false)
		if err != nil {
			return msgs, fmt.Sprintf("malformed_payload: %s at byte %d of %d", errReason(err), off, len(p))
		}
		msgs = append(msgs, d.decodeMessage(p[off:off+n], raw))
		off += n
	}
	return msgs, ""
}

// decodeMessage turns one CBOR item into a Msg.
func (d *Decoder) decodeMessage(item []byte, raw any) Msg {
	m, _, err := message.Parse(item)
	if err != nil {
		msg := Msg{Type: "?", Err: message.Reason(err) + ": " + strings.TrimPrefix(err.Error(), "message: "), Raw: raw}
		if a, ok := raw.([]any); ok && len(a) > 0 {
			if t, ok := a[0].(uint64); ok && t <= 255 {
				msg.Type = message.Type(t).String()
				if t >= 1 && t <= 8 && len(a) > 1 {
					if sid, ok := a[1].(uint64); ok && sid <= 1<<32-1 {
						msg.SID, msg.HasSID = uint32(sid), true
					}
				}
			}
		}
		return msg
	}
	msg := Msg{Type: m.Type.String()}
	sid := func(f ...Field) {
		msg.SID, msg.HasSID = m.SID, true
		msg.Fields = append(Fields{{"sid", m.SID}}, f...)
	}
	switch m.Type {
	case message.TypeOpen:
		sid(Field{"kind", m.Kind.String()}, Field{"host", m.Host}, Field{"port", m.Port}, Field{"window", m.Window})
		o := m.Opts
		if o.TLS {
			msg.Fields = append(msg.Fields, Field{"tls", true})
		}
		if o.SNI != "" {
			msg.Fields = append(msg.Fields, Field{"sni", o.SNI})
		}
		if o.Verify != nil {
			msg.Fields = append(msg.Fields, Field{"verify", *o.Verify})
		}
		if o.Backlog != 0 {
			msg.Fields = append(msg.Fields, Field{"backlog", o.Backlog})
		}
		if o.TimeoutMS != 0 {
			msg.Fields = append(msg.Fields, Field{"timeout_ms", o.TimeoutMS})
		}
	case message.TypeOpenOK:
		sid(Field{"window", m.Window}, Field{"host", m.Host}, Field{"port", m.Port})
	case message.TypeReset:
		sid(Field{"code", codeName(m.Code)}, Field{"reason", m.Reason})
	case message.TypeData:
		sid(Field{"data", Bytes(m.Data)})
	case message.TypeFin:
		sid()
	case message.TypeCredit:
		sid(Field{"increment", m.Increment})
	case message.TypeDgram:
		sid(Field{"host", m.Host}, Field{"port", m.Port}, Field{"data", Bytes(m.Data)})
	case message.TypeAccept:
		sid(Field{"listener", m.Listener}, Field{"host", m.Host}, Field{"port", m.Port}, Field{"window", m.Window})
	case message.TypeRequest:
		d.reqs.put(m.ID, m.Op)
		msg.Fields = Fields{{"id", m.ID}, {"op", m.Op.String()}, {"args", decodeRaw(m.Args)}}
	case message.TypeResponse:
		code := codeName(m.Code)
		if m.Code == message.CodeOK {
			code = "ok" // §10: code 0 is "ok" in a RESPONSE
		}
		msg.Fields = Fields{{"id", m.ID}, {"code", code}}
		result := decodeRaw(m.Result)
		if op, ok := d.reqs.take(m.ID); ok {
			msg.Fields = append(msg.Fields, Field{"op", op.String()})
			if op == message.OpInfo && m.Code == message.CodeOK {
				result = nameKeys(result, infoKeys)
			}
		}
		msg.Fields = append(msg.Fields, Field{"result", result})
	case message.TypeEvent:
		value := decodeRaw(m.Value)
		kind := "kind" + strconv.Itoa(int(m.Event))
		if m.Event == message.EventInfo {
			kind, value = "info", nameKeys(value, infoKeys)
		}
		msg.Fields = Fields{{"kind", kind}, {"value", value}}
	}
	return msg
}
