package localapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Client calls calyx-node's local API over its unix socket.
//
// It speaks just enough HTTP/1.1 itself (a POST with a JSON body; an
// answer with Content-Length or chunked) rather than use net/http, whose
// client drags TLS and X.509 into every binary that links it: the CNI
// plugins start once per container, and their start-up is part of every
// ADD. It keeps one connection open between calls, so an ADD's two calls
// share it.
type Client struct {
	socket string

	mu   sync.Mutex // guards idle
	idle *conn      // a connection the last answer left open
}

// conn is one connection to calyx-node.
type conn struct {
	c net.Conn
	r *bufio.Reader
}

// NewClient returns a client for the socket at path ("" = DefaultSocket).
func NewClient(path string) *Client {
	if path == "" {
		path = DefaultSocket
	}
	return &Client{socket: path}
}

// Socket returns the socket path the client dials.
func (c *Client) Socket() string { return c.socket }

// UnreachableError says calyx-node could not be reached at all, as opposed
// to calyx-node answering with an error.
type UnreachableError struct {
	Socket string
	Err    error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach calyx-node at %s: %v (is calyx-node running on this host? start it with `systemctl start calyx-node` or `calyx-node --name $(hostname)`, and check agent_socket in the CNI config)", e.Socket, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// IsUnreachable reports whether err is an *UnreachableError.
func IsUnreachable(err error) bool {
	var u *UnreachableError
	return errors.As(err, &u)
}

// APIError is an error answered by calyx-node.
type APIError struct {
	Status int
	Body   Error
}

func (e *APIError) Error() string { return "calyx-node: " + e.Body.Message }

// statusRequestTooLarge is HTTP's 413.
const statusRequestTooLarge = 413

// Do posts req to path and decodes the answer into resp (which may be nil).
func (c *Client) Do(ctx context.Context, path string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encoding request for %s: %w", path, err)
	}
	if len(body) > MaxRequestBytes {
		// calyx-node would refuse it; say so without sending it.
		return &APIError{Status: statusRequestTooLarge, Body: Error{Code: CodeInvalidNetworkConfig, Message: fmt.Sprintf(
			"the %s request is %d bytes, more than calyx-node accepts (%d): the network config makes it so (Mesos labels, pool lists or the GC's list of valid attachments); shorten it",
			path, len(body), MaxRequestBytes)}}
	}
	status, answer, err := c.roundTrip(ctx, path, body)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("calling calyx-node %s: %w", path, ctx.Err())
		}
		return &UnreachableError{Socket: c.socket, Err: err}
	}
	if status != 200 {
		var e Error
		if err := json.Unmarshal(answer, &e); err != nil || e.Message == "" {
			e.Message = fmt.Sprintf("%s answered HTTP %d", path, status)
		}
		return &APIError{Status: status, Body: e}
	}
	if resp == nil {
		return nil
	}
	if err := json.Unmarshal(answer, resp); err != nil {
		return fmt.Errorf("decoding calyx-node's answer to %s: %w", path, err)
	}
	return nil
}

