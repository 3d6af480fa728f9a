package control

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// Client talks to a running translator's control API.
type Client struct {
	Addr string // host:port
	HTTP *http.Client
}

// NewClient returns a client with a timeout suited to a CLI.
func NewClient(addr string) *Client {
	return &Client{Addr: addr, HTTP: &http.Client{Timeout: 5 * time.Second}}
}

func (c *Client) url(path string, q url.Values) string {
	u := url.URL{Scheme: "http", Host: c.Addr, Path: path, RawQuery: q.Encode()}
	return u.String()
}

func (c *Client) do(ctx context.Context, method, path string, q url.Values, body, out any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url(path, q), r)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("control API at %s: %w (is `nat64ctl run` running?)", c.Addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var e Error
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = string(bytes.TrimSpace(b))
		}
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, e.Error)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func protoQuery(proto string) url.Values {
	if proto == "" {
		return nil
	}
	return url.Values{"proto": {proto}}
}

// Healthy asks /healthz.
func (c *Client) Healthy(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, PathHealthz, nil, nil, nil)
}

// Sessions lists sessions, of one protocol or ("") all.
func (c *Client) Sessions(ctx context.Context, proto string) ([]Session, error) {
	var out []Session
	return out, c.do(ctx, http.MethodGet, PathSessions, protoQuery(proto), nil, &out)
}

// BIB lists BIB entries.
func (c *Client) BIB(ctx context.Context, proto string) ([]BIBEntry, error) {
	var out []BIBEntry
	return out, c.do(ctx, http.MethodGet, PathBIB, protoQuery(proto), nil, &out)
}

// Stats fetches the counters.
func (c *Client) Stats(ctx context.Context) (Stats, error) {
	var out Stats
	return out, c.do(ctx, http.MethodGet, PathStats, nil, nil, &out)
}

// AddStatic adds a static BIB entry.
func (c *Client) AddStatic(ctx context.Context, e StaticEntry) error {
	return c.do(ctx, http.MethodPost, PathStatic, nil, e, nil)
}

// RemoveStatic removes a static BIB entry.
func (c *Client) RemoveStatic(ctx context.Context, e StaticEntry) error {
	return c.do(ctx, http.MethodDelete, PathStatic, nil, e, nil)
}

// Reload makes the daemon re-read its nat64.toml.
func (c *Client) Reload(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, PathReload, nil, nil, nil)
}
