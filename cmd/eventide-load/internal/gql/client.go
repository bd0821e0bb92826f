// Package gql is eventide-load's GraphQL client: requests over HTTP, judged by their HTTP status
// and the extensions.code of their errors, and subscribers over graphql-transport-ws. Every
// connection it makes goes through the loopback-only dialer.
package gql

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/eventide/server/cmd/eventide-load/internal/loopback"
)

// maxBody bounds how much of one answer is read.
const maxBody = 64 << 20

// Client sends GraphQL requests to one endpoint.
type Client struct {
	URL  string
	HTTP *http.Client
}

// NewClient returns a client for url that keeps up to conns idle connections (set it to the
// most concurrent requests expected, or connections churn) and gives each request timeout.
func NewClient(url string, conns int, timeout time.Duration) *Client {
	tr := &http.Transport{
		Proxy:                 nil, // never through a proxy: the target is this machine
		DialContext:           loopback.Dialer(5 * time.Second).DialContext,
		MaxIdleConns:          0,
		MaxIdleConnsPerHost:   max(conns, 2),
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: timeout,
	}
	return &Client{URL: url, HTTP: &http.Client{Transport: tr, Timeout: timeout}}
}

// Close drops idle connections.
func (c *Client) Close() { c.HTTP.CloseIdleConnections() }

// Body marshals a request body; load operations marshal theirs once, ahead of the run.
func Body(query string, vars map[string]any) []byte {
	b, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		panic(fmt.Sprintf("gql.Body: %v", err)) // only fixed queries and plain values come here
	}
	return b
}

var bufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// Send posts body (as made by Body) with token as bearer ("" for anonymous), reads the answer to
// its end, and returns the HTTP status and the extensions.code of each GraphQL error in it
// ("NO_CODE" for an error without one, "NOT_JSON" for a 200 answer that is not a JSON object).
// err is a transport error: no HTTP answer was had.
func (c *Client) Send(ctx context.Context, token string, body []byte) (status int, codes []string, err error) {
	buf := bufs.Get().(*bytes.Buffer)
	defer func() { buf.Reset(); bufs.Put(buf) }()
	status, _, err = c.post(ctx, token, body, buf)
	if err != nil {
		return 0, nil, err
	}
	return status, Codes(status, buf.Bytes()), nil
}

func (c *Client) post(ctx context.Context, token string, body []byte, into *bytes.Buffer) (int, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	if _, err := into.ReadFrom(io.LimitReader(resp.Body, maxBody)); err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, resp.Header, nil
}

// Codes returns the extensions.code of each error in a GraphQL answer (see Send).
func Codes(status int, body []byte) []string {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		if status == http.StatusOK {
			return []string{"NOT_JSON"}
		}
		return nil
	}
	if !bytes.Contains(body, []byte(`"errors"`)) { // the common case, without decoding the data
		return nil
	}
	var r struct {
		Errors []gqlError `json:"errors"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		if status == http.StatusOK {
			return []string{"NOT_JSON"}
		}
		return nil
	}
	codes := make([]string, 0, len(r.Errors))
	for _, e := range r.Errors {
		codes = append(codes, e.code())
	}
	return codes
}

type gqlError struct {
	Message    string `json:"message"`
	Extensions struct {
		Code string `json:"code"`
	} `json:"extensions"`
}

func (e gqlError) code() string {
	if e.Extensions.Code == "" {
		return "NO_CODE"
	}
	return e.Extensions.Code
}

// Error is a request that did not come back as clean data: an HTTP status other than 200, or
// GraphQL errors.
type Error struct {
	Op         string
	Status     int
	Codes      []string
	Messages   []string
	RetryAfter time.Duration // from a 429's Retry-After
}

func (e *Error) Error() string {
	var parts []string
	if e.Status != http.StatusOK {
		parts = append(parts, fmt.Sprintf("HTTP %d", e.Status))
	}
	for i := range e.Codes {
		parts = append(parts, e.Codes[i]+": "+e.Messages[i])
	}
	return e.Op + ": " + strings.Join(parts, "; ")
}

// Has reports whether one of the errors has code.
func (e *Error) Has(code string) bool {
	for _, c := range e.Codes {
		if c == code {
			return true
		}
	}
	return false
}

// Throttled reports whether the server refused the request for its rate.
func (e *Error) Throttled() bool {
	return e.Status == http.StatusTooManyRequests || e.Has("RATE_LIMITED")
}

// Do sends query with vars and decodes the answer's data into out (which may be nil). It returns
// an *Error when the status is not 200 or the answer has errors, or a transport error.
func (c *Client) Do(ctx context.Context, token, op, query string, vars map[string]any, out any) error {
	var buf bytes.Buffer
	status, hdr, err := c.post(ctx, token, Body(query, vars), &buf)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	var r struct {
		Data   json.RawMessage `json:"data"`
		Errors []gqlError      `json:"errors"`
	}
	jerr := json.Unmarshal(buf.Bytes(), &r)
	if status != http.StatusOK || len(r.Errors) > 0 || jerr != nil {
		e := &Error{Op: op, Status: status}
		for _, ge := range r.Errors {
			e.Codes = append(e.Codes, ge.code())
			e.Messages = append(e.Messages, ge.Message)
		}
		if jerr != nil && status == http.StatusOK {
			e.Codes = append(e.Codes, "NOT_JSON")
			e.Messages = append(e.Messages, jerr.Error())
		}
		if s, err := strconv.Atoi(hdr.Get("Retry-After")); err == nil && s >= 0 {
			e.RetryAfter = time.Duration(s) * time.Second
		}
		return e
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(r.Data, out); err != nil {
		return fmt.Errorf("%s: decoding data: %w", op, err)
	}
	return nil
}

// Raw posts body and returns the answer's bytes as they came, with the HTTP status.
func (c *Client) Raw(ctx context.Context, token string, body []byte) (int, []byte, error) {
	var buf bytes.Buffer
	status, _, err := c.post(ctx, token, body, &buf)
	return status, buf.Bytes(), err
}
