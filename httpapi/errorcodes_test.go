package httpapi

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// codes decodes a GraphQL error body and returns its errors' codes ("" for none).
func codes(t *testing.T, body []byte) []string {
	t.Helper()
	var r struct {
		Errors []struct {
			Extensions map[string]any `json:"extensions"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	out := make([]string, len(r.Errors))
	for i, e := range r.Errors {
		out[i], _ = e.Extensions["code"].(string)
	}
	return out
}

func TestCodeErrorBody(t *testing.T) {
	for _, tc := range []struct {
		name     string
		status   int
		body     string
		want     []string
		replaced bool
		same     bool // the body comes back byte for byte
	}{
		{"Uncoded400", 400, `{"errors":[{"message":"variables could not be decoded"}],"data":null}`, []string{"BAD_REQUEST"}, false, false},
		{"Uncoded406", 406, `{"errors":[{"message":"GET requests only allow query operations"}],"data":null}`, []string{"NOT_ACCEPTABLE"}, false, false},
		{"Uncoded405", 405, `{"errors":[{"message":"no"}]}`, []string{"METHOD_NOT_ALLOWED"}, false, false},
		{"Uncoded500", 500, `{"errors":[{"message":"streaming unsupported"}]}`, []string{"INTERNAL_SERVER_ERROR"}, false, false},
		{"CodedKept", 422, `{"errors":[{"message":"x","extensions":{"code":"GRAPHQL_VALIDATION_FAILED"}}],"data":null}`, []string{"GRAPHQL_VALIDATION_FAILED"}, false, true},
		{"Mixed", 400, `{"errors":[{"message":"a","extensions":{"code":"BAD_USER_INPUT","field":"x"}},{"message":"b","extensions":{}}]}`, []string{"BAD_USER_INPUT", "BAD_REQUEST"}, false, false},
		{"CodeInMessage", 400, `{"errors":[{"message":"UNAUTHENTICATED: invalid or expired token"}]}`, []string{"UNAUTHENTICATED"}, false, false},
		{"PlainText", 426, "WebSocket protocol violation: Connection header \"\" does not contain Upgrade\n{\"errors\":[{\"message\":\"unable to upgrade\"}]}", []string{"BAD_REQUEST"}, true, false},
		{"Empty", 400, ``, []string{"BAD_REQUEST"}, true, false},
		{"NotAResponse", 400, `[1,2]`, []string{"BAD_REQUEST"}, true, false},
		{"ErrorsNotAList", 400, `{"errors":"bad"}`, []string{"BAD_REQUEST"}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, replaced := codeErrorBody(tc.status, []byte(tc.body))
			if got := codes(t, out); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("codes %v, want %v: %s", got, tc.want, out)
			}
			if replaced != tc.replaced || (tc.same && string(out) != tc.body) {
				t.Fatalf("replaced %v: %s", replaced, out)
			}
		})
	}
	out, _ := codeErrorBody(426, []byte("WebSocket protocol violation: no Upgrade\n{}"))
	if !strings.Contains(string(out), "WebSocket protocol violation: no Upgrade") {
		t.Fatalf("the first line is not the message: %s", out)
	}
	out, _ = codeErrorBody(400, []byte(`{"errors":[{"message":"m","path":["a",1],"locations":[{"line":1,"column":2}]}],"data":null}`))
	if !strings.Contains(string(out), `"data":null`) || !strings.Contains(string(out), `"path":["a",1]`) || !strings.Contains(string(out), `"line":1`) {
		t.Fatalf("other members were not kept: %s", out)
	}
}

// FuzzCodeErrorBody: whatever an error body holds, what leaves is a GraphQL response whose
// every error has a code.
func FuzzCodeErrorBody(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"errors":[]}`, `{"errors":[{"message":"x"}]}`, `{"errors":{"message":"x"}}`,
		`{"errors":[{"extensions":{"code":5}}]}`, `{"errors":[null]}`, "text\n{}", `{"errors":[{"extensions":"x"}]}`} {
		f.Add(400, []byte(s))
	}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		status = 400 + (status&0x7fffffff)%200
		out, _ := codeErrorBody(status, body)
		var r struct {
			Errors []map[string]any `json:"errors"`
		}
		if err := json.Unmarshal(out, &r); err != nil || len(r.Errors) == 0 {
			t.Fatalf("%q became %q (%v)", body, out, err)
		}
		for _, e := range r.Errors {
			ext, _ := e["extensions"].(map[string]any)
			if c, _ := ext["code"].(string); c == "" {
				t.Fatalf("%q became %q: an error without a code", body, out)
			}
		}
	})
}

