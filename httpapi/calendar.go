package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/eventide/server/calendar"
	"github.com/eventide/server/eventide"
	"github.com/eventide/server/internal/reqmeta"
)

// Calendar is what the .ics routes serve (calendar.Service in the server).
type Calendar interface {
	EventFile(ctx context.Context, id string, viewer *eventide.User) ([]byte, error)
	Feed(ctx context.Context, token string) ([]byte, error)
}

// The .ics routes.
const (
	eventFilePrefix = "/events/"
	feedPrefix      = "/calendar/"
	icsSuffix       = ".ics"
	// maxICSName bounds the id or token in a path; real ones are far shorter.
	maxICSName = 200
)

// calendarFiles serves GET /events/{id}.ics (the event as the viewer may see it: a draft is
// NOT_FOUND but to its organizer and admins, who may send their bearer token) and GET
// /calendar/{token}.ics (a personal feed; any token that opens nothing is 404 with one message).
// It runs behind the same client identification, authentication and throttle as /graphql.
func calendarFiles(c Calendar, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, r, http.StatusMethodNotAllowed, codeMethodNotAllowed, "calendar files are read with GET")
			return
		}
		var (
			body []byte
			err  error
		)
		feed := strings.HasPrefix(r.URL.Path, feedPrefix)
		name, ok := icsName(r.URL.Path)
		switch {
		case !ok && feed:
			err = eventide.Errorf(eventide.CodeNotFound, "no such calendar")
		case !ok:
			err = eventide.Errorf(eventide.CodeNotFound, "no such path: %s", r.URL.Path)
		case feed:
			body, err = c.Feed(r.Context(), name)
		default:
			body, err = c.EventFile(r.Context(), name, eventide.ViewerFrom(r.Context()))
		}
		if err != nil {
			code := eventide.ErrorCode(err)
			status := statusFor(code)
			msg := "internal server error"
			switch code {
			case eventide.CodeNotFound:
				status = http.StatusNotFound
				msg = err.(*eventide.Error).Message
			case eventide.CodeInternal:
				log.ErrorContext(r.Context(), "calendar file failed", "error", err, "request_id", reqmeta.IDFrom(r.Context()))
			default:
				msg = "the calendar cannot be read now; retry later"
			}
			writeError(w, r, status, code, msg)
			return
		}
		h := w.Header()
		h.Set("Content-Type", calendar.ContentType)
		h.Set("Content-Length", strconv.Itoa(len(body)))
		if feed || eventide.ViewerFrom(r.Context()) != nil {
			// A feed is a secret URL; what a signed-in viewer sees may hold their draft or link.
			h.Set("Cache-Control", "private, no-store")
		} else {
			h.Set("Cache-Control", "no-cache")
			h.Set("Content-Disposition", `attachment; filename="event.ics"`)
		}
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write(body)
		}
	})
}

// icsName is the {id} or {token} of /events/{id}.ics or /calendar/{token}.ics.
func icsName(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, eventFilePrefix)
	if !ok {
		rest, ok = strings.CutPrefix(path, feedPrefix)
	}
	if !ok {
		return "", false
	}
	name, ok := strings.CutSuffix(rest, icsSuffix)
	if !ok || name == "" || len(name) > maxICSName || strings.ContainsAny(name, "/\x00") {
		return "", false
	}
	return name, true
}

// withCalendarBase tells calendarUrl the base of this server's URLs: publicURL when set, else the
// scheme and host the request came to.
func withCalendarBase(publicURL string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			base := publicURL
			if base == "" {
				scheme := "http"
				if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
					scheme = "https"
				}
				base = scheme + "://" + r.Host
			}
			next.ServeHTTP(w, r.WithContext(calendar.WithBase(r.Context(), base)))
		})
	}
}

// redactPath keeps feed tokens out of the access log.
func redactPath(path string) string {
	if strings.HasPrefix(path, feedPrefix) {
		return feedPrefix + "…" + icsSuffix
	}
	return path
}
