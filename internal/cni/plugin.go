package cni

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/calyx-net/calyx/internal/localapi"
)

// vethDefaultMTU is the MTU the kernel gives a veth created without one.
const vethDefaultMTU = 1500

// DefaultTimeout bounds one plugin call. An ADD waits for calyx-node to
// allocate and to program the host side; Mesos sets no timeout of its own,
// so without one a wedged calyx-node would hang the task launch forever.
const DefaultTimeout = 60 * time.Second

// undoTimeout bounds the clean-up of a failed ADD, which runs even when the
// ADD ran out of time.
const undoTimeout = 15 * time.Second

// kernel is the work the calyx plugin does in the kernel. The real one is
// netlinkKernel; tests use a fake.
type kernel interface {
	// LinkExists reports whether ifName exists in the namespace at netns.
	LinkExists(ctx context.Context, netns, ifName string) (bool, error)
	// Create creates the veth pair (the container end with s.MAC and
	// s.MTU, no addresses), before calyx-node has answered the ADD.
	Create(ctx context.Context, s vethSpec) error
	// HostUp finishes the host end of a pair Create made, as calyx-node's
	// answer says: its name (from s.TempHostIfName), MTU, and up. On
	// error it has removed the pair.
	HostUp(ctx context.Context, s vethSpec) error
	// ConfigureContainer then sets up the container side: MTU and MAC if
	// they differ, addresses, neighbours and routes. It returns the
	// container interface's MAC. On error it has removed the pair.
	ConfigureContainer(ctx context.Context, s vethSpec) (string, error)
	// Detach deletes hostIfName in this namespace and ifName in the
	// namespace at netns, each only when named; missing is not an error.
	Detach(ctx context.Context, netns, ifName, hostIfName string) error
	// Check lists what is wrong with the container side.
	Check(ctx context.Context, s vethSpec) ([]string, error)
}

// vethSpec is one attachment's veth pair and container side.
type vethSpec struct {
	Netns      string
	IfName     string
	HostIfName string
	MTU        int
	IPs        []netip.Prefix
	Gateway4   netip.Addr
	Gateway6   netip.Addr
	// MAC is the container end's MAC, as calyx-node chose it; nil lets
	// the kernel pick one.
	MAC net.HardwareAddr
	// TempHostIfName, for Configure, is the name Create gave the host end,
	// which Configure renames to HostIfName.
	TempHostIfName string
}

// Plugin runs the calyx CNI plugin's commands.
type Plugin struct {
	stdout, stderr io.Writer
	kernel         kernel
	timeout        time.Duration
}

// NewPlugin returns the calyx plugin, printing results to stdout and logs
// to stderr.
func NewPlugin(stdout, stderr io.Writer) *Plugin {
	return newPlugin(stdout, stderr, netlinkKernel{})
}

func newPlugin(stdout, stderr io.Writer, k kernel) *Plugin {
	return &Plugin{stdout: stdout, stderr: stderr, kernel: k, timeout: DefaultTimeout}
}

// Funcs returns the commands for skel.PluginMainFuncs.
func (p *Plugin) Funcs() skel.CNIFuncs {
	return skel.CNIFuncs{
		Add:    withTimeout(p.timeout, p.Add),
		Del:    withTimeout(p.timeout, p.Del),
		Check:  withTimeout(p.timeout, p.Check),
		Status: withTimeout(p.timeout, p.Status),
		GC:     withTimeout(p.timeout, p.GC),
	}
}

func withTimeout(d time.Duration, f func(context.Context, *skel.CmdArgs) error) func(*skel.CmdArgs) error {
	return func(args *skel.CmdArgs) error {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		return f(ctx, args)
	}
}

// setup parses the config and returns it with a logger at its log level.
// Warnings the config raised are logged; the caller decides whether the
// config's problems are fatal.
func setup(stdin []byte, cniArgs string, stderr io.Writer, command string, args *skel.CmdArgs) (*Config, *slog.Logger, error) {
	conf, err := ParseConfig(stdin, cniArgs)
	if err != nil {
		return nil, nil, err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: conf.LogLevel})).
		With("cmd", command, "network", conf.Name, "containerID", args.ContainerID, "ifName", args.IfName)
	for _, w := range conf.Warnings {
		log.Warn(w)
	}
	return conf, log, nil
}

