// Package vxlan programs a host's VXLAN overlay, as Felix does for IP
// pools with vxlanMode Always or CrossSubnet: one VXLAN device per address
// family, its tunnel address, and for every other host with a VTEP a
// permanent neighbour entry and a permanent forwarding-database entry.
//
// Why it looks like this.
//
// Ownership. The package owns exactly two interfaces, by name: DeviceV4
// (vxlan.calyx) and DeviceV6 (vxlan-v6.calyx). It looks them up by name and
// never lists, modifies or deletes any other link, address or entry on the
// host: everything it reads or writes hangs off one of those devices, so
// whatever is on them is its own (an operator's static entry on
// vxlan.calyx is drift and is removed), and nothing else is. A link that
// carries one of the names but is not a VXLAN device, or whose VNI, UDP
// port, local address or parent differ from what is desired, is deleted
// and created again: the kernel cannot change those in place. MTU and MAC
// are changed in place. Routes to remote blocks through the device
// (`dst via <peer tunnel address> dev vxlan.calyx onlink`) belong to
// another reconciler; the routes the kernel derives from the tunnel
// address are the kernel's.
//
// Neighbour + FDB, learning off. Each device is created with learning off
// and no remote or multicast group, so it never floods and never learns a
// MAC from a packet it receives. The control plane tells it everything,
// as Calico does: for each peer a permanent neighbour entry (peer tunnel
// address -> peer VTEP MAC), so the kernel never sends an ARP or NDP
// request into the overlay, and a permanent FDB entry (peer VTEP MAC ->
// peer underlay address), so the kernel knows where to send the
// encapsulated frame. A spoofed packet from the underlay cannot teach the
// device a new location, and a peer that is gone is forgotten the moment
// its entries are removed.
//
// Deterministic MAC. MACFor derives a host's VTEP MAC from a hash of its
// node name (locally administered, unicast). A restarted or re-created
// device gets the same MAC, so the peers' entries stay right and nothing
// has to be written to the datastore when a host starts.
//
// MTU. The encapsulation costs 50 bytes over IPv4 (outer IPv4 20, UDP 8,
// VXLAN 8, inner Ethernet 14) and 70 over IPv6 (outer header 40); MTU
// gives the device MTU for an underlay MTU.
//
// Contract. Resync reads the devices, their addresses, neighbour and FDB
// entries into a cache and writes nothing; Apply(desired) makes the kernel
// hold desired and writes only what differs from the cache, so a second
// identical Apply writes nothing, and a periodic Resync followed by Apply
// repairs drift. An error for one peer does not stop the others, and a
// failed kernel write makes the next Apply read the device again before
// writing, so a device deleted behind its back is re-created. The
// kernel is reached through Kernel, with two implementations: Netlink (in
// a given network namespace) and Fake, which renders its state as
// `ip`/`bridge`-style golden text and counts writes.
package vxlan
