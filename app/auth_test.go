package app_test

import (
	"testing"

	"github.com/eventide/server/app"
	"github.com/eventide/server/eventide"
)

func TestSignUp(t *testing.T) {
	e := newEnv(t)

	t.Run("OK", func(t *testing.T) {
		s, err := e.Auth.SignUp(as(nil), "  Ann@Example.COM ", " Ann ", "long-enough")
		must(t, err)
		if s.User.Email != "ann@example.com" || s.User.Name != "Ann" || s.User.Role != eventide.RoleUser || s.Token != "token-"+s.User.ID {
			t.Fatalf("session %+v of %+v", s, s.User)
		}
		if n := e.notes.take(); len(n) != 1 || n[0].Kind != app.NoteSignedUp || n[0].Email != "ann@example.com" || n[0].UserID != s.User.ID {
			t.Fatalf("notes %+v, want one SIGNED_UP", n)
		}
	})
	hashes := e.hashes
	t.Run("ErrEmailTakenInAnyCaseBeforeTheHash", func(t *testing.T) {
		_, err := e.Auth.SignUp(as(nil), "ANN@example.com", "Ann", "long-enough")
		wantErr(t, err, eventide.CodeBadUserInput, "email: an account with this email already exists")
		if e.hashes != hashes {
			t.Fatalf("a taken email cost %d hashes", e.hashes-hashes)
		}
	})
	for _, c := range []struct{ name, email, user, pw, message string }{
		{"ErrNotAnEmail", "ann", "Ann", "long-enough", "email: must be an email address"},
		{"ErrEmailWithoutDomainDot", "ann@localhost", "Ann", "long-enough", "email: must be an email address"},
		{"ErrNoName", "bea@example.com", "  ", "long-enough", "name: must not be empty"},
		{"ErrShortPassword", "bea@example.com", "Bea", "short", "password: must be at least 8 characters"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.Auth.SignUp(as(nil), c.email, c.user, c.pw)
			wantErr(t, err, eventide.CodeBadUserInput, c.message)
		})
	}
	t.Run("ErrGuardRefusesBeforeTheHash", func(t *testing.T) {
		e.guard.refuse = eventide.Errorf(eventide.CodeRateLimited, "slow down")
		defer func() { e.guard.refuse = nil }()
		_, err := e.Auth.SignUp(as(nil), "bea@example.com", "Bea", "long-enough")
		wantErr(t, err, eventide.CodeRateLimited, "slow down")
		if e.hashes != hashes {
			t.Fatalf("a refused sign-up cost %d hashes", e.hashes-hashes)
		}
	})
}

func TestLogin(t *testing.T) {
	e := newEnv(t)
	ann := e.user(t, "Ann", eventide.RoleOrganizer) // password "secret-password"

	t.Run("OKAnyCase", func(t *testing.T) {
		s, err := e.Auth.Login(as(nil), " ANN@example.com", "secret-password")
		must(t, err)
		if s.User.ID != ann.ID || s.Token != "token-"+ann.ID {
			t.Fatalf("session %+v", s)
		}
		if len(e.guard.succeeded) != 1 || e.guard.succeeded[0] != "ann@example.com" {
			t.Fatalf("guard told of successes %v", e.guard.succeeded)
		}
		if n := e.notes.take(); len(n) != 1 || n[0].Kind != app.NoteLoginSucceeded || n[0].Message != "signed in as ORGANIZER" {
			t.Fatalf("notes %+v", n)
		}
	})
	for _, c := range []struct{ name, email, pw string }{
		{"ErrWrongPassword", "ann@example.com", "not-the-password"},
		{"ErrUnknownEmailAlikeAndVerified", "nobody@example.com", "secret-password"},
	} {
		t.Run(c.name, func(t *testing.T) {
			verifys := e.verifys
			_, err := e.Auth.Login(as(nil), c.email, c.pw)
			wantErr(t, err, eventide.CodeUnauthenticated, "invalid email or password")
			if e.verifys != verifys+1 {
				t.Fatalf("%d password checks, want 1 (an unknown email costs one too)", e.verifys-verifys)
			}
			if f := e.guard.failed; len(f) == 0 || f[len(f)-1] != c.email {
				t.Fatalf("guard told of failures %v", f)
			}
			if n := e.notes.take(); len(n) != 1 || n[0].Kind != app.NoteLoginFailed || n[0].Email != c.email || n[0].UserID != "" {
				t.Fatalf("notes %+v", n)
			}
		})
	}
	t.Run("ErrGuardRefusesBeforeTheCheck", func(t *testing.T) {
		e.guard.refuse = eventide.Errorf(eventide.CodeRateLimited, "slow down")
		defer func() { e.guard.refuse = nil }()
		verifys := e.verifys
		_, err := e.Auth.Login(as(nil), "ann@example.com", "secret-password")
		wantErr(t, err, eventide.CodeRateLimited, "slow down")
		if e.verifys != verifys {
			t.Fatal("a refused login checked the password")
		}
	})
}
