package api

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Protocol is an IP protocol given by name ("TCP", "UDP", "ICMP", "ICMPv6",
// "SCTP", "UDPLite") or by number (1-255), as in Calico's numorstring.
type Protocol struct {
	Name   string // set when given by name
	Number uint8  // set when given by number (Name is then empty)
}

// ProtocolFromString parses "TCP" or "6".
func ProtocolFromString(s string) Protocol {
	if n, err := strconv.Atoi(s); err == nil && n >= 0 && n <= 255 {
		return Protocol{Number: uint8(n)}
	}
	return Protocol{Name: s}
}

// String returns the name, or the number in decimal.
func (p Protocol) String() string {
	if p.Name != "" {
		return p.Name
	}
	return strconv.Itoa(int(p.Number))
}

// MarshalJSON writes a name as a string and a number as a number.
func (p Protocol) MarshalJSON() ([]byte, error) {
	if p.Name != "" {
		return json.Marshal(p.Name)
	}
	return json.Marshal(p.Number)
}

// UnmarshalJSON accepts a string or a number in 0-255.
func (p *Protocol) UnmarshalJSON(b []byte) error {
	var n int64
	if err := json.Unmarshal(b, &n); err == nil {
		if n < 0 || n > 255 {
			return fmt.Errorf("protocol number %d out of range 1-255", n)
		}
		*p = Protocol{Number: uint8(n)}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("protocol must be a name or a number, got %s", string(b))
	}
	*p = ProtocolFromString(s)
	return nil
}

// Port is a port number, a "min:max" range, or a named port, as in Calico.
type Port struct {
	MinPort  uint16 // set for a number or a range
	MaxPort  uint16 // equal to MinPort for a single number
	PortName string // set for a named port
}

// SinglePort returns a Port for one port number.
func SinglePort(p uint16) Port { return Port{MinPort: p, MaxPort: p} }

// PortFromString parses "80", "8000:8080" or "http". Range checks are left
// to validation so that errors can name the field.
func PortFromString(s string) (Port, error) {
	if lo, hi, ok := strings.Cut(s, ":"); ok {
		min, err1 := strconv.ParseUint(lo, 10, 16)
		max, err2 := strconv.ParseUint(hi, 10, 16)
		if err1 != nil || err2 != nil {
			return Port{}, fmt.Errorf("port range %q must be \"min:max\" with numbers 0-65535", s)
		}
		return Port{MinPort: uint16(min), MaxPort: uint16(max)}, nil
	}
	if n, err := strconv.ParseUint(s, 10, 16); err == nil {
		return SinglePort(uint16(n)), nil
	}
	if s == "" {
		return Port{}, fmt.Errorf("port must not be empty")
	}
	if s[0] >= '0' && s[0] <= '9' {
		return Port{}, fmt.Errorf("port %q is not a number in 0-65535, a \"min:max\" range or a name", s)
	}
	return Port{PortName: s}, nil
}

// String renders the port the way it is written in a manifest.
func (p Port) String() string {
	switch {
	case p.PortName != "":
		return p.PortName
	case p.MinPort == p.MaxPort:
		return strconv.Itoa(int(p.MinPort))
	default:
		return fmt.Sprintf("%d:%d", p.MinPort, p.MaxPort)
	}
}

// MarshalJSON writes a single port as a number, otherwise a string.
func (p Port) MarshalJSON() ([]byte, error) {
	if p.PortName == "" && p.MinPort == p.MaxPort {
		return json.Marshal(p.MinPort)
	}
	return json.Marshal(p.String())
}

// UnmarshalJSON accepts a number or a string.
func (p *Port) UnmarshalJSON(b []byte) error {
	var n int64
	if err := json.Unmarshal(b, &n); err == nil {
		if n < 0 || n > 65535 {
			return fmt.Errorf("port %d out of range 0-65535", n)
		}
		*p = SinglePort(uint16(n))
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("port must be a number, a \"min:max\" string or a name, got %s", string(b))
	}
	v, err := PortFromString(s)
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// ASNumber is a BGP AS number. It reads a plain number (4-byte ASN) or the
// "asdot" form "high.low", and always writes a plain number.
type ASNumber uint32

// ParseASNumber parses "64512" or "1.10".
func ParseASNumber(s string) (ASNumber, error) {
	if hi, lo, ok := strings.Cut(s, "."); ok {
		h, err1 := strconv.ParseUint(hi, 10, 16)
		l, err2 := strconv.ParseUint(lo, 10, 16)
		if err1 != nil || err2 != nil {
			return 0, fmt.Errorf("AS number %q must be a number 0-4294967295 or asdot \"high.low\"", s)
		}
		return ASNumber(h<<16 | l), nil
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("AS number %q must be a number 0-4294967295 or asdot \"high.low\"", s)
	}
	return ASNumber(n), nil
}

// UnmarshalJSON accepts a number or a string in plain or asdot form.
func (a *ASNumber) UnmarshalJSON(b []byte) error {
	var n int64
	if err := json.Unmarshal(b, &n); err == nil {
		if n < 0 || n > 4294967295 {
			return fmt.Errorf("AS number %d out of range 0-4294967295", n)
		}
		*a = ASNumber(n)
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("AS number must be a number or a string, got %s", string(b))
	}
	v, err := ParseASNumber(s)
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// Canonical protocol names, in Calico's case.
const (
	ProtocolTCP     = "TCP"
	ProtocolUDP     = "UDP"
	ProtocolICMP    = "ICMP"
	ProtocolICMPv6  = "ICMPv6"
	ProtocolSCTP    = "SCTP"
	ProtocolUDPLite = "UDPLite"
)

// protocolNumbers maps the canonical names to IANA protocol numbers.
var protocolNumbers = []struct {
	name string
	num  uint8
}{
	{ProtocolTCP, 6}, {ProtocolUDP, 17}, {ProtocolICMP, 1},
	{ProtocolICMPv6, 58}, {ProtocolSCTP, 132}, {ProtocolUDPLite, 136},
}

// protocolNames lists the canonical names, for messages and normalising.
func protocolNames() []string {
	out := make([]string, len(protocolNumbers))
	for i, p := range protocolNumbers {
		out[i] = p.name
	}
	return out
}

// ToNumber returns the IANA protocol number: the number itself, or that of
// a known name (matched ignoring case). ok is false for an unknown name.
func (p Protocol) ToNumber() (num uint8, ok bool) {
	if p.Name == "" {
		return p.Number, true
	}
	for _, n := range protocolNumbers {
		if strings.EqualFold(n.name, p.Name) {
			return n.num, true
		}
	}
	return 0, false
}

// SupportsPorts reports whether the protocol has ports: TCP, UDP or SCTP,
// by name or number (6, 17, 132).
func (p Protocol) SupportsPorts() bool {
	n, ok := p.ToNumber()
	return ok && (n == 6 || n == 17 || n == 132)
}

// canonicalName returns p with a known name rewritten to Calico's case
// ("tcp" → "TCP", "icmpv6" → "ICMPv6").
func (p Protocol) canonicalName() Protocol {
	if p.Name != "" {
		if c, ok := canonical(p.Name, protocolNames()); ok {
			p.Name = c
		}
	}
	return p
}
