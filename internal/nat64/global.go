package nat64

// nonGlobalIPv4 lists the IPv4 ranges that the IANA IPv4 Special-Purpose
// Address Registry (RFC 6890 and its updates) marks "Global: False", plus
// multicast, which is never a unicast destination worth synthesizing.
var nonGlobalIPv4 = [...]struct {
	addr [4]byte
	bits uint8
}{
	{[4]byte{0, 0, 0, 0}, 8},          // "this network", RFC 791
	{[4]byte{10, 0, 0, 0}, 8},         // private-use, RFC 1918
	{[4]byte{100, 64, 0, 0}, 10},      // shared address space, RFC 6598
	{[4]byte{127, 0, 0, 0}, 8},        // loopback
	{[4]byte{169, 254, 0, 0}, 16},     // link local
	{[4]byte{172, 16, 0, 0}, 12},      // private-use
	{[4]byte{192, 0, 0, 0}, 24},       // IETF protocol assignments (see globalExceptions)
	{[4]byte{192, 0, 2, 0}, 24},       // documentation, TEST-NET-1
	{[4]byte{192, 168, 0, 0}, 16},     // private-use
	{[4]byte{198, 18, 0, 0}, 15},      // benchmarking, RFC 2544
	{[4]byte{198, 51, 100, 0}, 24},    // documentation, TEST-NET-2
	{[4]byte{203, 0, 113, 0}, 24},     // documentation, TEST-NET-3
	{[4]byte{224, 0, 0, 0}, 4},        // multicast
	{[4]byte{240, 0, 0, 0}, 4},        // reserved (includes limited broadcast)
	{[4]byte{255, 255, 255, 255}, 32}, // limited broadcast
}

// globalExceptions are the registry's global addresses inside 192.0.0.0/24:
// the PCP and TURN anycast addresses (RFC 7723, RFC 8155).
var globalExceptions = [...][4]byte{{192, 0, 0, 9}, {192, 0, 0, 10}}

// IsGlobalIPv4 reports whether v4 is globally reachable: the test RFC 6052
// §3.1 asks for before the Well-Known Prefix may carry an address.
func IsGlobalIPv4(v4 [4]byte) bool {
	for _, e := range globalExceptions {
		if v4 == e {
			return true
		}
	}
	u := uint32(v4[0])<<24 | uint32(v4[1])<<16 | uint32(v4[2])<<8 | uint32(v4[3])
	for _, r := range nonGlobalIPv4 {
		n := uint32(r.addr[0])<<24 | uint32(r.addr[1])<<16 | uint32(r.addr[2])<<8 | uint32(r.addr[3])
		mask := ^uint32(0) << (32 - r.bits)
		if u&mask == n {
			return false
		}
	}
	return true
}
