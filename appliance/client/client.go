// Package client talks to fwpaird's control socket. fwpairctl is a thin
// shell around it, and tests use it to drive daemons in the lab.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/fwpair/fwpair/appliance/api"
)

// Client is a control-socket client.
type Client struct {
	// Socket is the UNIX socket path.
	Socket string
	// Dial replaces the socket dialer (tests); nil dials Socket.
	Dial func(ctx context.Context) (net.Conn, error)
	// Timeout bounds each request; 0 means 30 s.
	Timeout time.Duration

	hc *http.Client
}

// New returns a client for the socket at path.
func New(path string) *Client { return &Client{Socket: path} }

// ErrUnreachable means the daemon could not be reached at all.
var ErrUnreachable = errors.New("daemon not reachable")

// RefusedError is an error answer from the daemon.
type RefusedError struct {
	Status int
	Body   api.Error
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("fwpaird refused (%s): %s", e.Body.Code, e.Body.Error)
}

func (c *Client) http() *http.Client {
	if c.hc == nil {
		timeout := c.Timeout
		if timeout == 0 {
			timeout = 30 * time.Second
		}
		c.hc = &http.Client{
			Timeout: timeout,
			Transport: &http.Transport{
				DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
					if c.Dial != nil {
						return c.Dial(ctx)
					}
					var d net.Dialer
					return d.DialContext(ctx, "unix", c.Socket)
				},
			},
		}
	}
	return c.hc
}

func (c *Client) do(ctx context.Context, method, path string, query url.Values, out any) error {
	u := "http://fwpaird" + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return err
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return fmt.Errorf("%w at %s: %v", ErrUnreachable, c.Socket, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		re := &RefusedError{Status: resp.StatusCode}
		if json.Unmarshal(body, &re.Body) != nil || re.Body.Error == "" {
			re.Body = api.Error{Error: fmt.Sprintf("HTTP %d: %.200s", resp.StatusCode, body), Code: "internal"}
		}
		return re
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("bad answer from fwpaird: %w", err)
	}
	return nil
}

// Status returns the daemon's status.
func (c *Client) Status(ctx context.Context) (api.Status, error) {
	var s api.Status
	return s, c.do(ctx, http.MethodGet, api.PathStatus, nil, &s)
}

// Stats returns every counter.
func (c *Client) Stats(ctx context.Context) (api.Stats, error) {
	var s api.Stats
	return s, c.do(ctx, http.MethodGet, api.PathStats, nil, &s)
}

// Cache lists the internal or external cache.
func (c *Client) Cache(ctx context.Context, which string) (api.Cache, error) {
	var out api.Cache
	return out, c.do(ctx, http.MethodGet, api.PathCache+url.PathEscape(which), nil, &out)
}

// Commit commits the external cache into the kernel.
func (c *Client) Commit(ctx context.Context) (api.CommitResult, error) {
	var out api.CommitResult
	return out, c.do(ctx, http.MethodPost, api.PathCommit, nil, &out)
}

// Resync resynchronises the internal cache with the kernel.
func (c *Client) Resync(ctx context.Context) (api.Result, error) {
	return c.action(ctx, api.PathResync, nil)
}

// Flush empties a cache: "internal", "external" or "all".
func (c *Client) Flush(ctx context.Context, which string) (api.Result, error) {
	return c.action(ctx, api.PathFlush, url.Values{"cache": {which}})
}

// Bulk sends the internal cache to the peer.
func (c *Client) Bulk(ctx context.Context) (api.Result, error) {
	return c.action(ctx, api.PathBulk, nil)
}

// RequestResync asks the peer for its whole state.
func (c *Client) RequestResync(ctx context.Context) (api.Result, error) {
	return c.action(ctx, api.PathRequestResync, nil)
}

// SetLogLevel changes the daemon's log level.
func (c *Client) SetLogLevel(ctx context.Context, level string) (api.Result, error) {
	return c.action(ctx, api.PathLogLevel, url.Values{"level": {level}})
}

func (c *Client) action(ctx context.Context, path string, q url.Values) (api.Result, error) {
	var out api.Result
	return out, c.do(ctx, http.MethodPost, path, q, &out)
}
