package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http/httptest"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// TestMultipartWriter: the bytes Apollo Client's readMultipartBody splits (at "\r\n--graphql",
// each part's headers before "\r\n\r\n"), and a body mime/multipart reads whole.
func TestMultipartWriter(t *testing.T) {
	rec := httptest.NewRecorder()
	mw := newMultipartWriter(rec)
	for _, part := range []string{`{}`, `{"payload":{"data":{"a":1}}}`} {
		if err := mw.part([]byte(part)); err != nil {
			t.Fatal(err)
		}
	}
	if err := mw.close(); err != nil {
		t.Fatal(err)
	}
	const want = "--graphql\r\nContent-Type: application/json; charset=utf-8\r\n\r\n{}\r\n--graphql" +
		"\r\nContent-Type: application/json; charset=utf-8\r\n\r\n{\"payload\":{\"data\":{\"a\":1}}}\r\n--graphql" +
		"--\r\n"
	if got := rec.Body.String(); got != want {
		t.Fatalf("body\n%q\nwant\n%q", got, want)
	}
	if !rec.Flushed {
		t.Fatal("parts were not flushed")
	}
	mr := multipart.NewReader(bytes.NewReader(rec.Body.Bytes()), multipartBoundary)
	var parts []string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		parts = append(parts, p.Header.Get("Content-Type")+" "+string(b))
	}
	if len(parts) != 2 || parts[1] != `application/json; charset=utf-8 {"payload":{"data":{"a":1}}}` {
		t.Fatalf("mime/multipart read %q", parts)
	}

	empty := httptest.NewRecorder()
	_ = newMultipartWriter(empty).close()
	if got := empty.Body.String(); got != "--graphql--\r\n" {
		t.Fatalf("a body without parts: %q", got)
	}
}

// responsesOf replays rs as gqlgen's response handler, then nil.
func responsesOf(rs ...*graphql.Response) graphql.ResponseHandler {
	return func(context.Context) *graphql.Response {
		if len(rs) == 0 {
			return nil
		}
		r := rs[0]
		rs = rs[1:]
		return r
	}
}

func hasNext(b bool) *bool { return &b }

func TestMergeDeferred(t *testing.T) {
	first := &graphql.Response{HasNext: hasNext(true),
		Data: json.RawMessage(`{"a":{"id":1,"b":null},"list":[{"x":1,"y":null},{"x":2,"y":null}],"gone":null}`)}
	rest := []*graphql.Response{
		{HasNext: hasNext(true), Path: ast.Path{ast.PathName("list"), ast.PathIndex(1)}, Data: json.RawMessage(`{"y":"two"}`)},
		// Deferred inside a.b, before a.b itself arrives: it waits.
		{HasNext: hasNext(true), Path: ast.Path{ast.PathName("a"), ast.PathName("b")}, Data: json.RawMessage(`{"c":3}`)},
		{HasNext: hasNext(true), Path: ast.Path{ast.PathName("a")}, Data: json.RawMessage(`{"b":{"d":"<4>"}}`),
			Extensions: map[string]any{"x": 1}},
		// Its parent was nulled by an error: only its errors stay.
		{HasNext: hasNext(true), Path: ast.Path{ast.PathName("gone")}, Data: json.RawMessage(`{"z":1}`),
			Errors: gqlerror.List{{Message: "boom"}}},
		{HasNext: hasNext(false), Path: ast.Path{ast.PathName("list"), ast.PathIndex(0)}, Data: json.RawMessage(`{"y":"one"}`)},
	}
	got, err := mergeDeferred(context.Background(), first, responsesOf(rest...))
	if err != nil {
		t.Fatal(err)
	}
	var want, have any
	_ = json.Unmarshal([]byte(`{"a":{"id":1,"b":{"d":"<4>","c":3}},"list":[{"x":1,"y":"one"},{"x":2,"y":"two"}],"gone":null}`), &want)
	if err := json.Unmarshal(got.Data, &have); err != nil {
		t.Fatalf("merged data %s: %v", got.Data, err)
	}
	if w, h := mustJSON(want), mustJSON(have); w != h {
		t.Fatalf("merged\n%s\nwant\n%s", h, w)
	}
	// The fields keep the order of the initial part.
	if !bytes.HasPrefix(got.Data, []byte(`{"a":{"id":1,"b":{"d":`)) {
		t.Fatalf("order lost: %s", got.Data)
	}
	if got.HasNext != nil || len(got.Errors) != 1 || got.Errors[0].Message != "boom" || got.Extensions["x"] != 1 {
		t.Fatalf("merged response %+v", got)
	}

	t.Run("ErrCancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := mergeDeferred(ctx, &graphql.Response{HasNext: hasNext(true), Data: json.RawMessage(`{}`)}, responsesOf()); err == nil {
			t.Fatal("a cancelled operation was merged as if whole")
		}
	})
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
