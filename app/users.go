package app

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/eventide/server/eventide"
)

// UserService changes accounts as admins do and validates the users list's arguments.
type UserService struct{ *base }

// SetRole gives userID role (BAD_USER_INPUT for an unknown role, NOT_FOUND for an unknown user)
// and records the change in the admin's name.
func (s *UserService) SetRole(ctx context.Context, userID string, role eventide.Role) (*eventide.User, error) {
	if !role.Valid() {
		return nil, eventide.InvalidField("role", "unknown role %q", role)
	}
	before, err := s.Store.UserByID(ctx, userID)
	if err != nil {
		return nil, err
	}
	u, err := s.Store.SetUserRole(ctx, userID, role)
	if err != nil {
		return nil, err
	}
	s.note(ctx, Note{Kind: NoteRoleChanged,
		Message: fmt.Sprintf("changed the role of user %s (%s) from %s to %s", u.ID, u.Email, before.Role, u.Role)})
	return u, nil
}

// Query validates the users list's arguments: the search is trimmed, at most MaxSearch
// characters and free of control characters (BAD_USER_INPUT on "search" otherwise); the role
// must be known.
func (s *UserService) Query(search *string, role *eventide.Role) (eventide.UserQuery, error) {
	var q eventide.UserQuery
	if search != nil {
		sr := strings.TrimSpace(*search)
		if hasControl(sr) {
			return q, eventide.InvalidField("search", "must not contain control characters")
		}
		if !utf8.ValidString(sr) || utf8.RuneCountInString(sr) > MaxSearch {
			return q, eventide.InvalidField("search", "must be at most %d characters", MaxSearch)
		}
		q.Search = sr
	}
	if role != nil {
		if !role.Valid() {
			return q, eventide.InvalidField("role", "unknown role %q", *role)
		}
		q.Role = *role
	}
	return q, nil
}