// roundTrip sends one request and reads its answer, on the idle
// connection when there is one (and on a new one should that turn out
// closed before anything was read), else on a new connection.
func (c *Client) roundTrip(ctx context.Context, path string, body []byte) (int, []byte, error) {
	c.mu.Lock()
	cn := c.idle
	c.idle = nil
	c.mu.Unlock()
	if cn != nil {
		status, answer, keep, fresh, err := cn.exchange(ctx, path, body)
		if err == nil {
			c.release(cn, keep)
			return status, answer, nil
		}
		_ = cn.c.Close()
		if !fresh || ctx.Err() != nil {
			return 0, nil, err
		}
		// The server closed the idle connection: try a new one.
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", c.socket)
	if err != nil {
		return 0, nil, err
	}
	cn = &conn{c: nc, r: bufio.NewReader(nc)}
	status, answer, keep, _, err := cn.exchange(ctx, path, body)
	if err != nil {
		_ = nc.Close()
		return 0, nil, err
	}
	c.release(cn, keep)
	return status, answer, nil
}

// release keeps cn for the next call, or closes it.
func (c *Client) release(cn *conn, keep bool) {
	if !keep {
		_ = cn.c.Close()
		return
	}
	c.mu.Lock()
	old := c.idle
	c.idle = cn
	c.mu.Unlock()
	if old != nil {
		_ = old.c.Close()
	}
}

// CloseIdle closes the connection kept between calls, if any.
func (c *Client) CloseIdle() {
	c.mu.Lock()
	cn := c.idle
	c.idle = nil
	c.mu.Unlock()
	if cn != nil {
		_ = cn.c.Close()
	}
}

// exchange writes the request and reads the answer. fresh reports that
// nothing at all was read back, so that a request sent on a connection the
// server had already closed can be sent again.
func (cn *conn) exchange(ctx context.Context, path string, body []byte) (status int, answer []byte, keep, fresh bool, err error) {
	// The connection times out when ctx ends (not at its deadline: the
	// error must come after ctx.Err() is set, so that Do reports it).
	_ = cn.c.SetDeadline(time.Time{})
	stop := context.AfterFunc(ctx, func() { _ = cn.c.SetDeadline(time.Unix(1, 0)) })
	defer func() {
		if !stop() {
			keep = false // ctx ended meanwhile: its deadline may yet land on the connection
		}
	}()
	var req bytes.Buffer
	fmt.Fprintf(&req, "POST %s HTTP/1.1\r\nHost: calyx-node\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", path, len(body))
	req.Write(body)
	if _, err := cn.c.Write(req.Bytes()); err != nil {
		return 0, nil, false, true, err
	}
	line, err := cn.r.ReadString('\n')
	if err != nil {
		return 0, nil, false, line == "", err
	}
	status, err = parseStatusLine(line)
	if err != nil {
		return 0, nil, false, false, err
	}
	length, chunked, closeAfter := -1, false, false
	for {
		h, err := cn.r.ReadString('\n')
		if err != nil {
			return 0, nil, false, false, fmt.Errorf("reading the answer's headers: %w", err)
		}
		h = strings.TrimRight(h, "\r\n")
		if h == "" {
			break
		}
		name, value, ok := strings.Cut(h, ":")
		if !ok {
			return 0, nil, false, false, fmt.Errorf("malformed header %q", h)
		}
		value = strings.TrimSpace(value)
		switch strings.ToLower(name) {
		case "content-length":
			if length, err = strconv.Atoi(value); err != nil || length < 0 {
				return 0, nil, false, false, fmt.Errorf("malformed Content-Length %q", value)
			}
		case "transfer-encoding":
			chunked = strings.EqualFold(value, "chunked")
		case "connection":
			closeAfter = strings.EqualFold(value, "close")
		}
	}
	switch {
	case chunked:
		answer, err = readChunked(cn.r)
	case length >= 0:
		answer = make([]byte, length)
		_, err = io.ReadFull(cn.r, answer)
	default:
		answer, err = io.ReadAll(cn.r)
		closeAfter = true
	}
	if err != nil {
		return 0, nil, false, false, fmt.Errorf("reading the answer: %w", err)
	}
	return status, answer, !closeAfter, false, nil
}

// parseStatusLine reads the status code of "HTTP/1.1 200 OK".
func parseStatusLine(line string) (int, error) {
	f := strings.Fields(line)
	if len(f) < 2 || !strings.HasPrefix(f[0], "HTTP/1.") {
		return 0, fmt.Errorf("malformed status line %q", strings.TrimSpace(line))
	}
	code, err := strconv.Atoi(f[1])
	if err != nil || code < 100 || code > 999 {
		return 0, fmt.Errorf("malformed status line %q", strings.TrimSpace(line))
	}
	return code, nil
}

// readChunked reads a chunked body and its (empty) trailer.
func readChunked(r *bufio.Reader) ([]byte, error) {
	var out []byte
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		sizeStr, _, _ := strings.Cut(strings.TrimSpace(line), ";")
		size, err := strconv.ParseInt(sizeStr, 16, 32)
		if err != nil || size < 0 || int64(len(out))+size > 64<<20 {
			return nil, fmt.Errorf("malformed chunk size %q", strings.TrimSpace(line))
		}
		if size == 0 {
			for {
				t, err := r.ReadString('\n')
				if err != nil {
					return nil, err
				}
				if strings.TrimRight(t, "\r\n") == "" {
					return out, nil
				}
			}
		}
		chunk := make([]byte, size+2)
		if _, err := io.ReadFull(r, chunk); err != nil {
			return nil, err
		}
		out = append(out, chunk[:size]...)
	}
}