// Add attaches the container: see the package comment for the steps.
func (p *Plugin) Add(ctx context.Context, args *skel.CmdArgs) error {
	if err := refuseOwnNetns(args, "ADD"); err != nil {
		return err
	}
	start := time.Now()
	steps := &timings{last: start}
	conf, log, err := setup(args.StdinData, args.Args, p.stderr, "ADD", args)
	if err != nil {
		return err
	}
	if err := conf.Err(); err != nil {
		return err
	}
	if conf.IPAMType != "" && conf.IPAMType != IPAMType {
		return types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf(
			"config key \"ipam.type\": calyx takes its addresses from calyx-node and needs %q, got %q", IPAMType, conf.IPAMType), "")
	}
	client := localapi.NewClient(conf.AgentSocket)
	defer client.CloseIdle()
	att := localapi.Attachment{Network: conf.Name, ContainerID: args.ContainerID, IfName: args.IfName}
	// The veth is created, host end up under its final name, while
	// calyx-node allocates: the container's MAC and the host end's name
	// derive from the attachment (localapi.ContainerMAC, HostIfName), and
	// calyx-node programs the host side as soon as it sees both the
	// endpoint and the host end.
	spec := vethSpec{Netns: args.Netns, IfName: args.IfName, HostIfName: localapi.HostIfName(att.Handle()),
		MTU: conf.MTU, MAC: localapi.ContainerMAC(att.Handle())}
	created := make(chan error, 1)
	go func() { created <- p.kernel.Create(ctx, spec) }()
	var resp localapi.AddResponse
	err = client.Do(ctx, localapi.PathCNIAdd, localapi.AddRequest{
		Attachment: att, IPAM: conf.IPAM, Netns: args.Netns,
		Orchestrator: conf.Orchestrator, Labels: conf.Labels, MTU: conf.MTU,
		PortMappings: conf.PortMappings, PluginCreatesVeth: true,
	}, &resp)
	createErr := <-created
	if err != nil {
		if createErr == nil {
			p.deleteVeth(ctx, spec.HostIfName, log)
		}
		return agentError("adding the endpoint", err)
	}
	steps.mark("agent_add")
	log.Debug("calyx-node allocated", "endpoint", resp.Endpoint, "hostIfName", resp.HostIfName, "ips", resp.IPs, "existing", resp.Existing)
	if createErr != nil {
		if err := p.createFailed(ctx, client, att, spec, resp, createErr, log); err != nil {
			return err
		}
	}

	a, err := p.finishAdd(ctx, client, att, args, conf, resp, spec, steps)
	if err != nil {
		p.deleteVeth(ctx, spec.HostIfName, log) // not renamed yet, if it failed before
		p.undoAdd(ctx, client, att, resp.HostIfName, log)
		return err
	}
	if err := printResult(p.stdout, a.result(conf.CNIVersion), conf.CNIVersion); err != nil {
		// The runtime never sees a result, so it keeps nothing to DEL.
		p.undoAdd(ctx, client, att, resp.HostIfName, log)
		return err
	}
	log.Info("attached", "endpoint", resp.Endpoint, "hostIfName", resp.HostIfName, "ips", resp.IPs,
		"took", time.Since(start).Round(10*time.Microsecond), "steps", steps)
	return nil
}

// createFailed handles a veth create that failed while calyx-node
// answered the ADD: a name in use is told apart as a duplicate ADD
// (refused; what calyx-node holds is the other ADD's and stays), another
// plugin's interface (refused, the allocation undone) or a host end left
// by an earlier ADD of this attachment that crashed half-way (replaced).
// It returns nil once the veth exists.
func (p *Plugin) createFailed(ctx context.Context, client *localapi.Client, att localapi.Attachment,
	spec vethSpec, resp localapi.AddResponse, createErr error, log *slog.Logger,
) error {
	undo := func(e *types.Error) error {
		if !resp.Existing {
			p.undoAdd(ctx, client, att, "", log)
		}
		return e
	}
	var nserr *netnsError
	if errors.As(createErr, &nserr) {
		return undo(types.NewError(types.ErrInvalidNetNS, fmt.Sprintf("opening CNI_NETNS %s: %v", nserr.path, nserr.err), ""))
	}
	if !errors.Is(createErr, fs.ErrExist) {
		return undo(types.NewError(types.ErrInternal, fmt.Sprintf("creating the veth %s/%s: %v", spec.HostIfName, spec.IfName, createErr), ""))
	}
	inNetns, err := p.kernel.LinkExists(ctx, spec.Netns, spec.IfName)
	if err != nil {
		return undo(types.NewError(types.ErrInvalidNetNS, fmt.Sprintf("opening CNI_NETNS %s: %v", spec.Netns, err), ""))
	}
	if inNetns || resp.Existing {
		return undo(types.NewError(localapi.CodeAttachmentExists, fmt.Sprintf(
			"interface %s already exists in %s (or its host end %s does): run DEL for container %s first",
			spec.IfName, spec.Netns, spec.HostIfName, att.ContainerID), ""))
	}
	// The endpoint is new, so no live attachment owns this host end.
	log.Info("replacing a host end left by an earlier ADD", "hostIfName", spec.HostIfName)
	if err := p.kernel.Detach(ctx, "", "", spec.HostIfName); err != nil {
		return undo(types.NewError(types.ErrInternal, fmt.Sprintf("deleting the stale %s: %v", spec.HostIfName, err), ""))
	}
	if err := p.kernel.Create(ctx, spec); err != nil {
		return undo(types.NewError(types.ErrInternal, fmt.Sprintf("creating the veth %s/%s: %v", spec.HostIfName, spec.IfName, err), ""))
	}
	return nil
}

