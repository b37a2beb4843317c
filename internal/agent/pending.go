package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Concurrent ADDs of one attachment. An ADD is two local API calls with
// the plugin's kernel work alongside: ADD (allocate, write the endpoint;
// the plugin creates the veth meanwhile), READY. The runtime should never run two ADDs of the
// same container interface at once; when it does, the second ADD used to
// find the first one's endpoint without its veth, take it for an ADD
// retried after a crash, and both plugins then built the same veth: one
// failed and its undo (a DEL) tore down the other's attachment.
//
// So an answered ADD stays pending until its READY or a DEL, and another
// ADD of the attachment meanwhile is answered "try again later" (CNI code
// 11), touching nothing. A pending ADD whose plugin process has died (the
// peer pid of its request, from SO_PEERCRED) or that is older than
// pendingAddMaxAge no longer counts: an ADD retried after a crash goes
// through.

// pendingAddMaxAge bounds how long an answered ADD without READY blocks
// other ADDs of its attachment when its plugin's liveness is unknown.
const pendingAddMaxAge = time.Minute

// errAttachmentBusy says that another ADD of the attachment is in flight.
var errAttachmentBusy = errors.New("try again later")

// pendingAdds are the answered ADDs awaiting READY, by handle.
type pendingAdds struct {
	alive func(pid int) bool // whether a process lives

	mu sync.Mutex // guards m
	m  map[string]pendingAdd
}

type pendingAdd struct {
	pid   int // the plugin's pid; 0: unknown
	since time.Time
	// wrote is the view sequence number as of the endpoint's write, for
	// an ADD that created it; 0 for one that found it.
	wrote uint64
}

func newPendingAdds(alive func(pid int) bool) *pendingAdds {
	return &pendingAdds{alive: alive, m: map[string]pendingAdd{}}
}

// busy reports whether an answered ADD of handle still awaits its READY at
// now, from a plugin that may still send it.
func (p *pendingAdds) busy(handle string, now time.Time) bool {
	p.mu.Lock()
	a, ok := p.m[handle]
	p.mu.Unlock()
	if !ok {
		return false
	}
	if now.Sub(a.since) >= pendingAddMaxAge || a.pid != 0 && !p.alive(a.pid) {
		p.done(handle)
		return false
	}
	return true
}

// added records an answered ADD from the plugin process pid (0: unknown)
// that wrote its endpoint as of view sequence wrote (0: it found one).
func (p *pendingAdds) added(handle string, pid int, now time.Time, wrote uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.m[handle] = pendingAdd{pid: pid, since: now, wrote: wrote}
}

// wrote returns the view sequence number as of the endpoint write of the
// pending ADD of handle; 0 when there is none or it wrote nothing.
func (p *pendingAdds) wrote(handle string) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.m[handle].wrote
}

// done forgets the ADD of handle: its READY or a DEL came.
func (p *pendingAdds) done(handle string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.m, handle)
}

// busyError is the answer to an ADD while another of the same attachment
// is in flight.
func busyError(containerID, ifName string) error {
	return fmt.Errorf("another ADD for container %s ifname %s is in progress: %w", containerID, ifName, errAttachmentBusy)
}

func processAlive(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}

// peerPIDKey keys the peer pid of a local API connection in its context.
type peerPIDKey struct{}

// withPeerPID is an http.Server's ConnContext: it records the pid of the
// process at the other end of a unix socket connection.
func withPeerPID(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return ctx
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return ctx
	}
	var cred *unix.Ucred
	_ = raw.Control(func(fd uintptr) { cred, _ = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) })
	if cred == nil || cred.Pid <= 0 {
		return ctx
	}
	return context.WithValue(ctx, peerPIDKey{}, int(cred.Pid))
}

// peerPID returns the pid withPeerPID recorded in ctx, 0 if none.
func peerPID(ctx context.Context) int {
	pid, _ := ctx.Value(peerPIDKey{}).(int)
	return pid
}
