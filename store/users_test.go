package store

import (
	"context"
	"fmt"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/eventide/server/eventide"
)

// TestUsers: the admins' search by name or email (literal, case-insensitive) and role, in keyset
// pages that neither skip nor repeat, without password hashes.
func TestUsers(t *testing.T) {
	st := startTestStore(t)
	ctx := context.Background()
	for i := range 25 {
		role := eventide.RoleUser
		if i%5 == 0 {
			role = eventide.RoleOrganizer
		}
		u := &eventide.User{Name: fmt.Sprintf("Person %02d", i), Email: fmt.Sprintf("p%02d@example.com", i), Role: role,
			PasswordHash: []byte("secret-hash")}
		if err := st.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	odd := &eventide.User{Name: "A.B (Ünïcode)", Email: "weird+1@example.org", Role: eventide.RoleUser}
	if err := st.CreateUser(ctx, odd); err != nil {
		t.Fatal(err)
	}

	names := func(c *eventide.Conn[*eventide.User]) []string {
		var out []string
		for _, u := range c.Items {
			out = append(out, u.Name)
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		q     eventide.UserQuery
		count int
	}{
		{"All", eventide.UserQuery{}, 26},
		{"NameCaseInsensitive", eventide.UserQuery{Search: "PERSON 1"}, 10},
		{"Email", eventide.UserQuery{Search: "example.org"}, 1},
		{"UnicodeCaseInsensitive", eventide.UserQuery{Search: "üNÏ"}, 1},
		{"DotIsLiteral", eventide.UserQuery{Search: "A.B"}, 1},
		{"RegexIsLiteral", eventide.UserQuery{Search: ".*"}, 0},
		{"ParenIsLiteral", eventide.UserQuery{Search: "("}, 1},
		{"PlusIsLiteral", eventide.UserQuery{Search: "weird+1"}, 1},
		{"Role", eventide.UserQuery{Role: eventide.RoleOrganizer}, 5},
		{"SearchAndRole", eventide.UserQuery{Search: "person 1", Role: eventide.RoleOrganizer}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := st.CountUsersMatching(ctx, tc.q)
			if err != nil || n != tc.count {
				t.Fatalf("count = %d, %v; want %d", n, err, tc.count)
			}
			c, err := st.Users(ctx, tc.q, eventide.Page{First: 100})
			if err != nil || len(c.Items) != tc.count || c.HasNextPage {
				t.Fatalf("users = %v, next %v, %v; want %d", names(c), c != nil && c.HasNextPage, err, tc.count)
			}
			for _, u := range c.Items {
				if u.PasswordHash != nil {
					t.Fatalf("%s returned with its password hash", u.Name)
				}
			}
		})
	}
	t.Run("PagesOldestFirst", func(t *testing.T) {
		var got []string
		after := ""
		for pages := 1; ; pages++ {
			c, err := st.Users(ctx, eventide.UserQuery{Search: "person"}, eventide.Page{First: 7, After: after})
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, names(c)...)
			if !c.HasNextPage {
				break
			}
			if pages > 4 {
				t.Fatalf("more than 4 pages of 7 for 25 users")
			}
			after = c.EndCursor()
		}
		if len(got) != 25 {
			t.Fatalf("%d users over the pages: %v", len(got), got)
		}
		for i, n := range got {
			if want := fmt.Sprintf("Person %02d", i); n != want {
				t.Fatalf("user %d is %s, want %s", i, n, want)
			}
		}
	})
	t.Run("ErrBadCursor", func(t *testing.T) {
		events := cursor{kind: "e", key: "0", id: bson.NewObjectID()}.encode() // another list's
		for _, after := range []string{"garbage", events, "dTpub3QtYW4taWQ6MA"} {
			if _, err := st.Users(ctx, eventide.UserQuery{}, eventide.Page{First: 5, After: after}); !eventide.IsCode(err, eventide.CodeBadUserInput) {
				t.Fatalf("after %q: %v, want BAD_USER_INPUT", after, err)
			}
		}
		if _, err := st.Users(ctx, eventide.UserQuery{}, eventide.Page{First: -1}); !eventide.IsCode(err, eventide.CodeBadUserInput) {
			t.Fatalf("first -1: %v", err)
		}
	})
}