// netnsError is a container namespace that could not be opened.
type netnsError struct {
	path string
	err  error
}

func (e *netnsError) Error() string { return fmt.Sprintf("opening %s: %v", e.path, e.err) }
func (e *netnsError) Unwrap() error { return e.err }

// finishAdd sets up the container side of the veth Create made (spec) and
// waits for calyx-node to program the host side.
func (p *Plugin) finishAdd(ctx context.Context, client *localapi.Client, att localapi.Attachment,
	args *skel.CmdArgs, conf *Config, resp localapi.AddResponse, created vethSpec, steps *timings,
) (*attachment, error) {
	a, err := attachmentFromResponse(resp, args, conf)
	if err != nil {
		return nil, types.NewError(types.ErrInternal, err.Error(), "")
	}
	spec := vethSpec{Netns: a.Netns, IfName: a.IfName, HostIfName: a.HostIfName, MTU: a.MTU,
		IPs: a.IPs, Gateway4: a.Gateway4, Gateway6: a.Gateway6, MAC: a.ChosenMAC, TempHostIfName: created.HostIfName}
	// The host end has its name and MTU unless calyx-node answered
	// otherwise (an endpoint named by an older calyx-node; calyx-node's
	// MTU when the config sets none and it is not the kernel's 1500).
	if a.HostIfName != created.HostIfName || a.MTU != cmp.Or(created.MTU, vethDefaultMTU) {
		if err := p.kernel.HostUp(ctx, spec); err != nil {
			return nil, types.NewError(types.ErrInternal, fmt.Sprintf("creating the veth %s/%s: %v", a.HostIfName, a.IfName, err), "")
		}
	}
	steps.mark("host")
	// calyx-node programs the host side while the container side is set
	// up here: they need nothing of each other, and the ADD answers only
	// once both are done. The container's MAC is the one calyx-node
	// chose (the container end was created with it); an older calyx-node
	// that names none learns it after.
	ready := make(chan error, 1)
	readyMAC := ""
	if a.ChosenMAC != nil {
		readyMAC = a.ChosenMAC.String()
		go func() {
			ready <- client.Do(ctx, localapi.PathCNIReady, localapi.ReadyRequest{Attachment: att, HostIfName: a.HostIfName, ContainerMAC: readyMAC}, nil)
		}()
	}
	a.ContainerMAC, err = p.kernel.ConfigureContainer(ctx, spec)
	if a.ChosenMAC != nil {
		rerr := <-ready
		if err == nil && rerr != nil {
			return nil, agentError("programming the host side", rerr)
		}
	}
	if err != nil {
		return nil, types.NewError(types.ErrInternal, fmt.Sprintf("creating the veth %s/%s: %v", a.HostIfName, a.IfName, err), "")
	}
	steps.mark("container")
	if a.ContainerMAC != readyMAC {
		err = client.Do(ctx, localapi.PathCNIReady, localapi.ReadyRequest{
			Attachment: att, HostIfName: a.HostIfName, ContainerMAC: a.ContainerMAC,
		}, nil)
		if err != nil {
			return nil, agentError("programming the host side", err)
		}
	}
	steps.mark("agent_ready")
	return a, nil
}

// timings records how long each step of a call took, for the log.
type timings struct {
	last  time.Time
	parts []string
}

