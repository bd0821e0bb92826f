package httpapi

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"unicode"

	"github.com/eventide/server/eventide"
)

// Some of gqlgen's transports answer a request they cannot take with an error that has no
// extensions.code, written straight to the connection: the server's "transport not supported", a
// failed websocket upgrade (a plain-text body, then JSON), a websocket message that is not a
// request ("invalid json") and the legacy protocol's connection errors (POST and GET are ours,
// transports.go, and code their errors). Nothing in gqlgen lets
// an extension reach these, so the two functions below are the net under them: every error body
// and every websocket error message leaves with a code.

// maxPatchedBytes bounds the error body codeErrorBodies holds back to patch; a longer one (none
// of gqlgen's is) passes as written.
const maxPatchedBytes = 64 << 10

// codeErrorBodies gives a code to every error in an error response (status 400 and above) of
// the GraphQL handler next: the code of its HTTP status (codeForStatus). A body that is not a
// GraphQL response at all becomes one, with its first line as the message. Successes, streams
// and upgraded websockets pass through untouched.
func codeErrorBodies(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &codingWriter{ResponseWriter: w, mediaType: responseType(r)}
		next.ServeHTTP(cw, r)
		cw.finish()
	})
}

// codingWriter holds back an error status and its body until the handler is done.
type codingWriter struct {
	http.ResponseWriter
	mediaType string // of a body that has to be replaced: the one the client prefers
	wrote     bool
	status    int // the error status held back; 0 while passing through
	buf       []byte
}

