package resolvers

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/eventide/server/eventide"
	"github.com/eventide/server/security"
)

// userQuery validates the users query's arguments: the search is trimmed, at most maxSearch
// characters and free of control characters (BAD_USER_INPUT on "search" otherwise).
func userQuery(search *string, role *eventide.Role) (eventide.UserQuery, error) {
	var q eventide.UserQuery
	if search != nil {
		s := strings.TrimSpace(*search)
		if strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return q, eventide.InvalidField("search", "must not contain control characters")
		}
		if !utf8.ValidString(s) || utf8.RuneCountInString(s) > maxSearch {
			return q, eventide.InvalidField("search", "must be at most %d characters", maxSearch)
		}
		q.Search = s
	}
	if role != nil {
		if !role.Valid() {
			return q, eventide.InvalidField("role", "unknown role %q", *role)
		}
		q.Role = *role
	}
	return q, nil
}

// roleChanged logs who changed whom from what to what: a ROLE_CHANGED event in the admin's name.
func (r *Resolver) roleChanged(ctx context.Context, from eventide.Role, u *eventide.User) {
	r.logSecurity(ctx, security.Event{Type: security.RoleChanged,
		Message: fmt.Sprintf("changed the role of user %s (%s) from %s to %s", u.ID, u.Email, from, u.Role)})
}

// adminAction logs an admin write that changes the server's state: an ADMIN_ACTION event in the
// admin's name.
func (r *Resolver) adminAction(ctx context.Context, format string, args ...any) {
	r.logSecurity(ctx, security.Event{Type: security.AdminAction, Message: fmt.Sprintf(format, args...)})
}

// adminWrote logs an ADMIN_ACTION when an admin changed an event they do not organize: a write
// only the ADMIN role allowed.
func (r *Resolver) adminWrote(ctx context.Context, mutation string, ev *eventide.Event) {
	if v := eventide.ViewerFrom(ctx); v != nil && v.Role == eventide.RoleAdmin && v.ID != ev.OrganizerID {
		r.adminAction(ctx, "%s on event %s (%q) of organizer %s", mutation, ev.ID, ev.Title, ev.OrganizerID)
	}
}