func (t *timings) mark(step string) {
	now := time.Now()
	t.parts = append(t.parts, step+"="+now.Sub(t.last).Round(10*time.Microsecond).String())
	t.last = now
}

func (t *timings) String() string { return strings.Join(t.parts, " ") }

// attachmentFromResponse checks calyx-node's answer and fills defaults.
func attachmentFromResponse(resp localapi.AddResponse, args *skel.CmdArgs, conf *Config) (*attachment, error) {
	if resp.HostIfName == "" || len(resp.HostIfName) > 15 {
		return nil, fmt.Errorf("calyx-node answered host interface name %q: expected 1 to 15 characters", resp.HostIfName)
	}
	ips, err := parsePrefixes(resp.IPs)
	if err != nil {
		return nil, err
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("calyx-node answered no addresses for %s", args.IfName)
	}
	a := &attachment{
		HostIfName: resp.HostIfName, IfName: args.IfName, Netns: args.Netns,
		MTU: resp.MTU, IPs: ips, DNS: conf.DNS,
		Gateway4: netip.MustParseAddr(DefaultGateway4),
		// The EUI-64 link-local address of the host veth, whose MAC is
		// HostVethMAC, in case calyx-node names none.
		Gateway6: netip.MustParseAddr("fe80::ecee:eeff:feee:eeee"),
	}
	if a.MTU == 0 {
		a.MTU = conf.MTU
	}
	if resp.ContainerMAC != "" {
		mac, err := net.ParseMAC(resp.ContainerMAC)
		if err != nil || len(mac) != 6 || mac[0]&1 != 0 {
			return nil, fmt.Errorf("calyx-node answered container MAC %q: not a unicast Ethernet address", resp.ContainerMAC)
		}
		a.ChosenMAC = mac
	}
	for _, g := range []struct {
		s   string
		dst *netip.Addr
		v4  bool
	}{{resp.Gateway4, &a.Gateway4, true}, {resp.Gateway6, &a.Gateway6, false}} {
		if g.s == "" {
			continue
		}
		addr, err := netip.ParseAddr(g.s)
		if err != nil || addr.Is4() != g.v4 {
			return nil, fmt.Errorf("calyx-node answered gateway %q: not an IPv%s address", g.s, map[bool]string{true: "4", false: "6"}[g.v4])
		}
		*g.dst = addr
	}
	return a, nil
}

// deleteVeth deletes a veth pair this ADD created, on a fresh deadline.
func (p *Plugin) deleteVeth(ctx context.Context, hostIfName string, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), undoTimeout)
	defer cancel()
	if err := p.kernel.Detach(ctx, "", "", hostIfName); err != nil {
		log.Error("undoing a failed ADD: deleting the veth", "hostIfName", hostIfName, "err", err)
	}
}

// undoAdd removes what a failed ADD did. It runs on a fresh deadline
// because the ADD may have failed by running out of time.
func (p *Plugin) undoAdd(ctx context.Context, client *localapi.Client, att localapi.Attachment, hostIfName string, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), undoTimeout)
	defer cancel()
	if hostIfName != "" && len(hostIfName) <= 15 {
		// Deleting the host end deletes the container end with it.
		if err := p.kernel.Detach(ctx, "", "", hostIfName); err != nil {
			log.Error("undoing a failed ADD: deleting the veth", "hostIfName", hostIfName, "err", err)
		}
	}
	if err := client.Do(ctx, localapi.PathCNIDel, localapi.DelRequest{Attachment: att}, nil); err != nil {
		log.Error("undoing a failed ADD: releasing the endpoint (calyx-node's garbage collection will)", "err", err)
	}
}

