package localapi

// CNI error codes calyx-node answers with (in Error.Code) and the plugins
// pass on to the runtime. Codes below 100 are the CNI spec's; 100 and up
// are Calyx's own, in the range the spec leaves to plugins. cmd/calyx's
// and cmd/calyx-ipam's READMEs document each one for operators.
const (
	// CodeInvalidEnvironment is the spec's 4, invalid environment
	// variables: CNI_ARGS asked for something Calyx cannot give (e.g.
	// more than one address per family with IP=).
	CodeInvalidEnvironment uint = 4
	// CodeInvalidNetworkConfig is the spec's 7: the network config names
	// a pool that does not exist, is disabled or does not fit, or it
	// makes a request larger than calyx-node accepts.
	CodeInvalidNetworkConfig uint = 7
	// CodeTryAgainLater is the spec's 11: a transient condition.
	CodeTryAgainLater uint = 11

	// CodeAddressInUse: an address asked for (CNI_ARGS IP=) is assigned
	// to another attachment.
	CodeAddressInUse uint = 100
	// CodeAddressNotInPool: an address asked for is outside every pool.
	CodeAddressNotInPool uint = 101
	// CodeNoFreeAddress: no pool the request may use has a free address
	// for this node, or no pool selects the node at all.
	CodeNoFreeAddress uint = 102
	// CodeAttachmentExists: the container already has this interface
	// (a second ADD without a DEL in between).
	CodeAttachmentExists uint = 103
	// CodeCheckFailed: CHECK found the attachment broken (the message
	// lists every problem). The plugins return it themselves.
	CodeCheckFailed uint = 104
)

// MaxRequestBytes bounds a local API request body.
const MaxRequestBytes = 1 << 20