func TestCodeErrorBodies(t *testing.T) {
	serve := func(h http.HandlerFunc) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		codeErrorBodies(h).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/graphql", nil))
		return rec
	}
	t.Run("ErrorGetsCodeAndLength", func(t *testing.T) {
		rec := serve(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"errors":[{"message":"transport not supported"}],"data":null}`))
		})
		if rec.Code != 400 || fmt.Sprint(codes(t, rec.Body.Bytes())) != "[BAD_REQUEST]" ||
			rec.Header().Get("Content-Length") != fmt.Sprint(rec.Body.Len()) || rec.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("%d %v %s", rec.Code, rec.Header(), rec.Body)
		}
	})
	t.Run("SecondStatusAndTextBecomeOneBody", func(t *testing.T) {
		rec := serve(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "WebSocket protocol violation", http.StatusUpgradeRequired)
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"errors":[{"message":"unable to upgrade"}]}`))
		})
		if rec.Code != http.StatusUpgradeRequired || fmt.Sprint(codes(t, rec.Body.Bytes())) != "[BAD_REQUEST]" ||
			!strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
			t.Fatalf("%d %v %s", rec.Code, rec.Header(), rec.Body)
		}
	})
	t.Run("SuccessPassesThroughAsWritten", func(t *testing.T) {
		rec := serve(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte(`{"data":{"a":1}}`))
			w.(http.Flusher).Flush()
			_, _ = w.Write([]byte(`more`))
		})
		if rec.Code != 200 || rec.Body.String() != `{"data":{"a":1}}more` || !rec.Flushed {
			t.Fatalf("%d %s flushed %v", rec.Code, rec.Body, rec.Flushed)
		}
	})
	t.Run("InformationalThenError", func(t *testing.T) {
		// A real server: the recorder takes a 1xx for the final status.
		srv := httptest.NewServer(codeErrorBodies(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Link", "</style.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"errors":[{"message":"x"}]}`))
		})))
		defer srv.Close()
		res, err := srv.Client().Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusBadRequest || fmt.Sprint(codes(t, body)) != "[BAD_REQUEST]" {
			t.Fatalf("%d %s", res.StatusCode, body)
		}
	})
	t.Run("LongErrorPassesAsWritten", func(t *testing.T) {
		long := `{"errors":[{"message":"` + strings.Repeat("x", maxPatchedBytes) + `"}]}`
		rec := serve(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(long[:100]))
			_, _ = w.Write([]byte(long[100:]))
		})
		if rec.Code != 400 || rec.Body.String() != long {
			t.Fatalf("%d, %d bytes", rec.Code, rec.Body.Len())
		}
	})
}

// transportWSMessage has the shape of gqlgen's graphql-transport-ws message struct.
type transportWSMessage struct {
	Payload json.RawMessage `json:"payload,omitempty"`
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
}

func TestCodeSocketErrors(t *testing.T) {
	for _, tc := range []struct {
		name, typ, payload, want string
	}{
		{"InvalidJSON", "error", `[{"message":"invalid json"}]`, `[{"extensions":{"code":"BAD_REQUEST"},"message":"invalid json"}]`},
		{"CodedKept", "error", `[{"message":"x","extensions":{"code":"GRAPHQL_PARSE_FAILED"}}]`, `[{"message":"x","extensions":{"code":"GRAPHQL_PARSE_FAILED"}}]`},
		{"ConnectionError", "connection_error", `{"message":"unexpected message init"}`, `{"extensions":{"code":"BAD_REQUEST"},"message":"unexpected message init"}`},
		{"ConnectionErrorWithOurCode", "connection_error", `{"message":"UNAUTHENTICATED: invalid or expired token"}`, `{"extensions":{"code":"UNAUTHENTICATED"},"message":"UNAUTHENTICATED: invalid or expired token"}`},
		{"NextUnread", "next", `{"errors":[{"message":"x"}]}`, `{"errors":[{"message":"x"}]}`},
		{"NotJSON", "error", `nope`, `nope`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &transportWSMessage{Type: tc.typ, ID: "1", Payload: json.RawMessage(tc.payload)}
			codeSocketErrors(m)
			if string(m.Payload) != tc.want {
				t.Fatalf("payload %s, want %s", m.Payload, tc.want)
			}
		})
	}
	// Anything else gqlgen might hand over is left alone.
	for _, v := range []any{nil, 5, "x", transportWSMessage{Type: "error"}, &struct{ Type int }{}, &struct {
		Type    string
		Payload string
	}{"error", "[]"}} {
		codeSocketErrors(v)
	}
}