func (c *codingWriter) WriteHeader(code int) {
	if code < http.StatusOK { // informational (a websocket's 101): the final status follows
		c.ResponseWriter.WriteHeader(code)
		return
	}
	if c.wrote {
		return // gqlgen writes a second status after a failed upgrade; the first one counts
	}
	c.wrote = true
	// A multipart body is written only by our transports, whose parts are coded GraphQL
	// responses (a refused attempt answered in parts is a 429): it passes as written.
	if code >= http.StatusBadRequest && !strings.HasPrefix(c.Header().Get("Content-Type"), mediaMultipart) {
		c.status = code
		return
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *codingWriter) Write(b []byte) (int, error) {
	if !c.wrote {
		c.WriteHeader(http.StatusOK)
	}
	if c.status == 0 {
		return c.ResponseWriter.Write(b)
	}
	if len(c.buf)+len(b) > maxPatchedBytes {
		c.release(c.buf)
		return c.ResponseWriter.Write(b)
	}
	c.buf = append(c.buf, b...)
	return len(b), nil
}

// release writes the held status and body, and passes everything after through.
func (c *codingWriter) release(body []byte) {
	status := c.status
	c.status, c.buf = 0, nil
	c.ResponseWriter.WriteHeader(status)
	_, _ = c.ResponseWriter.Write(body)
}

func (c *codingWriter) finish() {
	if c.status == 0 {
		return
	}
	body, replaced := codeErrorBody(c.status, c.buf)
	h := c.Header()
	if replaced {
		h.Set("Content-Type", c.mediaType)
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	c.release(body)
}

// Flush passes a streamed success on; an error held back is written by finish.
func (c *codingWriter) Flush() { _ = c.FlushError() }

// FlushError is Flush reporting a failed write (a stream past its write deadline), as
// http.ResponseController asks.
func (c *codingWriter) FlushError() error {
	if c.status != 0 {
		return nil
	}
	return http.NewResponseController(c.ResponseWriter).Flush()
}

// Hijack lets a websocket upgrade through.
func (c *codingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if hijackable(c.ResponseWriter) {
		return http.NewResponseController(c.ResponseWriter).Hijack() // through the writers it wraps
	}
	return nil, nil, errors.New("httpapi: response writer cannot hijack")
}

func (c *codingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// codeForStatus is the code of an error answered with an HTTP status.
func codeForStatus(status int) eventide.Code {
	switch status {
	case http.StatusUnauthorized:
		return eventide.CodeUnauthenticated
	case http.StatusForbidden:
		return eventide.CodeForbidden
	case http.StatusNotFound:
		return eventide.CodeNotFound
	case http.StatusMethodNotAllowed:
		return codeMethodNotAllowed
	case http.StatusNotAcceptable:
		return codeNotAcceptable
	case http.StatusRequestEntityTooLarge:
		return codePayloadTooLarge
	case http.StatusTooManyRequests:
		return eventide.CodeRateLimited
	case http.StatusServiceUnavailable:
		return eventide.CodeUnavailable
	}
	if status >= http.StatusInternalServerError {
		return eventide.CodeInternal
	}
	return eventide.CodeBadRequest
}

// codeErrorBody returns body with a code on every error, and whether it had to be replaced
// because it was no GraphQL response. A body whose errors all have codes comes back as it was.
func codeErrorBody(status int, body []byte) ([]byte, bool) {
	code := codeForStatus(status)
	var resp map[string]json.RawMessage
	if err := json.Unmarshal(body, &resp); err == nil && resp["errors"] != nil {
		if errs, changed, ok := codeErrors(resp["errors"], code, false); ok {
			if !changed {
				return body, false
			}
			resp["errors"] = errs
			out, err := json.Marshal(resp)
			if err == nil {
				return out, false
			}
		}
	}
	msg := firstLine(body)
	if msg == "" {
		msg = http.StatusText(status)
	}
	out, _ := json.Marshal(errorBody{Errors: []errorItem{{Message: msg, Extensions: map[string]any{"code": string(code)}}}})
	return out, true
}

// codeErrors gives code to every error of a non-empty JSON list of errors (or of one error
// object, as the legacy websocket protocol sends, when single is allowed) that has none; an error
// whose message starts with a code of ours ("UNAUTHENTICATED: ...", an eventide.Error's text)
// gets that one. ok is false when raw is neither.
func codeErrors(raw json.RawMessage, code eventide.Code, allowSingle bool) (out json.RawMessage, changed, ok bool) {
	var list []map[string]any
	single := false
	if err := json.Unmarshal(raw, &list); err != nil {
		var one map[string]any
		if !allowSingle || json.Unmarshal(raw, &one) != nil || one == nil {
			return raw, false, false
		}
		list, single = []map[string]any{one}, true
	}
	if len(list) == 0 {
		return raw, false, false
	}
	for i, e := range list {
		if e == nil {
			e = map[string]any{"message": "error"}
			list[i] = e
		}
		ext, _ := e["extensions"].(map[string]any)
		if c, _ := ext["code"].(string); c != "" {
			continue
		}
		if ext == nil {
			ext = map[string]any{}
			e["extensions"] = ext
		}
		msg, _ := e["message"].(string)
		ext["code"] = string(codeInMessage(msg, code))
		changed = true
	}
	if !changed {
		return raw, false, true
	}
	var err error
	if single {
		out, err = json.Marshal(list[0])
	} else {
		out, err = json.Marshal(list)
	}
	return out, err == nil, err == nil
}

// ourCodes are the codes an error's text may start with.
var ourCodes = []eventide.Code{eventide.CodeUnauthenticated, eventide.CodeForbidden, eventide.CodeBadUserInput,
	eventide.CodeNotFound, eventide.CodeRateLimited, eventide.CodeBadRequest, eventide.CodeUnavailable}

// codeInMessage is the code msg starts with ("FORBIDDEN: ..."), else fallback.
func codeInMessage(msg string, fallback eventide.Code) eventide.Code {
	for _, c := range ourCodes {
		if strings.HasPrefix(msg, string(c)+": ") {
			return c
		}
	}
	return fallback
}

// firstLine is the first line of a plain-text body, printable and at most 200 bytes.
func firstLine(body []byte) string {
	line, _, _ := bytes.Cut(body, []byte("\n"))
	s := strings.TrimSpace(strings.Map(func(r rune) rune {
		if !unicode.IsPrint(r) {
			return -1
		}
		return r
	}, string(line)))
	if len(s) > 200 {
		s = strings.ToValidUTF8(s[:200], "")
	}
	return s
}

// codeSocketErrors gives a code to every error of a websocket message gqlgen is about to send
// (its protocol structs, graphql-transport-ws's and graphql-ws's, both have Type and Payload):
// "error" and "connection_error" messages, which gqlgen writes unpresented for a message that is
// not a request ("invalid json") and for protocol mistakes. Other messages carry presented
// responses and are left alone, unread.
func codeSocketErrors(v any) {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return
	}
	s := rv.Elem()
	typ, payload := s.FieldByName("Type"), s.FieldByName("Payload")
	if !typ.IsValid() || typ.Kind() != reflect.String || !payload.IsValid() || !payload.CanSet() ||
		payload.Type() != reflect.TypeFor[json.RawMessage]() {
		return
	}
	if t := typ.String(); t != "error" && t != "connection_error" {
		return
	}
	if out, changed, _ := codeErrors(payload.Bytes(), eventide.CodeBadRequest, true); changed {
		payload.SetBytes(out)
	}
}
