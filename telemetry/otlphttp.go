package telemetry

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// otlpClient posts spans to an OTLP/HTTP collector as binary protobuf (the transport half of an
// exporter; go.opentelemetry.io/otel/exporters/otlp/otlptrace does the other half, turning the
// SDK's spans into OTLP messages).
//
// It is written here instead of taken from otlptracehttp because that package links the whole
// gRPC client (the collector service's generated stubs, gRPC status parsing, grpc-gateway): 69
// packages whose initialisation runs in every process, traced or not — +5 MB of binary and
// +2.6 MiB of idle RSS (BENCHMARKS.md, "Idle RSS, part by part"). What it does is the
// specification's: POST to the traces URL with Content-Type application/x-protobuf, the
// configured headers, and retries with backoff on 429, 502, 503 and 504 (honouring
// Retry-After) until the export's deadline.
type otlpClient struct {
	url     string
	headers map[string]string
	http    *http.Client
}

func newOTLPClient(url string, headers map[string]string, timeout time.Duration) *otlpClient {
	return &otlpClient{url: url, headers: headers, http: &http.Client{Timeout: timeout}}
}

func (c *otlpClient) Start(context.Context) error { return nil }

func (c *otlpClient) Stop(context.Context) error {
	c.http.CloseIdleConnections()
	return nil
}

// UploadTraces sends one ExportTraceServiceRequest, whose only field is 1: repeated
// ResourceSpans, so the request is the concatenation of its length-prefixed messages.
func (c *otlpClient) UploadTraces(ctx context.Context, spans []*tracepb.ResourceSpans) error {
	var body []byte
	for _, rs := range spans {
		b, err := proto.Marshal(rs)
		if err != nil {
			return fmt.Errorf("otlp: encode spans: %w", err)
		}
		body = protowire.AppendTag(body, 1, protowire.BytesType)
		body = protowire.AppendBytes(body, b)
	}
	wait := 100 * time.Millisecond
	for {
		retry, after, err := c.post(ctx, body)
		if err == nil || !retry {
			return err
		}
		if after > 0 {
			wait = after
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (then %w)", err, ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// post sends body once; retry says whether the failure is one to try again, after the server's
// Retry-After when it gave one.
func (c *otlpClient) post(ctx context.Context, body []byte) (retry bool, after time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return false, 0, fmt.Errorf("otlp: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	for k, v := range c.headers {
		req.Header.Set(k, v)
	}
	res, err := c.http.Do(req)
	if err != nil {
		return ctx.Err() == nil, 0, fmt.Errorf("otlp: %w", err)
	}
	defer res.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(res.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10)) // let the connection be reused
	if res.StatusCode/100 == 2 {
		return false, 0, nil
	}
	err = fmt.Errorf("otlp: collector answered %s: %q", res.Status, msg)
	switch res.StatusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		if s, perr := strconv.Atoi(res.Header.Get("Retry-After")); perr == nil && s > 0 {
			after = time.Duration(s) * time.Second
		}
		return true, after, err
	}
	return false, 0, err
}