// Del detaches the container. It succeeds when there is nothing to delete,
// and needs neither CNI_NETNS nor prevResult.
//
// A CNI_NETNS that is the plugin's own namespace (which ADD refuses) is
// never touched: DEL then only asks calyx-node to release what it holds
// for the attachment, which is normally nothing. Anything there came from
// an ADD of the same container ID and interface name (or from a calyx
// that predates the check and configured the host itself), and releasing
// it removes its host veth, its endpoint and its addresses.
func (p *Plugin) Del(ctx context.Context, args *skel.CmdArgs) error {
	own, err := checkNetns(args, "DEL")
	if err != nil {
		return err
	}
	start := time.Now()
	steps := &timings{last: start}
	conf, log, err := setup(args.StdinData, args.Args, p.stderr, "DEL", args)
	if err != nil {
		return err
	}
	for _, e := range conf.Problems() {
		log.Warn("ignoring a bad config value for DEL", "err", e)
	}
	client := localapi.NewClient(conf.AgentSocket)
	att := localapi.Attachment{Network: conf.Name, ContainerID: args.ContainerID, IfName: args.IfName}
	netns := args.Netns
	if own {
		log.Warn("CNI_NETNS is the plugin's own namespace: leaving its interfaces alone, releasing only what calyx-node holds for the attachment", "netns", args.Netns)
		netns = ""
	}
	// calyx-node removes the endpoint's routes, releases it and answers,
	// then deletes the veth: the kernel's link deletion is the slow part
	// of a DEL, and nothing needs to wait for it.
	agentErr := client.Do(ctx, localapi.PathCNIDel, localapi.DelRequest{Attachment: att, DeferVethDelete: true}, nil)
	steps.mark("agent_del")
	if agentErr != nil {
		// calyx-node did not take the veth: the container side goes here.
		if err := p.kernel.Detach(ctx, netns, args.IfName, ""); err != nil {
			log.Error("deleting the container's interface", "err", err)
		}
		return agentError("deleting the endpoint", agentErr)
	}
	log.Info("detached", "took", time.Since(start).Round(10*time.Microsecond), "steps", steps)
	return nil
}

// Status reports whether calyx-node can serve ADDs: CNI code 50 if not.
func (p *Plugin) Status(ctx context.Context, args *skel.CmdArgs) error {
	conf, _, err := setup(args.StdinData, args.Args, p.stderr, "STATUS", args)
	if err != nil {
		return err
	}
	return agentStatus(ctx, conf.AgentSocket)
}

func agentStatus(ctx context.Context, socket string) error {
	var resp localapi.StatusResponse
	if err := localapi.NewClient(socket).Do(ctx, localapi.PathStatus, struct{}{}, &resp); err != nil {
		return types.NewError(types.ErrPluginNotAvailable, err.Error(), "")
	}
	if !resp.Ready {
		msg := resp.Message
		if msg == "" {
			msg = "starting"
		}
		return types.NewError(types.ErrPluginNotAvailable, fmt.Sprintf("calyx-node on node %q is not ready: %s", resp.Node, msg), "")
	}
	return nil
}

// GC releases every attachment of the network on this host that the
// runtime did not list as valid.
func (p *Plugin) GC(ctx context.Context, args *skel.CmdArgs) error {
	conf, log, err := setup(args.StdinData, args.Args, p.stderr, "GC", args)
	if err != nil {
		return err
	}
	return agentGC(ctx, conf, log)
}

func agentGC(ctx context.Context, conf *Config, log *slog.Logger) error {
	if len(conf.Valid) == 0 {
		log.Warn("no valid attachments listed: releasing every attachment of the network on this host")
	}
	valid := append([]localapi.Attachment{}, conf.Valid...)
	var resp localapi.GCResponse
	if err := localapi.NewClient(conf.AgentSocket).Do(ctx, localapi.PathCNIGC,
		localapi.GCRequest{Network: conf.Name, Valid: valid}, &resp); err != nil {
		return agentError("collecting garbage", err)
	}
	for _, r := range resp.Released {
		log.Info("released", "containerID", r.ContainerID, "ifName", r.IfName)
	}
	return nil
}

// agentError turns a local API failure into a CNI error: 11 (try again
// later) when calyx-node could not be reached or did not answer in time
// (it bounds its own datastore work, so this is an outage it could not
// report), calyx-node's own code when it gave one, else 999.
func agentError(doing string, err error) error {
	if localapi.IsUnreachable(err) {
		return types.NewError(types.ErrTryAgainLater, err.Error(), "")
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return types.NewError(types.ErrTryAgainLater, fmt.Sprintf("%s: calyx-node did not answer in time (is its datastore down?): %v", doing, err), "")
	}
	code := types.ErrInternal
	var apiErr *localapi.APIError
	if errors.As(err, &apiErr) && apiErr.Body.Code != 0 {
		code = apiErr.Body.Code
	}
	return types.NewError(code, fmt.Sprintf("%s: %v", doing, err), "")
}

// problemsError is the CNI error of a failed CHECK.
func problemsError(what string, problems []string) error {
	return types.NewError(localapi.CodeCheckFailed, fmt.Sprintf("CHECK of %s: %s", what, strings.Join(problems, "; ")), "")
}
