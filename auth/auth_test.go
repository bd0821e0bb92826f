package auth

import (
	"testing"
	"time"
)

func newAuth(t *testing.T) *Auth {
	t.Helper()
	a, err := New(4, "0123456789abcdef0123456789abcdef", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestPasswords(t *testing.T) {
	a := newAuth(t)
	h, err := a.Hash("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("OK", func(t *testing.T) {
		if !a.Verify(h, "correct horse") {
			t.Fatal("right password rejected")
		}
	})
	t.Run("WrongPassword", func(t *testing.T) {
		if a.Verify(h, "battery staple") {
			t.Fatal("wrong password accepted")
		}
	})
	t.Run("UnknownAccount", func(t *testing.T) {
		// The dummy hash's own password must not open an unknown account.
		if a.Verify(nil, "eventide-timing-equaliser") {
			t.Fatal("unknown account accepted")
		}
	})
	t.Run("Policy", func(t *testing.T) {
		if CheckPasswordPolicy("short") == nil || CheckPasswordPolicy(string(make([]byte, 73))) == nil {
			t.Fatal("policy accepted a bad password")
		}
		if err := CheckPasswordPolicy("long enough"); err != nil {
			t.Fatal(err)
		}
	})
}

func TestTokens(t *testing.T) {
	a := newAuth(t)
	tok, err := a.Issue("user-1")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("OK", func(t *testing.T) {
		id, err := a.Parse(tok)
		if err != nil || id != "user-1" {
			t.Fatalf("Parse = %q, %v", id, err)
		}
	})
	t.Run("ErrExpired", func(t *testing.T) {
		later := newAuth(t) // the same secret
		later.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
		if _, err := later.Parse(tok); err != ErrInvalidToken {
			t.Fatalf("expired token: err = %v", err)
		}
	})
	t.Run("ErrOtherSecret", func(t *testing.T) {
		other, _ := New(4, "another-secret-another-secret-xx", time.Hour)
		if _, err := other.Parse(tok); err != ErrInvalidToken {
			t.Fatalf("foreign token: err = %v", err)
		}
	})
	t.Run("ErrGarbage", func(t *testing.T) {
		for _, s := range []string{"", "abc", tok + "x", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."} {
			if _, err := a.Parse(s); err != ErrInvalidToken {
				t.Fatalf("Parse(%q) err = %v", s, err)
			}
		}
	})
}
