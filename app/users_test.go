package app_test

import (
	"testing"

	"github.com/eventide/server/app"
	"github.com/eventide/server/eventide"
)

func TestSetRole(t *testing.T) {
	e := newEnv(t)
	admin := e.user(t, "Ada", eventide.RoleAdmin)
	ann := e.user(t, "Ann", eventide.RoleUser)

	t.Run("ErrUnknownRole", func(t *testing.T) {
		_, err := e.Users.SetRole(as(admin), ann.ID, "KING")
		wantErr(t, err, eventide.CodeBadUserInput, `role: unknown role "KING"`)
	})
	t.Run("ErrNoSuchUser", func(t *testing.T) {
		_, err := e.Users.SetRole(as(admin), "0123456789abcdef01234567", eventide.RoleOrganizer)
		if eventide.ErrorCode(err) != eventide.CodeNotFound {
			t.Fatalf("error %v, want NOT_FOUND", err)
		}
	})
	t.Run("OKRecorded", func(t *testing.T) {
		u, err := e.Users.SetRole(as(admin), ann.ID, eventide.RoleOrganizer)
		must(t, err)
		want := "changed the role of user " + ann.ID + " (ann@example.com) from USER to ORGANIZER"
		if n := e.notes.take(); u.Role != eventide.RoleOrganizer || len(n) != 1 || n[0].Kind != app.NoteRoleChanged || n[0].Message != want {
			t.Fatalf("role %s, notes %+v", u.Role, n)
		}
	})
}

func TestUsersQuery(t *testing.T) {
	e := newEnv(t)
	q, err := e.Users.Query(ptr("  ann "), ptr(eventide.RoleUser))
	must(t, err)
	if q.Search != "ann" || q.Role != eventide.RoleUser {
		t.Fatalf("query %+v", q)
	}
	_, err = e.Users.Query(ptr("a\x00b"), nil)
	wantErr(t, err, eventide.CodeBadUserInput, "search: must not contain control characters")
	_, err = e.Users.Query(ptr("\xff"), nil)
	wantErr(t, err, eventide.CodeBadUserInput, "search: must be at most 100 characters")
	_, err = e.Users.Query(nil, ptr(eventide.Role("KING")))
	wantErr(t, err, eventide.CodeBadUserInput, `role: unknown role "KING"`)
}
