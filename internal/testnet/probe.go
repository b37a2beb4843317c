package testnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
)

// Probes: real packets between test namespaces, to prove what policy
// allows. Sockets are created inside a namespace (ns.Do) and keep it for
// their lifetime, so accepting and reading can happen on any goroutine.

// Server is a TCP or UDP echo server in a namespace. Every connection (or
// datagram) is answered with the server's name, so a probe can tell which
// server it reached (e.g. through a port mapping), and the peer address
// of each is recorded (e.g. to see masquerading).
type Server struct {
	name  string
	mu    sync.Mutex
	peers []netip.AddrPort
}

// Serve starts an echo server on addr ("10.65.0.4:80", or ":80" for every
// address) with network "tcp" or "udp" inside netns, until the test ends.
func Serve(t testing.TB, netns ns.NetNS, network, addr, name string) *Server {
	t.Helper()
	s := &Server{name: name}
	var closer io.Closer
	err := netns.Do(func(ns.NetNS) error {
		switch network {
		case "tcp":
			l, err := net.Listen("tcp", addr)
			if err != nil {
				return err
			}
			closer = l
			go s.acceptTCP(l)
		case "udp":
			c, err := net.ListenPacket("udp", addr)
			if err != nil {
				return err
			}
			closer = c
			go s.serveUDP(c)
		default:
			return fmt.Errorf("network %q: expected tcp or udp", network)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("serving %s %s in %s: %v", network, addr, netns.Path(), err)
	}
	t.Cleanup(func() { _ = closer.Close() })
	return s
}

func (s *Server) record(a net.Addr) {
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		s.mu.Lock()
		s.peers = append(s.peers, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
		s.mu.Unlock()
	}
}

func (s *Server) acceptTCP(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		s.record(c.RemoteAddr())
		go func() {
			defer c.Close()
			_, _ = io.WriteString(c, s.name+"\n")
			// Echo until the client closes, so that a test can hold a
			// connection open across a policy change.
			_, _ = io.Copy(c, c)
		}()
	}
}

func (s *Server) serveUDP(c net.PacketConn) {
	buf := make([]byte, 2048)
	for {
		_, from, err := c.ReadFrom(buf)
		if err != nil {
			return
		}
		s.record(from)
		_, _ = c.WriteTo([]byte(s.name+"\n"), from)
	}
}

// Peers returns the addresses that reached the server, in order.
func (s *Server) Peers() []netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]netip.AddrPort(nil), s.peers...)
}

// probeTimeout bounds one probe: a dropped packet is the expected outcome
// of a denied probe, so it must not take long to conclude.
const probeTimeout = 1500 * time.Millisecond

// Connect opens a TCP connection from netns to addr and reads the
// server's greeting. It returns the greeting ("" and an error when the
// connection was refused, dropped or timed out).
func Connect(netns ns.NetNS, addr string) (string, error) {
	var c net.Conn
	err := netns.Do(func(ns.NetNS) error {
		var err error
		c, err = net.DialTimeout("tcp", addr, probeTimeout)
		return err
	})
	if err != nil {
		return "", err
	}
	defer c.Close()
	return readLine(c)
}

// Conn is an open TCP connection from a namespace, for tests that hold a
// flow across a change.
type Conn struct{ c net.Conn }

// Dial opens a TCP connection from netns to addr and reads the greeting.
func Dial(netns ns.NetNS, addr string) (*Conn, error) {
	var c net.Conn
	err := netns.Do(func(ns.NetNS) error {
		var err error
		c, err = net.DialTimeout("tcp", addr, probeTimeout)
		return err
	})
	if err != nil {
		return nil, err
	}
	if _, err := readLine(c); err != nil {
		_ = c.Close()
		return nil, err
	}
	return &Conn{c: c}, nil
}

// Echo sends msg and reads it back: the flow still works.
func (c *Conn) Echo(msg string) error {
	if _, err := io.WriteString(c.c, msg+"\n"); err != nil {
		return err
	}
	got, err := readLine(c.c)
	if err != nil {
		return err
	}
	if got != msg {
		return fmt.Errorf("echo %q came back as %q", msg, got)
	}
	return nil
}

// Close closes the connection.
func (c *Conn) Close() error { return c.c.Close() }

// UDP sends one datagram from netns to addr and waits for the reply.
func UDP(netns ns.NetNS, addr string) (string, error) {
	var c net.Conn
	err := netns.Do(func(ns.NetNS) error {
		var err error
		c, err = net.Dial("udp", addr)
		return err
	})
	if err != nil {
		return "", err
	}
	defer c.Close()
	if _, err := c.Write([]byte("probe\n")); err != nil {
		return "", err
	}
	return readLine(c)
}

func readLine(c net.Conn) (string, error) {
	_ = c.SetReadDeadline(time.Now().Add(probeTimeout))
	var b [256]byte
	n := 0
	for n < len(b) {
		m, err := c.Read(b[n:])
		n += m
		if i := bytes.IndexByte(b[:n], '\n'); i >= 0 {
			return string(b[:i]), nil
		}
		if err != nil {
			return "", err
		}
	}
	return "", errors.New("reply too long")
}

// Ping sends one ICMP echo request from netns to ip (ping -c1) and
// reports whether a reply came back; extra arguments go to ping (e.g.
// "-s", "1400").
func Ping(ctx context.Context, netns ns.NetNS, ip string, extra ...string) (bool, error) {
	args := append([]string{"-c", "1", "-W", strconv.Itoa(int(probeTimeout/time.Second) + 1), "-n", "-q"}, extra...)
	cmd := exec.CommandContext(ctx, "ping", append(args, ip)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := netns.Do(func(ns.NetNS) error { return cmd.Start() })
	if err != nil {
		return false, fmt.Errorf("starting ping: %w", err)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &ee) && ee.ExitCode() == 1:
		return false, nil // no reply
	}
	return false, fmt.Errorf("ping %s: %w: %s", ip, err, out.String())
}
